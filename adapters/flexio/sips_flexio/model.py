"""FlexIO ``SeparationModel``: variance normalisation, STFT encoder, ``MultiTussModel``, iSTFT decoder.

The encoder and decoder hold no parameters, so every state-dict key starts with ``separator.``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sips.errors import AdapterError

from .config import resolve_hparams
from .net import MultiTussModel

__all__ = ["StftCodec", "SeparationModel", "build_model"]

_STFT_KEYS = {"fft_size", "window_length", "hop_length", "window_type", "normalize"}


class StftCodec:
    """The FlexIO STFT encoder / iSTFT decoder (no weights).

    Args:
        fft_size: FFT size (``F = fft_size // 2 + 1`` bins).
        window_length: analysis window length.
        hop_length: hop between frames.
        window_type: ``"sqrt_hann"`` (square root of the periodic Hann window) or ``"hann"``.
        normalize: ``None`` (plain transforms, as published) or ``"default"`` (``normalized=True``).
    """

    def __init__(
        self,
        fft_size: int = 512,
        window_length: int = 512,
        hop_length: int = 256,
        window_type: str = "sqrt_hann",
        normalize: str | None = "default",
    ) -> None:
        if window_type not in ("sqrt_hann", "hann"):
            raise AdapterError(f"Unsupported FlexIO window_type {window_type!r}; use 'sqrt_hann' or 'hann'.")
        if normalize not in (None, "default"):
            raise AdapterError(f"Unsupported FlexIO STFT normalize {normalize!r}; use null or 'default'.")
        if not 0 < hop_length <= window_length <= fft_size:
            raise AdapterError(
                f"FlexIO STFT needs 0 < hop_length <= window_length <= fft_size, got {hop_length}, {window_length}, {fft_size}."
            )
        self.fft_size = int(fft_size)
        self.window_length = int(window_length)
        self.hop_length = int(hop_length)
        self.window_type = window_type
        self.normalized = normalize is not None

    def window(self, device: torch.device | None = None) -> torch.Tensor:
        """The float32 analysis/synthesis window ``[window_length]``."""
        win = torch.hann_window(self.window_length, periodic=True, dtype=torch.float32, device=device)
        return win.sqrt() if self.window_type == "sqrt_hann" else win

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., S]`` float -> complex ``[..., frames, F]`` with scipy-style padding.

        Zero padding of ``fft_size // 2`` on both sides plus, at the end, what makes the padded
        signal a whole number of hops; ``center=False``.
        """
        length = x.shape[-1]
        half = self.fft_size // 2
        extra = (-(length + 2 * half - self.window_length)) % self.hop_length % self.window_length
        padded = F.pad(x.float(), (half, half + extra))
        lead = padded.shape[:-1]
        spec = torch.stft(
            padded.reshape(-1, padded.shape[-1]),
            n_fft=self.fft_size,
            hop_length=self.hop_length,
            win_length=self.window_length,
            window=self.window(x.device),
            center=False,
            normalized=self.normalized,
            onesided=True,
            return_complex=True,
        )
        return spec.reshape(*lead, *spec.shape[-2:]).transpose(-1, -2)

    def decode(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex ``[..., frames, F]`` -> ``[..., hop * (frames - 1)]`` (``center=True``, no length)."""
        lead = spec.shape[:-2]
        flat = spec.transpose(-1, -2).reshape(-1, spec.shape[-1], spec.shape[-2])
        wav = torch.istft(
            flat,
            n_fft=self.fft_size,
            hop_length=self.hop_length,
            win_length=self.window_length,
            window=self.window(spec.device),
            center=True,
            normalized=self.normalized,
        )
        return wav.reshape(*lead, wav.shape[-1])


def _codec(name: str, conf: dict[str, Any], what: str) -> StftCodec:
    if name != "stft":
        raise AdapterError(f"Only the 'stft' FlexIO {what} is supported, got {name!r}.")
    unknown = sorted(set(conf) - _STFT_KEYS)
    if unknown:
        raise AdapterError(f"The FlexIO {what}_conf has unsupported keys {unknown}.")
    return StftCodec(**conf)


class SeparationModel(nn.Module):
    """Waveform-level FlexIO: ``[B, S]`` or ``[B, M, S]`` -> ``[B, n_src, hop * (frames - 1)]``.

    Args:
        encoder_name, encoder_conf, decoder_name, decoder_conf: the ``stft`` front/back ends.
        separator_name, separator_conf: ``mctuss`` and the :class:`MultiTussModel` arguments.
        variance_normalization: divide the input by the standard deviation of its reference
            channel and multiply the output by it.
    """

    is_separation_predictor = True

    def __init__(
        self,
        encoder_name: str,
        encoder_conf: dict[str, Any],
        decoder_name: str,
        decoder_conf: dict[str, Any],
        separator_name: str,
        separator_conf: dict[str, Any],
        variance_normalization: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = _codec(encoder_name, encoder_conf, "encoder")
        self.decoder = _codec(decoder_name, decoder_conf, "decoder")
        if separator_name != "mctuss":
            raise AdapterError(f"Only the 'mctuss' FlexIO separator is supported, got {separator_name!r}.")
        accepted = set(inspect.signature(MultiTussModel.__init__).parameters) - {"self"}
        unknown = sorted(set(separator_conf) - accepted)
        if unknown:
            raise AdapterError(f"The FlexIO model_conf has unsupported keys {unknown}.")
        self.separator = MultiTussModel(**separator_conf)
        self.variance_normalization = variance_normalization
        self.num_speakers = 1

    def normalization(self, mix: torch.Tensor, epsilon: float = 1e-8) -> torch.Tensor:
        """Per-item scale ``[B, 1]``: unbiased std of the reference channel of ``mix [B, M, S]`` + ``epsilon``."""
        return mix[:, self.separator.ref_channel].std(dim=-1, keepdim=True) + epsilon

    def forward(
        self, mix: torch.Tensor, prompts: Sequence[Sequence[str]], epsilon_for_normalization: float = 1e-8
    ) -> torch.Tensor:
        """Separate ``mix [B, S]`` or ``[B, M, S]`` into ``[B, n_src, hop * (frames - 1)]`` (longer than ``S``).

        Args:
            mix: float waveforms.
            prompts: one list of prompt names per item; ``n_src = len(prompts[0])``.
            epsilon_for_normalization: added to the standard deviation.
        """
        if mix.dim() == 2:
            mix = mix.unsqueeze(1)
        if mix.dim() != 3:
            raise AdapterError(f"SeparationModel expects [B, S] or [B, M, S], got {list(mix.shape)}.")
        std = None
        if self.variance_normalization:
            std = self.normalization(mix, epsilon_for_normalization)
            mix = mix / std.unsqueeze(-1)
        spec = self.separator(self.encoder.encode(mix), prompts)
        out = self.decoder.decode(spec)
        if std is not None:
            out = out * std.unsqueeze(-1)
        return out

    def enhance(self, y: torch.Tensor) -> torch.Tensor:
        """``num_speakers`` "speech" estimates of ``y``; the batch axis is squeezed when it is 1."""
        prompts = [["speech"] * self.num_speakers] * y.shape[0]
        out = self(y, prompts)
        return out.squeeze(0) if out.shape[0] == 1 else out


def build_model(hparams: dict[str, Any] | None = None) -> SeparationModel:
    """Construct a (randomly initialised) :class:`SeparationModel` from hyper-parameters (see :mod:`.config`)."""
    hp = resolve_hparams(hparams)
    try:
        return SeparationModel(
            hp["encoder_name"],
            hp["encoder_conf"],
            hp["decoder_name"],
            hp["decoder_conf"],
            hp["model_name"],
            hp["model_conf"],
            variance_normalization=bool(hp.get("variance_normalization", True)),
        )
    except (TypeError, ValueError) as err:
        raise AdapterError(f"The FlexIO configuration cannot build a model ({err}).") from None
