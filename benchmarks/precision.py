"""Speed-ups that cost nothing, against the plain float32 path on the same input in the same run.

Rows:
- float32: the baseline (``sips.refine`` with the defaults);
- weights normalised per use: the magnitude-preserving weights normalised at every network call
  (what the network does outside :func:`sips.nets.edm2.frozen_weights`), network calls only;
- bfloat16: the prior network under autocast (``dtype=torch.bfloat16``);
- torch.compile: the prior network compiled with inductor (the first, compiling run reported apart);
- chunk_batch=2: two windows per batch (long input only);
- float16 / bfloat16 on CUDA when ``--device cuda``.

For each: seconds, speed-up over float32, and the output's SI-SDR against float32's output and
its largest absolute difference.

    python benchmarks/precision.py [--seconds 10] [--steps 15] [--device cpu|cuda] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import soundfile as sf
import torch

import sips
import sips.prediction.wiener  # noqa: F401  (registers "wiener" where sips is on the path but not installed)
from sips.evaluation.metrics import si_sdr
from sips.method.nets.edm2 import frozen_weights


def _mixture(seconds: float) -> torch.Tensor:
    example, _ = sf.read("examples/noisy.wav", dtype="float32")
    reps = int(np.ceil(seconds * 16000 / len(example)))
    return torch.from_numpy(np.tile(example, reps)[: int(seconds * 16000)])


def _timed(fn, repeats: int = 1):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--long-seconds", type=float, default=40.0, help="input for the chunk_batch row")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    prior = sips.load_prior(device=device)
    pred = sips.load_predictor("wiener")
    mix = _mixture(args.seconds).to(device)

    def run(m=mix, **kw):
        return sips.refine(pred, m, prior=prior, steps=args.steps, **kw)

    rows = []
    base_t, base = _timed(run, args.repeats)
    rows.append(("float32", base_t, base, base))

    # network calls alone: weights normalised once vs at every use
    x = sips.spectral.encode(mix[None] / mix.abs().max())
    x, _ = sips.spectral.pad_frames(x, prior.config.frame_multiple)
    t = torch.full((1,), 0.4, device=device)
    with torch.inference_mode():
        per_use, _ = _timed(lambda: [prior(x, t) for _ in range(5)], args.repeats)
        with frozen_weights(prior):
            once, _ = _timed(lambda: [prior(x, t) for _ in range(5)], args.repeats)
    dtypes = [torch.bfloat16] + ([torch.float16] if device.type == "cuda" else [])
    for dtype in dtypes:
        seconds, out = _timed(lambda d=dtype: run(dtype=d), args.repeats)
        rows.append((str(dtype).replace("torch.", ""), seconds, out, base))
    first, _ = _timed(lambda: run(compile=True), 1)  # includes compiling
    seconds, out = _timed(lambda: run(compile=True), args.repeats)
    rows.append(("torch.compile (inductor)", seconds, out, base))
    long_mix = _mixture(args.long_seconds).to(device)
    long_t, long_base = _timed(lambda: run(long_mix), 1)
    rows.append((f"{args.long_seconds:g} s, chunk_batch=1", long_t, long_base, long_base))
    seconds, out = _timed(lambda: run(long_mix, chunk_batch=2), 1)
    rows.append((f"{args.long_seconds:g} s, chunk_batch=2", seconds, out, long_base))

    print(
        f"{args.seconds:g} s input, {args.steps} steps, embedded prior, wiener predictor, {device}, {args.threads} threads"
    )
    print(f"{'variant':<26} {'seconds':>8} {'speed-up':>9} {'SI-SDR vs f32':>14} {'max |diff|':>11}")
    print(f"{'5 calls, weights per use':<26} {per_use:>8.2f} {'1.00':>9}")
    print(f"{'5 calls, weights once':<26} {once:>8.2f} {per_use / once:>9.2f}")
    print(f"{'(first compiled run)':<26} {first:>8.2f}")
    for name, seconds, out, ref in rows:
        ref_t = base_t if "chunk_batch" not in name else long_t
        same = torch.equal(out, ref)
        sdr = "identical" if same else f"{float(si_sdr(out.float(), ref.float()).mean()):.1f} dB"
        diff = float((out.float() - ref.float()).abs().max())
        print(f"{name:<26} {seconds:>8.2f} {ref_t / seconds:>9.2f} {sdr:>14} {diff:>11.2e}")


if __name__ == "__main__":
    main()
