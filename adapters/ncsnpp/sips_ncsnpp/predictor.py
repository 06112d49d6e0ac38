"""The ``"ncsnpp"`` predictor: the predictive NCSN++ of the published SIPS pipeline, ``[B, T] -> [B, 1, T]``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from sips.arrays import accepts_numpy
from sips.errors import AdapterError, AudioError, spell

from .checkpoint import load_weights
from .config import ConfigLike
from .net import NCSNppNetwork
from .stft import FRAME_MULTIPLE, N_FFT, enhance

__all__ = ["NCSNppPredictor", "load"]

SAMPLE_RATE = 16000
MIN_SAMPLES = N_FFT // 2 + 1  # the centred STFT reflects 255 samples on each side


class NCSNppPredictor:
    """NCSN++ speech enhancement as a SIPS predictor at 16 kHz.

    Args:
        model: the network (:class:`~sips_ncsnpp.net.NCSNppNetwork`).
        crop_padded_frames: drop the frames that only hold padding before the inverse STFT (the
            default); ``False`` reproduces the published pipeline, where they reach the last
            samples (see :mod:`sips_ncsnpp.stft`).
        device: where to run; ``None`` keeps the model where it is.
    """

    sample_rate = SAMPLE_RATE
    n_src = 1

    def __init__(
        self, model: NCSNppNetwork, *, crop_padded_frames: bool = True, device: str | torch.device | None = None
    ) -> None:
        if not isinstance(model, NCSNppNetwork):
            raise AdapterError(f"NCSNppPredictor wraps an NCSNppNetwork, got {type(model).__name__}.")
        self.model = model.eval()
        self.crop_padded_frames = bool(crop_padded_frames)
        if device is not None:
            self.to(device)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: ConfigLike = None,
        seed: int | None = 0,
        *,
        crop_padded_frames: bool = True,
        device: str | torch.device | None = None,
    ) -> NCSNppPredictor:
        """A randomly initialised predictor (``config=None``: the published size); ``seed`` makes it
        reproducible without touching torch's global random state (``None``: draw from it)."""
        if seed is None:
            model = NCSNppNetwork(config)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = NCSNppNetwork(config)
        return cls(model, crop_padded_frames=crop_padded_frames, device=device)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        *,
        config: ConfigLike = None,
        crop_padded_frames: bool = True,
        device: str | torch.device | None = None,
    ) -> NCSNppPredictor:
        """Load weights strictly (EMA weights where the file has them).

        Args:
            path: the published ``NCSNpp_VB-DMD.ckpt`` (a Lightning checkpoint with ``state_dict``
                and ``ema``), any torch file with a state dict, or a ``.safetensors`` state dict.
            config: constructor arguments of the network (dict or JSON/YAML path); default: the
                published size.
            crop_padded_frames: see the class.
            device: where to run (default CPU).
        """
        model = NCSNppNetwork(config)
        load_weights(model, path)
        return cls(model, crop_padded_frames=crop_padded_frames, device=device)

    # -- device ------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments of the network."""
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device | None = None) -> NCSNppPredictor:
        """Move the network (float32); returns ``self``."""
        self.model.to(device=device)
        return self

    # -- inference ---------------------------------------------------------------------------
    @accepts_numpy
    def __call__(self, mixture: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Enhance ``mixture [B, T]`` (or ``[T]``) -> ``[B, 1, T]`` float32 on the model's device (a numpy
        mixture gives a numpy array).

        Each item is normalised by its own peak, as the published pipeline does for its one item.
        """
        if isinstance(mixture, np.ndarray):
            mixture = torch.from_numpy(np.ascontiguousarray(mixture))
        if not isinstance(mixture, torch.Tensor):
            raise AudioError(f"NCSN++ expects a tensor or numpy array, got {type(mixture).__name__}.")
        if mixture.dim() == 1:
            mixture = mixture.unsqueeze(0)
        if mixture.dim() != 2 or mixture.shape[0] == 0:
            raise AudioError(f"NCSN++ expects a mixture [B, T], got shape {list(mixture.shape)}.")
        if mixture.shape[-1] < MIN_SAMPLES:
            raise AudioError(f"NCSN++ needs at least {MIN_SAMPLES} samples per item, got {mixture.shape[-1]}.")
        self.model.eval()
        with torch.inference_mode():
            wav = mixture.to(device=self.device, dtype=torch.float32)
            multiple = max(FRAME_MULTIPLE, self.model.dnn.frame_multiple)
            out = enhance(self.model, wav, crop_padded_frames=self.crop_padded_frames, frame_multiple=multiple)
        return out.unsqueeze(1)

    def __repr__(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        return f"NCSNppPredictor(nf={self.config['nf']}, ch_mult={self.config['ch_mult']}, parameters={params:,})"


def load(
    checkpoint: str | os.PathLike | None = None,
    config: ConfigLike = None,
    n_src: int | None = None,
    device: str | torch.device | None = None,
    crop_padded_frames: bool = True,
) -> NCSNppPredictor:
    """Entry point of the ``"ncsnpp"`` adapter: ``sips.load_predictor("ncsnpp", checkpoint=...)``.

    Args:
        checkpoint: the published ``NCSNpp_VB-DMD.ckpt`` or another NCSN++ checkpoint (no default
            weights are shipped).
        config: constructor arguments of the network for another size (dict or JSON/YAML path).
        n_src: must be ``None`` or 1 (NCSN++ enhances).
        device: where to run.
        crop_padded_frames: ``False`` reproduces the published pipeline's last samples.
    """
    if n_src is not None and n_src != 1:
        raise AdapterError(
            f"NCSN++ is a single-output enhancement model, so {spell('n_src', n_src)} cannot be; leave it out or give 1."
        )
    if checkpoint is None:
        raise AdapterError(
            f"No default NCSN++ weights are shipped; pass {spell('checkpoint')} (e.g. the published NCSNpp_VB-DMD.ckpt)."
        )
    return NCSNppPredictor.from_checkpoint(
        checkpoint, config=config, crop_padded_frames=crop_padded_frames, device=device
    )
