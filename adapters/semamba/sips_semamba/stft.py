"""SEMamba's spectral front and back end and the enhancement pipeline around the network.

Pipeline (SIPS ``SEMamba.enhance``, batched): RMS-normalise each item
(``norm_factor = sqrt(S / sum(w^2))``), STFT (periodic Hann, ``center=True``, reflect padding),
magnitude compression ``|X| ** 0.3`` and phase ``angle(X)``, the network, the inverse
(``amp ** (1 / 0.3)``, iSTFT), divide by ``norm_factor``, crop or zero-pad to the input length.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def hann_window(win_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Periodic Hann window ``[win_size]`` (float32)."""
    return torch.hann_window(win_size, periodic=True, dtype=torch.float32, device=device)


def mag_phase_stft(
    wav: torch.Tensor, n_fft: int = 400, hop_size: int = 100, win_size: int = 400, compress_factor: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compressed magnitude, phase and compressed complex spectrum of ``wav``.

    Args:
        wav: ``[B, S]`` float32, ``S > n_fft // 2`` (reflect padding).

    Returns:
        ``mag [B, F, T]`` (``|X| ** compress_factor``), ``pha [B, F, T]`` (radians),
        ``com [B, F, T, 2]`` (``mag cos pha, mag sin pha``), with ``F = n_fft // 2 + 1``, ``T = 1 + S // hop``.
        Not differentiable at ``X = 0`` (use it on inputs that need no gradient).
    """
    spec = torch.stft(
        wav,
        n_fft,
        hop_length=hop_size,
        win_length=win_size,
        window=hann_window(win_size, wav.device),
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    mag = spec.abs().pow(compress_factor)
    pha = torch.angle(spec)  # atan2(imag, real)
    com = torch.stack([mag * torch.cos(pha), mag * torch.sin(pha)], dim=-1)
    return mag, pha, com


def mag_phase_istft(
    mag: torch.Tensor,
    pha: torch.Tensor,
    n_fft: int = 400,
    hop_size: int = 100,
    win_size: int = 400,
    compress_factor: float = 0.3,
) -> torch.Tensor:
    """Waveform ``[B, hop_size * (T - 1)]`` from compressed magnitude and phase ``[B, F, T]`` (differentiable)."""
    lin = mag.pow(1.0 / compress_factor)
    spec = torch.complex(lin * torch.cos(pha), lin * torch.sin(pha))
    return torch.istft(
        spec, n_fft, hop_length=hop_size, win_length=win_size, window=hann_window(win_size, mag.device), center=True
    )


def rms_norm_factor(wav: torch.Tensor) -> torch.Tensor:
    """``sqrt(S / sum(w^2))`` per item of ``wav [B, S]`` -> ``[B, 1]``; 1 where it is not finite (silence)."""
    factor = torch.sqrt(wav.shape[-1] / wav.square().sum(dim=-1, keepdim=True))
    return torch.where(torch.isfinite(factor), factor, torch.ones_like(factor))


def stft_args(config: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``n_fft``, ``hop_size``, ``win_size``, ``compress_factor`` of a resolved SEMamba config."""
    s = config["stft_cfg"]
    return {
        "n_fft": s["n_fft"],
        "hop_size": s["hop_size"],
        "win_size": s["win_size"],
        "compress_factor": config["model_cfg"]["compress_factor"],
    }


def enhance(model: torch.nn.Module, wav: torch.Tensor) -> torch.Tensor:
    """Run the full pipeline: ``wav [B, S] -> [B, S]`` (float32, differentiable with respect to the network).

    Each item is normalised by its own RMS factor; inputs shorter than ``n_fft // 2 + 1`` samples (too
    short for reflect padding) are zero-padded for the analysis and the output cropped back.

    Args:
        model: a :class:`~sips_semamba.model.SEMamba`.
        wav: ``[B, S]`` waveforms at the model's sample rate.
    """
    args = stft_args(model.config)
    length = wav.shape[-1]
    wav = wav.float()
    minimum = args["n_fft"] // 2 + 1
    if length < minimum:
        wav = torch.nn.functional.pad(wav, (0, minimum - length))
    factor = rms_norm_factor(wav)
    mag, pha, _ = mag_phase_stft(wav * factor, **args)
    dtype = next(model.parameters()).dtype
    amp, pha_out, _ = model(mag.to(dtype), pha.to(dtype))
    out = mag_phase_istft(amp.float(), pha_out.float(), **args) / factor
    if out.shape[-1] >= length:
        return out[..., :length]
    return torch.nn.functional.pad(out, (0, length - out.shape[-1]))
