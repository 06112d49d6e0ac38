"""Does the prior's quality score track quality? Ordering and correlation on the held-out test voices.

    python benchmarks/quality_validation.py CORPUS [--items 20] [--seconds 4] [--predictor semamba]
        [--steps 15] [--json F]

For each of ``items`` clean utterances of the held-out test voices (``sips.corpus.TEST_VOICES``,
which no shipped weights were trained on; fixed seed), the degraded versions are:
- the utterance with its test noise at 15, 5 and -5 dB;
- the predictor's output for each of those;
- the predictor's output refined by sips (embedded prior, library defaults unless ``--steps``).

Every version gets the prior's score (``sips.quality``, defaults), DNSMOS OVRL and wide-band PESQ
against the clean utterance. The script reports:
1. the fraction of utterances ordered clean > 15 dB > -5 dB by the score, and by DNSMOS OVRL for
   comparison;
2. the Pearson and Spearman correlations of the score with DNSMOS OVRL and with PESQ over all
   versions (clean included).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


import sips  # noqa: E402
from sips import metrics as M  # noqa: E402
from sips.training.corpus import SPLITS, TEST_VOICES, MixtureBank  # noqa: E402

SNRS = (15.0, 5.0, -5.0)


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    return ranks


def correlations(a, b) -> tuple[float, float]:
    """Pearson and Spearman correlation of two equally long sequences."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.corrcoef(a, b)[0, 1]), float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--predictor", default="semamba")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the library's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bank = MixtureBank(args.corpus, SPLITS, TEST_VOICES, noise_split="test")
    g = torch.Generator().manual_seed(7)
    length = int(args.seconds * 16000)
    predictor = sips.load_predictor(args.predictor)
    steps = {} if args.steps is None else {"steps": args.steps}
    rows = []
    for item in range(args.items):
        mix, clean = bank.noisy(1, length, g, snr_db=(0.0, 0.0))
        clean = clean[0, 0] if clean.dim() == 3 else clean[0]
        noise = mix[0] - clean  # at 0 dB; rescaled to each SNR
        versions = {"clean": clean}
        for snr in SNRS:
            noisy = clean + noise * 10 ** (-snr / 20)
            est = predictor(noisy[None])[0]
            versions[f"noisy {snr:g} dB"] = noisy
            versions[f"{args.predictor} {snr:g} dB"] = est[0]
            versions[f"{args.predictor} + sips {snr:g} dB"] = sips.refine_estimates(est, noisy, **steps)[0]
        for name, x in versions.items():
            rows.append(
                {
                    "item": item,
                    "version": name,
                    "score": sips.quality(x).score,
                    "dnsmos_ovrl": M.dnsmos(x)["dnsmos_ovrl"],
                    "pesq": M.pesq_wb(x, clean),
                }
            )
        print(f"item {item + 1}/{args.items}", file=sys.stderr, flush=True)
    by_item: dict[int, dict[str, dict]] = {}
    for r in rows:
        by_item.setdefault(r["item"], {})[r["version"]] = r
    ordered = {
        key: float(np.mean([v["clean"][key] > v["noisy 15 dB"][key] > v["noisy -5 dB"][key] for v in by_item.values()]))
        for key in ("score", "dnsmos_ovrl")
    }
    summary = {
        "items": args.items,
        "versions": len(rows),
        "ordered_clean_15_-5": ordered,
        "score_vs_dnsmos_ovrl": correlations([r["score"] for r in rows], [r["dnsmos_ovrl"] for r in rows]),
        "score_vs_pesq": correlations([r["score"] for r in rows], [r["pesq"] for r in rows]),
        "dnsmos_ovrl_vs_pesq": correlations([r["dnsmos_ovrl"] for r in rows], [r["pesq"] for r in rows]),
    }
    means = {}
    for r in rows:
        means.setdefault(r["version"], []).append((r["score"], r["dnsmos_ovrl"], r["pesq"]))
    print(f"{'version':<28} {'score':>7} {'OVRL':>6} {'PESQ':>6}")
    for name, values in means.items():
        s, o, p = np.mean(values, axis=0)
        print(f"{name:<28} {s:>7.3f} {o:>6.2f} {p:>6.2f}")
    print(
        f"clean > 15 dB > -5 dB: score {ordered['score']:.2f}, DNSMOS OVRL {ordered['dnsmos_ovrl']:.2f} of utterances"
    )
    for key in ("score_vs_dnsmos_ovrl", "score_vs_pesq", "dnsmos_ovrl_vs_pesq"):
        pearson, spearman = summary[key]
        print(f"{key:<22} Pearson {pearson:+.3f}  Spearman {spearman:+.3f}  (n = {len(rows)})")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
