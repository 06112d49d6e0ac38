"""Training steps per second of the CPU prior: precision, torch.compile, threads and network size.

    python benchmarks/train_speed.py [--channels 8 16 32] [--modes fp32 bf16 compile compile-bf16]
        [--threads 1 2] [--steps 8] [--warmup 3] [--batch-size 8] [--segment-seconds 1.0]

One optimiser step is ``sips train``'s own (``sips.training.train.optimizer_step``, issue 21,
item 3): the uncertainty-weighted loss on a batch of encoded speech-like crops, backward, Adam,
the forced weight normalisation and the EMA update. For each network size, mode and thread count
the script prints the wall and CPU seconds per step (the median over ``--steps`` timed steps after
``--warmup`` untimed ones, which include compilation) and the ratios (wall and CPU) to the fp32 baseline of the same
size and thread count measured in the same run. The network is the embedded prior's architecture
(``channel_mult 1,1,2,4,8``, one block per level, attention only at the lowest level) with
``--channels`` base channels. Numbers, not assertions: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from sips import spectral
from sips.checks import autocast
from sips.method.prior import PriorConfig, ScorePrior
from sips.training.train import optimizer_step

MODES = ("fp32", "bf16", "compile", "compile-bf16")


def speech_like_batch(batch: int, samples: int, seed: int = 0) -> torch.Tensor:
    """``[batch, samples]`` harmonic bursts with a 4 Hz syllable envelope (a stand-in for speech)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    f0 = 100 + 150 * torch.rand(batch, 1, generator=g)
    wav = sum(torch.sin(2 * torch.pi * k * f0 * t) / k for k in range(1, 20))
    envelope = torch.sin(torch.pi * 4 * t + 6.28 * torch.rand(batch, 1, generator=g)).clamp(min=0)
    return 0.1 * wav * envelope + 0.003 * torch.randn(batch, samples, generator=g)


def time_steps(channels: int, mode: str, threads: int, args: argparse.Namespace) -> tuple[float, float]:
    """Median ``(wall, cpu)`` seconds of one optimiser step."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = PriorConfig(
        model_channels=channels,
        channel_mult=(1, 1, 2, 4, 8),
        num_blocks=1,
        attn_resolutions=(),
        logvar_channels=32,
    )
    net = ScorePrior(cfg).train()
    ema = copy.deepcopy(net).requires_grad_(False)
    model = torch.compile(net) if mode.startswith("compile") else net
    precision = "bf16" if mode.endswith("bf16") else "fp32"
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    hops = max(round(args.segment_seconds * spectral.SAMPLE_RATE / spectral.HOP), 1)
    frames = -(-(hops + 1) // cfg.frame_multiple) * cfg.frame_multiple  # as `sips train` crops
    spec = spectral.encode(speech_like_batch(args.batch_size, (frames - 1) * spectral.HOP))
    g = torch.Generator().manual_seed(1)
    walls, cpus = [], []
    for i in range(args.warmup + args.steps):
        t = torch.rand(args.batch_size, generator=g)
        z = torch.randn(spec.shape, generator=g)
        w0, c0 = time.perf_counter(), time.process_time()
        optimizer_step(model, net, ema, opt, (spec, t, z), cfg, autocast(torch.device("cpu"), precision), 0.999)
        if i >= args.warmup:
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--segment-seconds", type=float, default=1.0)
    args = p.parse_args()
    print(f"batch {args.batch_size} x {args.segment_seconds} s, median of {args.steps} steps after {args.warmup}")
    print("| channels | mode | threads | wall s/step | CPU s/step | steps/s | x fp32 (wall) | x fp32 (CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for channels in args.channels:
        for threads in args.threads:
            base = None
            for mode in args.modes:
                wall, cpu = time_steps(channels, mode, threads, args)
                base = (wall, cpu) if mode == "fp32" else base
                ratios = f"{base[0] / wall:.2f} | {base[1] / cpu:.2f}" if base else "- | -"
                print(
                    f"| {channels} | {mode} | {threads} | {wall:.3f} | {cpu:.3f} | {1 / wall:.2f} | {ratios} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
