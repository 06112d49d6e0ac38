"""Speed of the default pipeline (predictor + refinement, embedded prior) on 10 s of audio, 2 threads.

Usage: python benchmarks/speed.py [--seconds 10] [--steps N --method M --kappa K --ensemble K]
       [--predictor NAME] [--threads 2]

Times one network call, then ``refine`` with a near-free predictor (a scaling) at the library's
default settings (or those given) and, as the baseline in the same run, at the published system's
15 Euler steps with kappa 0: that is the refinement's own cost. Then the default pipeline as
``sips refine`` runs it: the default predictor (``--predictor``; default the best installed
enhancer, ``sips.predictors.default_predictor_name``) alone, at its own rate, and predictor +
refinement, each as a real-time factor (RTF = seconds per audio-second). Issue 21's speed goal is
a refinement RTF of at most 0.5 at the defaults on this 2-core machine.
"""

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import sips
from sips import spectral
from sips.defaults import SAMPLER
from sips.method.sampler import nfe

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
    parser.add_argument("--predictor", default=None, help="the pipeline's predictor; default the best installed")
    parser.add_argument("--threads", type=int, default=2)
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
    name = args.predictor or sips.predictors.default_predictor_name()
    predictor = sips.load_predictor(name)
    rate = predictor.sample_rate
    native = sips.bands.resample(mixture, 16000, rate)
    with torch.inference_mode():
        predictor(native[None, :rate])  # warm-up
        alone = _timed(lambda: predictor(native[None]))
    pipeline = _timed(lambda: sips.refine(predictor, mixture, sample_rate=16000, prior=prior, seed=0, **settings))
    print(f"predictor {name} alone ({rate} Hz): {alone:.2f} s, RTF {alone / args.seconds:.3f}")
    print(
        f"pipeline {name} + refinement: {pipeline:.2f} s, RTF {pipeline / args.seconds:.3f} "
        f"(refinement and resampling: RTF {(pipeline - alone) / args.seconds:.3f})"
    )


if __name__ == "__main__":
    main()
