"""CPU speed of the full SEMamba forward with the parallel selective scan vs the per-step reference loop.

Published configuration (hid 64, 4 TF-Mamba blocks, d_state 16, expand 4, n_fft 400) with random
weights, the whole enhancement pipeline (STFT, network, iSTFT) on random audio at 16 kHz. Prints
seconds per second of audio for both scans and their ratio. Not a test.

    python adapters/semamba/benchmarks/scan_speed.py [--seconds 1.0] [--threads 1] [--repeats 1]

The per-step loop is about three times slower than the parallel scan on one thread; keep ``--seconds`` small
(1 s of audio runs in well under a minute on one thread).
"""

from __future__ import annotations

import argparse
import time

import torch
from sips_semamba import SEMambaPredictor, count_parameters, enhance


def _time(model: torch.nn.Module, wav: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor]:
    best = float("inf")
    out = wav
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.inference_mode():
            out = enhance(model, wav)
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of the test audio (default 1 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per scan; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    model = SEMambaPredictor.from_config(None, seed=args.seed).model.eval()
    rate = model.config["stft_cfg"]["sampling_rate"]
    wav = 0.1 * torch.randn(1, int(args.seconds * rate), generator=torch.Generator().manual_seed(args.seed))
    frames = wav.shape[-1] // model.config["stft_cfg"]["hop_size"] + 1
    print(
        f"SEMamba published config, {count_parameters(model):,} parameters, random weights; "
        f"{args.seconds:g} s of 16 kHz audio ({frames} frames); torch {torch.__version__}, {args.threads} thread(s)"
    )
    warm = wav[:, : rate // 10]
    results = {}
    for scan in ("parallel", "loop"):
        model.scan = scan
        _time(model, warm, 1)  # first-call overhead
        seconds, out = _time(model, wav, args.repeats)
        results[scan] = (seconds, out)
        print(f"  {scan:8s}: {seconds:7.2f} s total, {seconds / args.seconds:7.2f} s per second of audio")
    (par, out_par), (loop, out_loop) = results["parallel"], results["loop"]
    print(f"  speed-up parallel vs loop: {loop / par:.2f}x")
    print(f"  max |parallel - loop| on the output waveform: {(out_par - out_loop).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
