"""The NCSN++ predictor's own spectral pipeline (``enhance``), batched and device-agnostic.

Per item: divide by the peak, STFT (n_fft 510, hop 128, periodic Hann(510), centred, reflect
padding; 256 bins), compress ``0.15 · |X|^0.5 · e^{i·arg X}``, zero-pad the frames to a multiple
of 64, run the network, decompress ``|Z|² · e^{i·arg Z}`` with ``Z = X̂ / 0.15``, inverse STFT to
the input length, multiply by the peak.

The one departure from the published numbers: the published pipeline gives the inverse STFT all
padded frames, so the network's output in frames that only hold padding reaches the last samples
of the waveform (every sample from ``128·T - 254`` on, for ``T`` real frames). Here the padded
frames are cropped before the inverse (``crop_padded_frames=True``, the default);
``crop_padded_frames=False`` reproduces the published output bit for bit. Inputs whose frame
count is already a multiple of 64 are not padded, and both settings agree on them exactly.

Two further differences, neither of which changes a published number: a batch ``[B, T]`` is
enhanced item by item in one call (the published code takes one waveform), and an all-zero item
gives zeros instead of NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

N_FFT = 510
HOP = 128
BINS = N_FFT // 2 + 1
FACTOR = 0.15
EXPONENT = 0.5
#: The published pipeline pads the frame axis to a multiple of this (more than the network needs).
FRAME_MULTIPLE = 64


def window(device: torch.device | str | None = None) -> torch.Tensor:
    """Periodic Hann window of length 510, float32."""
    return torch.hann_window(N_FFT, periodic=True, dtype=torch.float32, device=device)


#: The transform's settings, shared by the forward and inverse STFT.
_TRANSFORM = dict(n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, center=True, normalized=False, onesided=True)


def stft(wav: torch.Tensor) -> torch.Tensor:
    """``[B, S]`` float32 -> complex ``[B, 256, T]``, ``T = 1 + S // 128`` (needs ``S >= 256``)."""
    return torch.stft(wav, window=window(wav.device), pad_mode="reflect", return_complex=True, **_TRANSFORM)


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    """Complex ``[B, 256, T]`` -> ``[B, length]`` (weighted overlap-add, centred)."""
    return torch.istft(spec, window=window(spec.device), length=length, **_TRANSFORM)


def compress(spec: torch.Tensor) -> torch.Tensor:
    """``0.15 · |X|^0.5 · e^{i·arg X}`` (magnitude and phase of a contiguous tensor, then the factor)."""
    spec = spec.contiguous()
    return torch.polar(spec.abs() ** EXPONENT, spec.angle()) * FACTOR


def decompress(spec: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`compress`: ``Z = X̂ / 0.15``, ``|Z|² · e^{i·arg Z}``."""
    z = spec.contiguous() / FACTOR
    magnitude = z.abs()
    return torch.polar(magnitude * magnitude, z.angle())


def pad_frames(spec: torch.Tensor, multiple: int = FRAME_MULTIPLE) -> torch.Tensor:
    """Zero-pad the last (frame) axis on the right to a multiple of ``multiple``."""
    extra = -spec.shape[-1] % multiple
    return torch.nn.functional.pad(spec, (0, extra)) if extra else spec


def enhance(
    network: Callable[[torch.Tensor], torch.Tensor],
    wav: torch.Tensor,
    *,
    crop_padded_frames: bool = True,
    frame_multiple: int = FRAME_MULTIPLE,
) -> torch.Tensor:
    """Enhance ``wav [B, S]`` (float32, ``S >= 256``) with ``network`` (complex ``[B, 1, 256, T]`` in and out).

    Returns ``[B, S]`` float32 on ``wav``'s device (see the module docstring for ``crop_padded_frames``).
    The frames are padded to a multiple of ``frame_multiple`` (64, the published value; a network
    with more levels needs more).
    """
    peak = wav.abs().amax(dim=-1, keepdim=True)
    silent = peak == 0
    spec = stft(wav / torch.where(silent, 1.0, peak))
    frames = spec.shape[-1]
    estimate = network(pad_frames(compress(spec).unsqueeze(1), frame_multiple))[:, 0]
    if crop_padded_frames:
        estimate = estimate[..., :frames]
    out = istft(decompress(estimate), wav.shape[-1])
    return out * torch.where(silent, 0.0, peak)
