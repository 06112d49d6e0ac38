"""Peak memory and time of refining long files: 1, 10 and 60 minutes (a benchmark, not a test).

Each length is a 16 kHz PCM file made by repeating the shipped example (``examples/noisy.wav``)
with a slowly varying gain, refined by ``sips.files.refine_file`` (the CLI's path) with the
embedded prior in a fresh process, which reports its own peak RSS. Peak RSS should stay flat:
the file is streamed, and memory depends on the window, not on the length. The first length is
the baseline of the ratios.

    python benchmarks/long_audio.py [--minutes 1 10 60] [--steps 2] [--predictor wiener]

``--steps 2`` (one network call per window) keeps the hour-long case to minutes; memory does not
depend on the number of steps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time, torch
torch.set_num_threads(int(sys.argv[4]))
import sips
from sips.io.files import refine_file
start = time.perf_counter()
refine_file(sips.load_predictor(sys.argv[3]), sys.argv[1], sys.argv[2], steps=int(sys.argv[5]))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_long_file(path: Path, minutes: float, rate: int = 16000) -> None:
    """Write ``minutes`` of the example, repeated under a slow gain, block by block."""
    example, file_rate = sf.read(ROOT / "examples" / "noisy.wav", dtype="float32")
    assert file_rate == rate
    total = int(minutes * 60 * rate)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as out:
        done = 0
        while done < total:
            n = min(len(example), total - done)
            gain = 0.6 + 0.3 * np.sin(2 * np.pi * (done + np.arange(n)) / (37.0 * rate))
            out.write((example[:n] * gain).astype(np.float32))
            done += n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--predictor", default="wiener")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sips-long-") as tmp:
        for minutes in args.minutes:
            src, dst = Path(tmp) / f"in_{minutes:g}.wav", Path(tmp) / f"out_{minutes:g}.wav"
            make_long_file(src, minutes)
            cmd = [sys.executable, "-c", CHILD, str(src), str(dst), args.predictor, str(args.threads), str(args.steps)]
            result = subprocess.run(cmd, capture_output=True, text=True, check=True)
            stats = json.loads(result.stdout.strip().splitlines()[-1])
            assert sf.info(dst).frames == sf.info(src).frames
            rows.append((minutes, stats["seconds"], stats["peak_rss_mb"]))
            print(f"{minutes:g} min done: {stats}", file=sys.stderr, flush=True)
            src.unlink()
            dst.unlink()
    base = rows[0]
    print(f"predictor {args.predictor}, {args.steps} steps, embedded prior, {args.threads} threads")
    print(f"{'minutes':>8} {'seconds':>9} {'RTF':>6} {'peak RSS MB':>12} {'RSS ratio':>10}")
    for minutes, seconds, rss in rows:
        print(f"{minutes:>8g} {seconds:>9.1f} {seconds / (minutes * 60):>6.3f} {rss:>12.0f} {rss / base[2]:>10.2f}")


if __name__ == "__main__":
    main()
