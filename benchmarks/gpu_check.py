"""CUDA checks (run where a GPU is available; prints numbers, asserts nothing).

    python benchmarks/gpu_check.py

1. ``sips.refine`` on CUDA against CPU (embedded prior, wiener predictor): max difference, TF32
   off and on.
2. The shipped SEMamba and Conv-TasNet predictors on CUDA against CPU.
3. Speed on CUDA: refine real-time factor of the embedded prior (10 s, 15 steps), and time per
   network call of the published-size prior (62.5 M parameters, random weights) in float32 and
   under bfloat16 autocast, with the SI-SDR between the bf16 and fp32 refinements.
"""

from __future__ import annotations

import time

import torch

import sips
from sips.evaluation.metrics import si_sdr


def _adapters() -> None:
    """Register the built-in adapters even where they are on the path but not installed."""
    import importlib

    import sips.prediction.wiener  # noqa: F401  (registers "wiener" by its decorator)

    for name, target in (("semamba", "sips_semamba:load"), ("convtasnet", "sips_asteroid:load_convtasnet")):
        if name not in sips.available_adapters():
            module, attr = target.split(":")
            try:
                sips.register_adapter(name)(getattr(importlib.import_module(module), attr))
            except ImportError as err:
                print(f"{name}: not importable ({err})")


def _speech(seconds: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * 16000)) / 16000
    voiced = sum(torch.sin(2 * torch.pi * 140 * k * t) / k for k in range(1, 15))
    return 0.2 * voiced * torch.sin(torch.pi * 3 * t).abs() + 0.05 * torch.randn(t.shape, generator=g)


def _sync_time(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main() -> None:
    assert torch.cuda.is_available(), "no CUDA device"
    print(torch.__version__, torch.cuda.get_device_name())
    _adapters()
    mix = _speech(4.0)
    wiener = sips.load_predictor("wiener")
    cpu = sips.refine(wiener, mix, steps=15)
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        gpu = sips.refine(wiener, mix.cuda(), steps=15, device="cuda").cpu()
        print(
            f"refine cuda vs cpu (tf32={tf32}): max |diff| {float((gpu - cpu).abs().max()):.2e}, "
            f"SI-SDR {float(si_sdr(gpu, cpu)):.1f} dB"
        )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for name in ("semamba", "convtasnet"):
        try:
            pred = sips.load_predictor(name)
            out_cpu = pred(mix[None])
            out_gpu = pred.to("cuda")(mix[None].cuda()).cpu()
            print(
                f"{name} cuda vs cpu: max |diff| {float((out_gpu - out_cpu).abs().max()):.2e}, "
                f"SI-SDR {float(si_sdr(out_gpu, out_cpu).min()):.1f} dB"
            )
        except sips.SipsError as err:
            print(f"{name}: {err}")
    ten = _speech(10.0).cuda()
    prior = sips.load_prior(device="cuda")
    sips.refine(wiener, ten, prior=prior, steps=3, device="cuda")
    _, seconds = _sync_time(lambda: sips.refine(wiener, ten, prior=prior, steps=15, device="cuda"))
    print(f"embedded prior, 10 s, 15 steps on CUDA: {seconds:.3f} s, RTF {seconds / 10:.4f}")
    big = sips.ScorePrior().cuda().eval()
    torch.manual_seed(0)
    for p in big.parameters():
        p.data.normal_(0, 0.02)
    x = torch.randn(1, 2, 256, 1280, device="cuda")  # 10 s
    t = torch.tensor([0.5], device="cuda")
    with torch.inference_mode():
        ref = big(x, t)
        _, fp32 = _sync_time(lambda: [big(x, t) for _ in range(5)])
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = big(x, t)
            _, bf16 = _sync_time(lambda: [big(x, t) for _ in range(5)])
    rel = float((low.float() - ref).norm() / ref.norm())
    print(
        f"published-size prior (62.5 M), 10 s: {fp32 / 5 * 1000:.1f} ms/call fp32, {bf16 / 5 * 1000:.1f} ms/call "
        f"bf16 autocast (relative difference {rel:.3f})"
    )
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out_bf16 = sips.refine(wiener, ten, prior=big, steps=15, device="cuda").float()
    out_fp32 = sips.refine(wiener, ten, prior=big, steps=15, device="cuda")
    print(f"refine with the published-size prior, bf16 vs fp32: SI-SDR {float(si_sdr(out_bf16, out_fp32)):.1f} dB")


if __name__ == "__main__":
    main()
