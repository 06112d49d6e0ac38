"""Choosing the sampler defaults: quality against network calls on the validation voices.

    python benchmarks/sweep.py CORPUS [--items 16] [--seconds 4] [--configs euler:8 heun:4 euler:5:0.3:2 ...]
        [--predictors deepfilternet gtcrn convtasnet] [--rescale none gain] [--plots DIR] [--json F] [--threads N]

A config is ``method:steps[:kappa[:ensemble[:strength]]]``. The predictor ``oracle`` hands the
clean reference in as the estimate: how far refinement moves a perfect estimate. Every config refines the same items: the
held-out *validation* voices (``sips.corpus.VALID_VOICES``, never the test voices), enhancement
with test noise at -5..15 dB for an enhancer, two-voice mixtures for a separator (as in
bench.py). For each config and rescaling mode the script prints the mean of each metric and the
paired difference to the predictor alone (scored after the same rescaling) with its 95 %
confidence interval, and the network calls per source (NFE x ensemble). The rule that picks the
defaults (issue 12): the best perceptual quality (DNSMOS OVRL, then PESQ) among the configs whose
ESTOI is not lower than the predictor's by more than 0.01 and whose refine RTF on 10 s stays
within 0.5 on 2 CPU threads (``benchmarks/speed.py`` measures it for the chosen one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench import enhancement_set, predict, separation_set  # noqa: E402

import sips  # noqa: E402
from sips import metrics as M  # noqa: E402
from sips import scaling  # noqa: E402
from sips.evaluation.evaluate import score_sources  # noqa: E402
from sips.method.sampler import nfe  # noqa: E402

DEFAULT_CONFIGS = [
    "euler:3",
    "euler:5",
    "euler:8",
    "euler:15",
    "heun:3",
    "heun:4",
    "euler:5:0.3",
    "euler:3:0.3:2",
    "euler:8:0.3:4",
]
KEYS = ("dnsmos_ovrl", "pesq", "estoi", "si_sdr", "dnsmos_sig", "dnsmos_bak")


def parse(config: str) -> dict:
    parts = config.split(":")
    method, steps = parts[0], int(parts[1])
    kappa = float(parts[2]) if len(parts) > 2 else 0.0
    ensemble = int(parts[3]) if len(parts) > 3 else 1
    strength = float(parts[4]) if len(parts) > 4 else 1.0
    return {"method": method, "steps": steps, "kappa": kappa, "ensemble": ensemble, "strength": strength}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus")
    p.add_argument("--items", type=int, default=16)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    p.add_argument("--predictors", nargs="+", default=["deepfilternet", "gtcrn", "convtasnet"])
    p.add_argument("--rescale", nargs="+", default=["none", "gain"], choices=("none", "gain"))
    p.add_argument("--metrics", nargs="+", default=["si_sdr", "pesq", "estoi", "dnsmos"])
    p.add_argument("--prior", default=None, help="prior to sweep (default: the embedded one)")
    p.add_argument("--plots", default=None, help="write quality-against-calls plots here")
    p.add_argument("--json", default=None, help="write all per-item scores here")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    prior = sips.load_prior(args.prior)
    length = int(args.seconds * 16000)
    everything: dict = {}
    for name in args.predictors:
        if name == "oracle":  # the clean reference handed in as the estimate: how far refinement moves it
            data = enhancement_set(args.corpus, args.items, length, "valid")
            raw, n_src = [ref for _, ref in data], 1
        else:
            predictor = sips.load_predictor(name)
            n_src = predictor.n_src
            make = enhancement_set if n_src == 1 else separation_set
            data = make(args.corpus, args.items, length, "valid")
            raw = [predict(predictor, mix) for mix, _ in data]  # at the predictor's own rate, as sips runs it
        modes = args.rescale if n_src == 1 else ["gain"]
        for mode in modes:
            estimates = [scaling.rescale(est, mix, mode) for est, (mix, _) in zip(raw, data, strict=True)]
            base = [score_sources(est, ref, args.metrics) for est, (_, ref) in zip(estimates, data, strict=True)]
            rows = {"predictor": {"calls": 0, "scores": base}}
            print(f"\n{name}, rescale {mode}, {args.items} validation items of {args.seconds:g} s")
            keys = [k for k in KEYS if k in base[0]]
            print("| config | calls | " + " | ".join(keys) + " |")
            print("|---|---|" + "---|" * len(keys))
            print("| predictor | 0 | " + " | ".join(f"{M.mean_ci([b[k] for b in base])[0]:.3f}" for k in keys) + " |")
            for config in args.configs:
                opts = parse(config)
                scores = []
                for est, (mix, ref) in zip(estimates, data, strict=True):
                    out = sips.refine_estimates(est, mix, prior=prior, rescale="none", seed=0, **opts)
                    scores.append(score_sources(out, ref, args.metrics))
                calls = nfe(opts["steps"], opts["method"], opts["kappa"]) * opts["ensemble"]
                rows[config] = {"calls": calls, "scores": scores}
                cells = []
                for k in keys:
                    diff, half = M.mean_ci([s[k] - b[k] for s, b in zip(scores, base, strict=True)])
                    cells.append(f"{M.mean_ci([s[k] for s in scores])[0]:.3f} ({diff:+.3f} ± {half:.3f})")
                print(f"| {config} | {calls} | " + " | ".join(cells) + " |", flush=True)
                everything[f"{name}/{mode}"] = rows
                if args.json:  # after every config, so that an interrupted sweep keeps what it measured
                    Path(args.json).write_text(json.dumps(everything, indent=1))
    if args.plots:
        from sips.evaluation.plot import nfe_curve

        for key, rows in everything.items():
            for metric in ("dnsmos_ovrl", "pesq"):
                curves: dict[str, list[tuple[float, float]]] = {}
                for config, row in rows.items():
                    if config == "predictor":
                        continue
                    o = parse(config)
                    label = f"{o['method']}, κ={o['kappa']:g}, K={o['ensemble']}, strength {o['strength']:g}"
                    curves.setdefault(label, []).append(
                        (row["calls"], M.mean_ci([s[metric] for s in row["scores"]])[0])
                    )
                reference = M.mean_ci([s[metric] for s in rows["predictor"]["scores"]])[0]
                name = key.replace("/", "_")
                nfe_curve(
                    curves,
                    ylabel=metric,
                    reference=reference,
                    reference_label="predictor alone",
                    path=Path(args.plots) / f"sweep_{name}_{metric}.png",
                )


if __name__ == "__main__":
    main()
