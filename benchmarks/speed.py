"""Speed of refinement with the embedded prior on 10 s of audio (prints numbers; not a test).

Usage: python benchmarks/speed.py [--seconds 10] [--steps N --method M --kappa K --ensemble K]
       [--predictor semamba] [--threads 2]

Times one network call, then ``refine`` at the library's default settings (or those given) and,
as the baseline in the same run, at the published system's 15 Euler steps with kappa 0. The
predictor is a near-free scaling, so refine time is the prior's and the sampler's; ``--predictor``
also times that predictor alone on the same input, reported separately. The speed goal of
issue 12 is a refine RTF of at most 0.5 at the defaults on this 2-core machine.
"""

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import sips
from sips import spectral
from sips.defaults import SAMPLER
from sips.sampler import nfe

PUBLISHED = {"steps": 15, "method": "euler", "kappa": 0.0, "ensemble": 1}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--method", default=None, choices=("auto", "euler", "heun"))
    parser.add_argument("--kappa", type=float, default=None)
    parser.add_argument("--ensemble", type=int, default=None)
    parser.add_argument("--predictor", default=None, help="also time this predictor alone")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = {k: getattr(args, k) for k in ("steps", "method", "kappa", "ensemble")}
    settings = {k: SAMPLER[k] if v is None else v for k, v in chosen.items()}
    prior = sips.load_prior()
    n = int(args.seconds * 16000)
    mixture = torch.randn(n, generator=torch.Generator().manual_seed(0)) * 0.1
    x, _ = spectral.pad_frames(spectral.encode(mixture), prior.config.frame_multiple)
    t = torch.tensor([0.5])
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            prior(x, t)
        prior(x, t)
        per_call = _timed(lambda: [prior(x, t) for _ in range(3)]) / 3
    identity = sips.as_predictor(lambda m: m * 0.9)  # predictor cost ~0
    print(f"threads {torch.get_num_threads()}, input {args.seconds:.1f} s, {prior.num_parameters:,} parameters")
    print(f"GFLOP per call per audio-second: {counter.get_total_flops() / 1e9 / args.seconds:.2f}")
    print(f"time per network call: {per_call:.3f} s ({per_call / args.seconds:.4f} s per audio-second)")
    results = {}
    for name, opts in (
        ("published 15-step Euler", PUBLISHED),
        ("defaults" if not any(chosen.values()) else "chosen", settings),
    ):
        seconds = _timed(lambda o=opts: sips.refine(identity, mixture, prior=prior, seed=0, **o))
        calls = nfe(opts["steps"], opts["method"], opts["kappa"]) * opts["ensemble"]
        results[name] = seconds
        print(f"refine, {name} {opts}: {calls} calls, {seconds:.2f} s, RTF {seconds / args.seconds:.3f}")
    base, last = results["published 15-step Euler"], list(results.values())[-1]
    print(f"speed-up against the published setting: {base / last:.2f}x")
    if args.predictor:
        predictor = sips.load_predictor(args.predictor)
        with torch.inference_mode():
            predictor(mixture[None, :16000])  # warm-up
            seconds = _timed(lambda: predictor(mixture[None]))
        print(f"predictor {args.predictor} alone: {seconds:.2f} s, RTF {seconds / args.seconds:.3f}")


if __name__ == "__main__":
    main()
