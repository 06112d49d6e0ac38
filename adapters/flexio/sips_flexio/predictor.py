"""The ``"flexio"`` predictor: FlexIO enhancement (``n_src = 1``) or separation with ``n_src`` speech prompts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from sips.arrays import accepts_numpy
from sips.errors import AdapterError, AudioError, spell

from .checkpoint import load_strict, read_state_dict, state_dict_for_saving
from .config import read_config_file, resolve_hparams, sample_rate_of
from .model import SeparationModel, build_model

__all__ = ["FlexIOPredictor", "load", "default_weights_dir"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def default_weights_dir() -> Path:
    """Folder of the default weights shipped in the package (``sips_flexio/default/``)."""
    return Path(__file__).resolve().parent / "default"


def _check_n_src(n_src: Any) -> int:
    if isinstance(n_src, bool) or not isinstance(n_src, int) or n_src < 1:
        raise AdapterError(f"n_src must be a positive integer, got {n_src!r}.")
    return n_src


class FlexIOPredictor:
    """FlexIO as a SIPS predictor: ``[B, T]`` (or ``[B, M, T]`` microphones) -> ``[B, n_src, T]``.

    Every source is prompted with ``"speech"``; ``n_src = 1`` is enhancement. The network sees the
    input divided by the per-item standard deviation of its reference channel (microphone 0) and
    the estimates are scaled back, as in the published model.

    Args:
        model: the network (:class:`~sips_flexio.model.SeparationModel`).
        n_src: default number of sources of :meth:`__call__`.
        sample_rate: rate of the model (16 kHz for the published one).
        hparams: the hyper-parameters the model was built from (kept for :meth:`save_pretrained`).
    """

    def __init__(
        self,
        model: SeparationModel,
        *,
        n_src: int = 1,
        sample_rate: int = 16000,
        hparams: dict[str, Any] | None = None,
    ) -> None:
        self.model = model.eval()
        self.n_src = _check_n_src(n_src)
        self.model.num_speakers = self.n_src
        self.sample_rate = int(sample_rate)
        self.hparams = hparams
        prompts = list(model.separator.prompts.keys())
        self.prompt = "speech" if "speech" in prompts else prompts[0]

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        hparams: dict[str, Any] | str | os.PathLike | None = None,
        seed: int | None = 0,
        n_src: int = 1,
        device: str | torch.device | None = None,
    ) -> FlexIOPredictor:
        """A randomly initialised model (``hparams=None``: the published configuration).

        ``seed`` seeds the initialisation without touching torch's global random state.
        """
        hp = resolve_hparams(hparams)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            model = build_model(hp)
        predictor = cls(model, n_src=n_src, sample_rate=sample_rate_of(hp), hparams=hp)
        return predictor.to(device)

    @classmethod
    def from_checkpoint(
        cls,
        path_or_hub_id: str | os.PathLike,
        *,
        config: dict[str, Any] | str | os.PathLike | None = None,
        n_src: int | None = None,
        device: str | torch.device | None = None,
    ) -> FlexIOPredictor:
        """Load weights strictly.

        Args:
            path_or_hub_id: the published ``flexio_avg.ckpt`` (or any torch file holding the state
                dict, possibly wrapped as ``{'state_dict'|'model'|'model_state_dict': ...}`` with
                ``model.`` prefixes), a ``.safetensors`` file, or a folder with ``config.json`` and
                ``model.safetensors`` (as written by :meth:`save_pretrained`). Hub ids are not supported.
            config: hyper-parameters (dict or YAML/JSON path); default: the folder's ``config.json``,
                else the published ``flexio_hparams.yaml`` values.
            n_src: default number of sources (default 1, or the folder's ``n_src``).
            device: where to run.
        """
        path = Path(path_or_hub_id)
        if path.is_dir():
            return cls._from_folder(path, config=config, n_src=n_src, device=device)
        if not path.exists():
            raise AdapterError(
                f"The FlexIO checkpoint {path} does not exist (give a local .ckpt/.safetensors file or folder)."
            )
        hp = resolve_hparams(config)
        model = build_model(hp)
        load_strict(model, read_state_dict(path), str(path))
        predictor = cls(model, n_src=1 if n_src is None else n_src, sample_rate=sample_rate_of(hp), hparams=hp)
        return predictor.to(device)

    @classmethod
    def _from_folder(
        cls,
        folder: Path,
        *,
        config: dict[str, Any] | str | os.PathLike | None = None,
        n_src: int | None = None,
        device: str | torch.device | None = None,
    ) -> FlexIOPredictor:
        weights = folder / WEIGHTS_NAME
        if not weights.is_file():
            raise AdapterError(f"The FlexIO folder {folder} has no {WEIGHTS_NAME}.")
        stored: dict[str, Any] = {}
        if config is None:
            if not (folder / CONFIG_NAME).is_file():
                raise AdapterError(f"The FlexIO folder {folder} has no {CONFIG_NAME}; pass {spell('config')}.")
            stored = read_config_file(folder / CONFIG_NAME)
            config = stored
        hp = resolve_hparams(config)
        model = build_model(hp)
        load_strict(model, read_state_dict(weights), str(weights))
        if n_src is None:
            n_src = stored.get("n_src", 1)
        predictor = cls(model, n_src=n_src, sample_rate=sample_rate_of(hp), hparams=hp)
        return predictor.to(device)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` (hparams + default ``n_src``) and ``model.safetensors`` into ``folder``."""
        from safetensors.torch import save_file

        if self.hparams is None:
            raise AdapterError("This FlexIO predictor was built without hparams, so it cannot be saved.")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"hparams": self.hparams, "n_src": self.n_src, "sample_rate": self.sample_rate}
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=1) + "\n")
        save_file(state_dict_for_saving(self.model), str(folder / WEIGHTS_NAME))
        return folder

    # -- device ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Device of the network parameters."""
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> FlexIOPredictor:
        """Move (and optionally cast) the network; the STFTs always run in float32. Returns ``self``."""
        if dtype is not None and not dtype.is_floating_point:
            raise AdapterError(f"FlexIO weights need a floating dtype, got {dtype}.")
        self.model.to(device=device, dtype=dtype)
        return self

    # -- inference ---------------------------------------------------------------------------
    @accepts_numpy
    def __call__(self, mixture: torch.Tensor, n_src: int | None = None) -> torch.Tensor:
        """Separate ``mixture`` into ``n_src`` speech estimates.

        Args:
            mixture: ``[B, T]`` (or ``[T]``) mono, or ``[B, M, T]`` with microphone 0 the reference.
            n_src: number of sources for this call (default: ``self.n_src``).

        Returns:
            ``[B, n_src, T]`` float32 on the model's device (a numpy array for a numpy mixture).
        """
        n = self.n_src if n_src is None else _check_n_src(n_src)
        if not isinstance(mixture, torch.Tensor):
            mixture = torch.as_tensor(mixture)
        if mixture.dim() == 1:
            mixture = mixture.unsqueeze(0)
        if mixture.dim() not in (2, 3):
            raise AudioError(f"FlexIO expects a mixture [B, T] or [B, M, T], got shape {list(mixture.shape)}.")
        length = mixture.shape[-1]
        if length < 2 or mixture.shape[0] == 0 or (mixture.dim() == 3 and mixture.shape[1] == 0):
            raise AudioError(f"FlexIO needs at least two samples per channel, got shape {list(mixture.shape)}.")
        x = mixture.to(device=self.device, dtype=torch.float32)
        self.model.eval()
        with torch.inference_mode():
            out = self.model(x, [[self.prompt] * n] * x.shape[0])
        return out[..., :length].float().contiguous()

    def __repr__(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        return f"FlexIOPredictor(n_src={self.n_src}, sample_rate={self.sample_rate}, parameters={params:,})"


def load(
    checkpoint: str | os.PathLike | None = None,
    config: dict[str, Any] | str | os.PathLike | None = None,
    n_src: int | None = None,
    device: str | torch.device | None = None,
) -> FlexIOPredictor:
    """Entry point of the ``"flexio"`` adapter (``sips.load_predictor("flexio", checkpoint=...)``).

    Args:
        checkpoint: the published ``flexio_avg.ckpt``, a ``.safetensors`` file or a saved folder;
            ``None`` loads the default weights shipped in ``sips_flexio/default/`` if present.
        config: hyper-parameters (dict or YAML/JSON path); default: the published ones.
        n_src: default number of speech sources (1 = enhancement).
        device: where to run.
    """
    if checkpoint is None:
        folder = default_weights_dir()
        if not (folder / WEIGHTS_NAME).is_file():
            raise AdapterError(
                f"No default FlexIO weights are shipped; pass {spell('checkpoint')} (e.g. the published flexio_avg.ckpt)."
            )
        return FlexIOPredictor._from_folder(folder, config=config, n_src=n_src, device=device)
    return FlexIOPredictor.from_checkpoint(checkpoint, config=config, n_src=n_src, device=device)
