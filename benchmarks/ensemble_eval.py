"""Ensemble refinement on the held-out test voices: quality of K = 1, 4, 8 stochastic members against
the deterministic result, and whether the members' disagreement marks the predictor's errors.

    python benchmarks/ensemble_eval.py CORPUS [--items 12] [--seconds 4] [--predictor semamba]
        [--steps 15] [--kappa 0.3] [--members 1 4 8] [--plot F.png] [--json F]

The test set is ``bench.py``'s enhancement set (speech of the held-out test voices, which no
shipped weights were trained on, with test noise at -5..15 dB).
For each item:
- the deterministic refinement (``kappa = 0``);
- ``K``-member ensembles (``kappa``, seed 0, mean of the members' encoded states).

Each result gets SI-SDR, PESQ and DNSMOS OVRL against the clean speech, as mean ± 95 % CI.
For the disagreement (``return_uncertainty=True``), the script reports the Pearson correlation,
across frames, of the largest ensemble's disagreement with the predictor's error per frame. The
error is ``|E(x_hat) - E(s)|^2`` in the encoded domain, averaged over channels and frequency like
the disagreement. The correlation is computed per item and then averaged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import enhancement_set  # noqa: E402

import sips  # noqa: E402
from sips import metrics as M  # noqa: E402
from sips.evaluation.evaluate import score_sources  # noqa: E402


def frame_error(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """``[T], [T] -> [N]``: the encoded-domain squared error per frame (peak scale of the clean)."""
    scale = clean.abs().max().clamp_min(1e-8)
    diff = sips.spectral.encode((estimate / scale)[None]) - sips.spectral.encode((clean / scale)[None])
    return diff.square().mean(dim=(1, 2))[0]


def paired_differences(columns: dict[str, list[dict]], names: list[str]) -> str:
    """Per-item differences of each ensemble against the deterministic result, mean ± 95 % CI."""
    lines = ["| paired difference | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for column in (c for c in columns if c.startswith("K = ")):
        cells = []
        for m in names:
            diffs = [a[m] - b[m] for a, b in zip(columns[column], columns["deterministic"], strict=True)]
            mean, half = M.mean_ci(diffs)
            cells.append(f"{mean:+.3f} ± {half:.3f}")
        lines.append(f"| {column} − deterministic | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--predictor", default="semamba")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--kappa", type=float, default=0.3)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot", default=None, help="draw the first item's disagreement over its spectrogram")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = enhancement_set(args.corpus, args.items, int(args.seconds * 16000))
    predictor = sips.load_predictor(args.predictor)
    metrics = ["si_sdr", "pesq", "dnsmos"]
    columns: dict[str, list[dict]] = {args.predictor: [], "deterministic": []}
    columns.update({f"K = {k}": [] for k in args.members})
    correlation = []
    for index, (mix, ref) in enumerate(data):
        est = predictor(mix[None])[0]
        columns[args.predictor].append(score_sources(est, ref, metrics))
        det = sips.refine_estimates(est, mix, steps=args.steps)
        columns["deterministic"].append(score_sources(det, ref, metrics))
        for k in args.members:
            out, spread = sips.refine_estimates(
                est, mix, steps=args.steps, kappa=args.kappa, seed=0, ensemble=k, return_uncertainty=True
            )
            columns[f"K = {k}"].append(score_sources(out, ref, metrics))
        error = frame_error(est[0], ref[0])
        n = min(len(error), spread.shape[-1])
        correlation.append(float(np.corrcoef(spread[0, :n].numpy(), error[:n].numpy())[0, 1]))
        if args.plot and index == 0:
            from sips.evaluation.plot import uncertainty

            uncertainty(
                out[0], spread[0], error=error, path=args.plot, title=f"K = {args.members[-1]}, kappa = {args.kappa}"
            )
        print(f"item {index + 1}/{len(data)}", file=sys.stderr, flush=True)
    names = ["si_sdr", "pesq", "dnsmos_ovrl"]
    print(f"{args.items} items x {args.seconds:g} s, {args.predictor}, {args.steps} steps, kappa {args.kappa}")
    print("| result | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for column, scores in columns.items():
        cells = []
        for m in names:
            mean, half = M.mean_ci([s[m] for s in scores])
            cells.append(f"{mean:.3f} ± {half:.3f}")
        print(f"| {column} | " + " | ".join(cells) + " |")
    print(paired_differences(columns, names))
    mean, half = M.mean_ci(correlation)
    print(f"disagreement (K = {args.members[-1]}) vs predictor error per frame: Pearson r = {mean:.3f} ± {half:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"columns": columns, "correlation": correlation}, indent=1))


if __name__ == "__main__":
    main()
