"""Performance: predictor and refine time, real-time factor, time per network call, peak memory;
and quality against the number of network calls (NFE) for Euler and Heun.

    python benchmarks/perf.py [--lengths 1 10 60] [--steps 5 15 30] [--predictor semamba]
        [--nfe-corpus CORPUS --nfe-items 6] [--plots DIR]

Timing part: synthetic speech-like input (the numbers do not depend on the content); one warm-up
call first. Peak RSS is sampled every 5 ms while each run is in flight (resident memory of the
whole process, so it includes the loaded models). NFE part: a small fixed enhancement subset of
the held-out validation voices (bench.py's enhancement set with ``voices="valid"``; the
test voices stay untouched for the tables), SI-SDR and DNSMOS OVRL of the refined output for each
method and step count; the question is how few network calls reach the 15-step Euler result.
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from pathlib import Path

import torch

import sips
from sips import metrics as M


class PeakRSS:
    """Context manager sampling the resident set size (MiB) of this process; ``.peak`` afterwards."""

    def __enter__(self):
        self.peak, self._stop = _rss(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def speech_like(seconds: float, rate: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    f0 = 120 + 30 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / rate
    voiced = sum(torch.sin(k * phase) / k for k in range(1, 20))
    g = torch.Generator().manual_seed(0)
    return 0.3 * voiced * torch.sin(math.pi * 4 * t).abs() ** 2 + 0.03 * torch.randn(t.shape, generator=g)


def calls(steps: int, method: str) -> int:
    """Network calls of the ODE sampler (t = 0 and t = 1 need none, as gamma_dot vanishes there)."""
    return sips.sampler.nfe(steps, method)


def timing(args) -> None:
    predictor = sips.load_predictor(args.predictor)
    prior = sips.load_prior()
    warm = speech_like(1.0)
    sips.refine_estimates(predictor(warm[None])[0], warm, prior=prior, steps=2)
    print(
        "| input | predictor | method | steps | calls | predictor s | refine s | RTF (both) | s/call | calls/s | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for seconds in args.lengths:
        mix = speech_like(seconds)
        start = time.perf_counter()
        with PeakRSS() as mem_pred:
            est = predictor(mix[None])[0]
        t_pred = time.perf_counter() - start
        for method in ("euler", "heun"):
            for steps in args.steps:
                start = time.perf_counter()
                with PeakRSS() as mem:
                    sips.refine_estimates(est, mix, prior=prior, steps=steps, method=method)
                t_ref = time.perf_counter() - start
                n = calls(steps, method)
                print(
                    f"| {seconds:g} s | {args.predictor} | {method} | {steps} | {n} | {t_pred:.2f} | {t_ref:.2f} | "
                    f"{(t_pred + t_ref) / seconds:.2f} | {t_ref / n:.3f} | {n / t_ref:.2f} | "
                    f"{max(mem.peak, mem_pred.peak):.0f} |",
                    flush=True,
                )


def nfe(args) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench import enhancement_set

    data = enhancement_set(args.nfe_corpus, args.nfe_items, int(4 * 16000), "valid")
    predictor = sips.load_predictor(args.predictor)
    estimates = [predictor(mix[None])[0] for mix, _ in data]
    results: dict[str, dict[str, list[tuple[int, float]]]] = {"si_sdr": {}, "dnsmos_ovrl": {}}
    print("\n| method | steps | calls | SI-SDR dB | DNSMOS OVRL |")
    print("|---|---|---|---|---|")
    for method, step_list in (("euler", args.nfe_euler), ("heun", args.nfe_heun)):
        for steps in step_list:
            sdr, ovrl = [], []
            for (mix, ref), est in zip(data, estimates, strict=True):
                out = sips.refine_estimates(est, mix, steps=steps, method=method)[0]
                sdr.append(float(M.si_sdr(out, ref[0])))
                ovrl.append(M.dnsmos(out)["dnsmos_ovrl"])
            n = calls(steps, method)
            s, o = sum(sdr) / len(sdr), sum(ovrl) / len(ovrl)
            results["si_sdr"].setdefault(method, []).append((n, s))
            results["dnsmos_ovrl"].setdefault(method, []).append((n, o))
            print(f"| {method} | {steps} | {n} | {s:.3f} | {o:.3f} |", flush=True)
    base_sdr = sum(float(M.si_sdr(e[0], r[0])) for (_, r), e in zip(data, estimates, strict=True)) / len(data)
    print(f"\n{args.predictor} alone: SI-SDR {base_sdr:.3f} dB")
    if args.plots:
        from sips.evaluation.plot import nfe_curve

        ref15 = dict(results["si_sdr"]["euler"]).get(14)
        nfe_curve(results["si_sdr"], reference=ref15, path=Path(args.plots) / "nfe_si_sdr.png")
        ref15 = dict(results["dnsmos_ovrl"]["euler"]).get(14)
        nfe_curve(results["dnsmos_ovrl"], ylabel="DNSMOS OVRL", reference=ref15, path=Path(args.plots) / "nfe_ovrl.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=float, nargs="+", default=[1, 10, 60])
    p.add_argument("--steps", type=int, nargs="+", default=[5, 15, 30])
    p.add_argument("--predictor", default="semamba")
    p.add_argument("--nfe-corpus", default=None, help="corpus root; enables the quality-vs-calls part")
    p.add_argument("--nfe-items", type=int, default=6)
    p.add_argument("--nfe-euler", type=int, nargs="+", default=[3, 5, 8, 15, 30])
    p.add_argument("--nfe-heun", type=int, nargs="+", default=[2, 3, 4, 6, 8])
    p.add_argument("--plots", default=None)
    p.add_argument("--skip-timing", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.skip_timing:
        timing(args)
    if args.nfe_corpus:
        nfe(args)


if __name__ == "__main__":
    main()
