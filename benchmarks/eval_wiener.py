"""SI-SDR of Wiener vs Wiener + embedded prior on noisy mixtures from the corpus' test split.

Usage: python benchmarks/eval_wiener.py CORPUS_DIR [--files 20] [--steps 15]
Mixtures: each clean test file (festvox_ru + Asterisk voices, sorted, first N) + a test-split
noise excerpt at an SNR drawn from [0, 15] dB (seeded).
"""

import argparse
from pathlib import Path

import numpy as np
import torch

import sips
from sips.evaluation.metrics import si_sdr
from sips.io.audio import list_audio, load_mono


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    clean_files = [
        f
        for d in ("festvox_ru", "asterisk")
        for f in list_audio(args.corpus / "clean" / "test")
        if f.parent.name.startswith(d)
    ]
    clean_files = [clean_files[i] for i in rng.permutation(len(clean_files))[: args.files]]
    noises = [load_mono(f, 16000) for f in list_audio(args.corpus / "noise" / "test")]
    wiener = sips.load_predictor("wiener")
    prior = sips.load_prior()
    rows = []
    for f in clean_files:
        clean = load_mono(f, 16000)
        noise = noises[rng.integers(len(noises))]
        start = rng.integers(0, len(noise) - len(clean))
        n = noise[start : start + len(clean)]
        snr = rng.uniform(0, 15)
        n = n * np.sqrt((clean**2).mean() / max((n**2).mean(), 1e-12) / 10 ** (snr / 10))
        mix = torch.from_numpy((clean + n).astype(np.float32))
        ref = torch.from_numpy(clean)
        w = wiener(mix[None])[0, 0]
        r = sips.refine(wiener, mix, prior=prior, steps=args.steps)[0]
        rows.append(tuple(float(si_sdr(est, ref)) for est in (mix, w, r)))
        print(
            f"{f.name:40s} snr {snr:5.1f}  mix {rows[-1][0]:6.2f}  wiener {rows[-1][1]:6.2f}  +sips {rows[-1][2]:6.2f}",
            flush=True,
        )
    m = np.array(rows).mean(0)
    print(
        f"mean SI-SDR over {len(rows)} files: mixture {m[0]:.2f} dB, wiener {m[1]:.2f} dB, wiener+sips {m[2]:.2f} dB (diff {m[2] - m[1]:+.2f} dB)"
    )


if __name__ == "__main__":
    main()
