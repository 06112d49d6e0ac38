"""Quality benchmark: each predictor alone and refined by sips, on a fixed seeded test set.

    python benchmarks/bench.py CORPUS [--items 20] [--seconds 4] [--steps 15] [--kappa 0]
        [--predictors semamba convtasnet wiener] [--metrics si_sdr pesq estoi dnsmos] [--plots DIR] [--json F]

Test sets are drawn from the corpus' test split with fixed seeds, so reruns are identical:
enhancement mixes clean speech with test noise at -5, 0, 5, 10 and 15 dB (in turn); separation
mixes two different speakers at -5..5 dB. Enhancement predictors (n_src = 1) run on the first,
separation predictors on the second. One table per task: the metric means of the mixture, the
predictor, predictor + sips, and the difference sips makes with its 95 % confidence interval.
Speech: the permissively licensed voices of the corpus (Asterisk, festvox_ru), for separation
four different people.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import sips
from sips import metrics as M
from sips.corpus import MixtureBank
from sips.evaluate import score_sources

SNRS = (-5.0, 0.0, 5.0, 10.0, 15.0)
ENHANCE_SOURCES = ["asterisk", "festvox_ru"]
SEPARATE_SOURCES = ["asterisk_en_US", "asterisk_fr_CA", "asterisk_ru_RU", "festvox_ru"]


def enhancement_set(corpus: str, items: int, length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(mixture [T], references [1, T])]``, SNRs cycling through ``SNRS``."""
    bank = MixtureBank(corpus, "test", ENHANCE_SOURCES)
    g = torch.Generator().manual_seed(2024)
    out = []
    for k in range(items):
        snr = SNRS[k % len(SNRS)]
        mix, clean = bank.noisy(1, length, g, snr_db=(snr, snr))
        out.append((mix[0], clean))
    return out


def separation_set(corpus: str, items: int, length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(mixture [T], references [2, T])]`` of two different speakers."""
    bank = MixtureBank(corpus, "test", SEPARATE_SOURCES)
    g = torch.Generator().manual_seed(2025)
    return [(m[0], s[0]) for m, s in (bank.two_speakers(1, length, g) for _ in range(items))]


def run_task(name, predictor, data, args) -> dict:
    """Scores per item for mixture / predictor / predictor + sips."""
    columns = {"mixture": [], name: [], f"{name} + sips": []}
    first = None
    for mix, ref in data:
        est = predictor(mix[None])[0]
        refined = sips.refine_estimates(est, mix, steps=args.steps, kappa=args.kappa, seed=0)
        columns["mixture"].append(score_sources(mix.expand_as(ref), ref, args.metrics))
        columns[name].append(score_sources(est, ref, args.metrics))
        columns[f"{name} + sips"].append(score_sources(refined, ref, args.metrics))
        if first is None:
            k = int(M.pit_si_sdr(est, ref)[1][0])  # the estimate that goes with the first reference
            first = {"mixture": mix, name: est[k], f"{name} + sips": refined[k], "reference": ref[0]}
    return {"columns": columns, "example": first}


def table(name: str, result: dict) -> str:
    columns = result["columns"]
    keys = list(columns["mixture"][0])
    plain, refined = columns[name], columns[f"{name} + sips"]
    lines = [f"| metric | mixture | {name} | {name} + sips | sips − {name} (95 % CI) |", "|---|---|---|---|---|"]
    for key in keys:
        means = [M.mean_ci([row[key] for row in columns[c]])[0] for c in columns]
        diff, half = M.mean_ci([b[key] - a[key] for a, b in zip(plain, refined, strict=True)])
        lines.append(f"| {key} | {means[0]:.3f} | {means[1]:.3f} | {means[2]:.3f} | {diff:+.3f} ± {half:.3f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus")
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--kappa", type=float, default=0.0)
    p.add_argument("--predictors", nargs="+", default=["semamba", "convtasnet"])
    p.add_argument("--metrics", nargs="+", default=["si_sdr", "pesq", "estoi", "dnsmos"])
    p.add_argument("--plots", default=None, help="write a spectrogram PNG of the first item per predictor here")
    p.add_argument("--json", default=None, help="write all per-item scores here")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    length = int(args.seconds * 16000)
    sets = {}
    results = {}
    for name in args.predictors:
        predictor = sips.load_predictor(name)
        task = "enhancement" if predictor.n_src == 1 else "separation"
        if task not in sets:
            make = enhancement_set if task == "enhancement" else separation_set
            sets[task] = make(args.corpus, args.items, length)
        result = run_task(name, predictor, sets[task], args)
        results[name] = result["columns"]
        print(
            f"\n{task}: {name}, {args.items} test items of {args.seconds:g} s, sips {args.steps} steps, kappa {args.kappa:g}"
        )
        print(table(name, result))
        if args.plots:
            from sips.plot import spectrograms

            spectrograms(result["example"], path=Path(args.plots) / f"{name}.png", title=f"{task}: {name}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
