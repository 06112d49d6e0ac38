"""SI-SDR of the shipped default predictors on seeded test-split mixtures of the dev corpus.

    python benchmarks/eval_predictors.py CORPUS [--items 40] [--seconds 4] [--refine-steps 0]

Enhancement (``semamba``): clean test speech + test noise at -5, 0, 5, 10 and 15 dB.
Separation (``convtasnet``): two different test speakers at -5..5 dB relative level, scored with
the better of the two source permutations. Prints mean SI-SDR of the mixture and of the
predictor (and of predictor + sips when ``--refine-steps`` > 0), with a 95 % confidence
interval of the improvement. Speech: the permissively licensed voices the defaults were trained on.
"""

from __future__ import annotations

import argparse
import json
import math

import torch

import sips
from sips.corpus import MixtureBank
from sips.metrics import pit_si_sdr, si_sdr

SNRS = (-5.0, 0.0, 5.0, 10.0, 15.0)
ENHANCE_SOURCES = ["asterisk", "festvox_ru"]
SEPARATE_SOURCES = ["asterisk_en_US", "asterisk_fr_CA", "asterisk_ru_RU", "festvox_ru"]


def interval(values: torch.Tensor) -> str:
    mean = float(values.mean())
    half = 1.96 * float(values.std()) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{mean:+.2f} ± {half:.2f}"


def run(name, predictor, mixtures, refs, score, steps):
    rows = {"mixture": [], name: [], f"{name}+sips": []}
    for mix, ref in zip(mixtures, refs, strict=True):
        est = predictor(mix[None])
        rows["mixture"].append(score(mix[None, None].expand_as(ref[None]), ref[None]))
        rows[name].append(score(est, ref[None]))
        if steps:
            refined = sips.refine_estimates(est[0], mix, steps=steps)
            rows[f"{name}+sips"].append(score(refined[None], ref[None]))
    result = {k: torch.cat(v) for k, v in rows.items() if v}
    for key, values in result.items():
        print(f"  {key:<18} SI-SDR {float(values.mean()):6.2f} dB")
    print(f"  improvement        {interval(result[name] - result['mixture'])} dB (95 % CI)")
    if f"{name}+sips" in result:
        print(f"  sips vs {name:<10} {interval(result[f'{name}+sips'] - result[name])} dB (95 % CI)")
    return {k: float(v.mean()) for k, v in result.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus")
    p.add_argument("--items", type=int, default=40, help="mixtures per task")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--refine-steps", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tasks", nargs="+", default=["semamba", "convtasnet"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    length = int(args.seconds * 16000)
    summary = {}
    if "semamba" in args.tasks:
        bank = MixtureBank(args.corpus, "test", ENHANCE_SOURCES)
        g = torch.Generator().manual_seed(2024)
        mixes, cleans = [], []
        for k in range(args.items):
            snr = SNRS[k % len(SNRS)]
            mix, clean = bank.noisy(1, length, g, snr_db=(snr, snr))
            mixes.append(mix[0])
            cleans.append(clean)
        print(
            f"enhancement: {args.items} test mixtures of {args.seconds:g} s at {', '.join(f'{s:g}' for s in SNRS)} dB"
        )
        summary["semamba"] = run(
            "semamba",
            sips.load_predictor("semamba"),
            mixes,
            cleans,
            lambda e, r: si_sdr(e, r).mean(-1),
            args.refine_steps,
        )
    if "convtasnet" in args.tasks:
        bank = MixtureBank(args.corpus, "test", SEPARATE_SOURCES)
        g = torch.Generator().manual_seed(2025)
        pairs = [bank.two_speakers(1, length, g) for _ in range(args.items)]
        print(f"separation: {args.items} two-speaker test mixtures of {args.seconds:g} s")
        summary["convtasnet"] = run(
            "convtasnet",
            sips.load_predictor("convtasnet"),
            [m[0] for m, _ in pairs],
            [s[0] for _, s in pairs],
            lambda e, r: pit_si_sdr(e, r)[0],
            args.refine_steps,
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
