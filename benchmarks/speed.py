"""Speed of the embedded prior on 10 s of audio (prints numbers; not a test).

Usage: python benchmarks/speed.py [--seconds 10] [--steps 15]
"""

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import sips
from sips import spectral


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args()
    prior = sips.load_prior()
    n = int(args.seconds * 16000)
    mixture = torch.randn(n, generator=torch.Generator().manual_seed(0)) * 0.1
    x, _ = spectral.pad_frames(spectral.encode(mixture), prior.config.frame_multiple)
    t = torch.tensor([0.5])
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            prior(x, t)
        prior(x, t)
        start = time.perf_counter()
        for _ in range(3):
            prior(x, t)
        per_call = (time.perf_counter() - start) / 3
    identity = sips.as_predictor(lambda m: m * 0.9)  # baseline: predictor cost ~0
    start = time.perf_counter()
    sips.refine(identity, mixture, prior=prior, steps=args.steps)
    refine_s = time.perf_counter() - start
    print(f"threads {torch.get_num_threads()}, input {args.seconds:.1f} s, {prior.num_parameters:,} parameters")
    print(f"GFLOP per call per audio-second: {counter.get_total_flops() / 1e9 / args.seconds:.2f}")
    print(f"time per network call: {per_call:.3f} s ({per_call / args.seconds:.4f} s per audio-second)")
    print(f"refine at {args.steps} steps: {refine_s:.2f} s, real-time factor {refine_s / args.seconds:.3f}")


if __name__ == "__main__":
    main()
