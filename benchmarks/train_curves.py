"""Validation loss per CPU minute of training runs (issue 21, item 3): compare runs at equal CPU time.

    python benchmarks/train_curves.py RUN_DIR [RUN_DIR ...] [--at 2 4 6] [--json F]

Each RUN_DIR is a ``sips train`` output folder (or a folder of them, e.g. the OUT_DIR of
``priors/sips-cpu-16k/study.sh``); its ``summary.json`` records the validation loss and MSE of
the EMA weights against the training CPU seconds (validation excluded). For each run the script
prints steps per CPU minute and the validation loss/MSE linearly interpolated at the given CPU
minutes (default: 1/4, 1/2, 3/4 and all of the shortest run's CPU time); lower is better. A run
that has not reached a time (or whose first record comes later) shows ``-``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def runs(paths: list[str]) -> dict[str, dict]:
    """``{name: summary}`` of every folder (or sub-folder) holding a summary.json with a CPU history."""
    found = {}
    for path in map(Path, paths):
        candidates = [path] if (path / "summary.json").is_file() else sorted(p for p in path.iterdir() if p.is_dir())
        for run in candidates:
            if not (run / "summary.json").is_file():
                continue
            summary = json.loads((run / "summary.json").read_text())
            history = [h for h in summary.get("history", []) if "train_cpu_seconds" in h]
            if history:
                found[run.name] = dict(summary, history=history)
    return found


def at(history: list[dict], seconds: float, key: str) -> float | None:
    """``key`` linearly interpolated at ``seconds`` of training CPU time (None past the last record)."""
    points = [(h["train_cpu_seconds"], h[key]) for h in history]
    if seconds < points[0][0] or seconds > points[-1][0]:
        return None
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        if t0 <= seconds <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (seconds - t0) / (t1 - t0)
    return points[-1][1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--at", type=float, nargs="+", default=None, help="CPU minutes to compare at")
    p.add_argument("--json", default=None, help="write the table as JSON here")
    args = p.parse_args()
    found = runs(args.runs)
    if not found:
        raise SystemExit("No summary.json with a CPU-time history in the given folders.")
    shortest = min(s["history"][-1]["train_cpu_seconds"] for s in found.values()) / 60
    minutes = args.at or [math.floor(shortest * f * 100) / 100 for f in (0.25, 0.5, 0.75, 1.0)]
    header = " | ".join(f"loss @ {m:g} min | MSE @ {m:g} min" for m in minutes)
    print(f"| run | steps | CPU min | steps/CPU min | {header} |")
    print("|---|---|---|---|" + "---|" * (2 * len(minutes)))
    table = {}
    for name, summary in found.items():
        history = summary["history"]
        cpu_min = history[-1]["train_cpu_seconds"] / 60
        steps = history[-1]["step"]
        row = {"steps": steps, "cpu_minutes": cpu_min, "valid_init": summary.get("valid_init")}
        cells = []
        for m in minutes:
            loss, mse = at(history, 60 * m, "valid_loss"), at(history, 60 * m, "valid_mse")
            row[f"{m:g}"] = {"valid_loss": loss, "valid_mse": mse}
            cells.append(f"{loss:.4f}" if loss is not None else "-")
            cells.append(f"{mse:.4f}" if mse is not None else "-")
        table[name] = row
        print(f"| {name} | {steps} | {cpu_min:.1f} | {steps / cpu_min:.1f} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
