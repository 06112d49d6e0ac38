"""The spectral representation the prior works in (DESIGN §1; pure functions, no weights).

``encode`` maps 16 kHz waveforms ``[B, S]`` to compressed complex spectrograms laid out as real
tensors ``[B, 2, 256, T]`` (channel 0 real, channel 1 imaginary; the DC bin is dropped), and
``decode`` inverts it. ``pad_frames`` / ``crop_frames`` make the frame count a multiple of what a
U-Net with ``L`` levels needs.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..errors import AudioError

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 128
N_BINS = N_FFT // 2  # after dropping DC
AMP_EXPONENT = 0.5
AMP_FACTOR = 0.15
SCALE = 0.5 / 0.08  # final_std / raw_std = 6.25


@functools.lru_cache(maxsize=8)
def _window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(N_FFT, periodic=True, device=device, dtype=dtype)


def window(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The periodic Hann analysis/synthesis window ``[512]``."""
    return _window(torch.device(device), dtype)


def num_frames(num_samples: int) -> int:
    """Number of STFT frames ``encode`` yields for ``num_samples`` samples."""
    return 1 + num_samples // HOP


def encode(wav: torch.Tensor) -> torch.Tensor:
    """Encode waveforms into the prior's compressed spectrogram.

    Args:
        wav: ``[B, S]`` (or ``[S]``) float waveform at 16 kHz.

    Returns:
        ``[B, 2, 256, 1 + S // 128]`` real tensor (real / imaginary parts as channels).
    """
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    if wav.dim() != 2:
        raise AudioError(f"encode expects a waveform of shape [B, S], got {list(wav.shape)}.")
    if wav.shape[-1] <= N_FFT // 2:
        raise AudioError(f"The audio is too short to encode: {wav.shape[-1]} samples, need more than {N_FFT // 2}.")
    spec = torch.stft(
        wav,
        n_fft=N_FFT,
        hop_length=HOP,
        win_length=N_FFT,
        window=window(wav.device, wav.dtype),
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )[:, 1:, :]
    b = torch.tensor(AMP_FACTOR, dtype=wav.dtype, device=wav.device)
    p = torch.tensor(AMP_EXPONENT, dtype=wav.dtype, device=wav.device)
    spec = b * spec.abs() ** p * torch.exp(1j * spec.angle())
    return torch.view_as_real(spec).permute(0, 3, 1, 2) * SCALE


def decode(spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
    """Invert :func:`encode`.

    Args:
        spec: ``[B, 2, 256, T]`` encoded spectrogram.
        length: output length in samples; ``None`` gives ``128 * (T - 1)`` samples.

    Returns:
        ``[B, length]`` waveform.
    """
    if spec.dim() != 4 or spec.shape[1] != 2 or spec.shape[2] != N_BINS:
        raise AudioError(f"decode expects a spectrogram of shape [B, 2, 256, T], got {list(spec.shape)}.")
    spec = spec / SCALE
    y = torch.view_as_complex(spec.permute(0, 2, 3, 1).contiguous())
    b = torch.tensor(AMP_FACTOR, dtype=spec.dtype, device=spec.device)
    p = torch.tensor(AMP_EXPONENT, dtype=spec.dtype, device=spec.device)
    y = y / b
    y = y.abs() ** (1 / p) * torch.exp(1j * y.angle())
    y = F.pad(y, (0, 0, 1, 0))  # zero DC row
    return torch.istft(
        y,
        n_fft=N_FFT,
        hop_length=HOP,
        win_length=N_FFT,
        window=window(spec.device, spec.dtype),
        center=True,
        length=length,
    )


def pad_frames(spec: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int]:
    """Right-pad the time axis by reflection to a multiple of ``multiple`` frames.

    Args:
        spec: ``[B, C, F, T]``.
        multiple: e.g. ``2 ** len(channel_mult)``.

    Returns:
        ``(padded [B, C, F, T'], T)``; crop the network output back with :func:`crop_frames`.
    """
    frames = spec.shape[-1]
    pad = (-frames) % multiple
    if pad == 0:
        return spec, frames
    if pad >= frames:
        # Reflection needs pad < frames; very short inputs are mirrored repeatedly, then cut.
        reps = -(-(frames + pad) // frames)
        flips = [spec if i % 2 == 0 else spec.flip(-1) for i in range(reps)]
        return torch.cat(flips, dim=-1)[..., : frames + pad], frames
    return F.pad(spec, (0, pad, 0, 0), mode="reflect"), frames


def crop_frames(spec: torch.Tensor, frames: int) -> torch.Tensor:
    """Crop the time axis of ``[..., T']`` back to ``frames``."""
    return spec[..., :frames]
