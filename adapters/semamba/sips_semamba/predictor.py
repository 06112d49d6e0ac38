"""``SEMambaPredictor``: the SIPS predictor contract around the SEMamba generator, checkpoint loading and saving.

Checkpoints: the published ``SEMamba_advanced.pth`` (``{"generator": state_dict}``), a bare state dict,
either with a ``module.`` prefix on every key, as ``.pth``/``.pt`` (read with ``weights_only=True``) or
``.safetensors``; or a folder holding ``config.json`` + ``model.safetensors`` (what :func:`save_default`
writes). Loading is strict and by name, so mamba-ssm 1.x and 2.x key orders both load.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sips.arrays import accepts_numpy
from sips.errors import AdapterError, spell
from sips.pretrained.weights import load_strict, load_torch_checkpoint

from .config import ConfigLike, resolve_config
from .model import SEMamba
from .stft import enhance

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"


def default_weights_dir() -> Path:
    """Folder of the default weights shipped in the package (may not exist)."""
    return Path(__file__).resolve().parent / "default"


class SEMambaPredictor:
    """SEMamba speech enhancement as a SIPS predictor: ``[B, T] -> [B, 1, T]`` at 16 kHz.

    Args:
        model: the generator (its config fixes the STFT and the sample rate).
        device: where to run; ``None`` keeps the model where it is.
    """

    n_src = 1

    def __init__(self, model: SEMamba, *, device: str | torch.device | None = None) -> None:
        if not isinstance(model, SEMamba):
            raise AdapterError(f"SEMambaPredictor wraps a SEMamba model, got {type(model).__name__}.")
        self.model = model.eval()
        self.sample_rate = int(model.config["stft_cfg"]["sampling_rate"])
        if device is not None:
            self.to(device)

    @property
    def config(self) -> dict[str, dict[str, Any]]:
        """The ``{"model_cfg", "stft_cfg"}`` configuration of the network."""
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> SEMambaPredictor:
        """Move (and optionally cast) the network; returns ``self``."""
        self.model.to(device=device, dtype=dtype)
        return self

    @accepts_numpy
    def __call__(self, mixture: torch.Tensor) -> torch.Tensor:
        """Enhance ``mixture [B, T]`` (or ``[T]``) -> ``[B, 1, T]`` float32 on the model's device (a numpy
        mixture gives a numpy array)."""
        if not isinstance(mixture, torch.Tensor):
            raise AdapterError(f"SEMambaPredictor expects a torch tensor, got {type(mixture).__name__}.")
        if mixture.dim() == 1:
            mixture = mixture.unsqueeze(0)
        if mixture.dim() != 2:
            raise AdapterError(f"SEMambaPredictor expects a [B, T] mixture, got shape {list(mixture.shape)}.")
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                out = enhance(self.model, mixture.to(device=self.device, dtype=torch.float32))
        finally:
            self.model.train(was_training)  # a training script may validate through the predictor
        return out.unsqueeze(1)

    @classmethod
    def from_config(
        cls, config: ConfigLike = None, seed: int | None = 0, *, device: str | torch.device | None = None
    ) -> SEMambaPredictor:
        """A randomly initialised predictor (tests, training); ``seed`` makes it reproducible without
        touching the global random state (``None``: draw from it)."""
        if seed is None:
            model = SEMamba(config)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = SEMamba(config)
        return cls(model, device=device)

    @classmethod
    def from_checkpoint(
        cls,
        path_or_hub_id: str | os.PathLike,
        *,
        config: ConfigLike = None,
        n_src: int | None = None,
        device: str | torch.device | None = None,
    ) -> SEMambaPredictor:
        """Load a checkpoint file or weights folder (see the module docstring).

        Args:
            path_or_hub_id: ``.pth``/``.pt``/``.safetensors`` file or a folder with ``config.json`` +
                ``model.safetensors`` (no Hub ids for SEMamba).
            config: config dict or SEMamba YAML/JSON for a file checkpoint (default: the published
                ``SEMamba_advanced`` configuration); a folder carries its own.
            n_src: must be ``None`` or 1 (SEMamba enhances).
            device: where to run (default CPU).
        """
        _check_n_src(n_src)
        path = Path(path_or_hub_id)
        if path.is_dir():
            if config is not None:
                raise AdapterError(
                    f"The SEMamba weights folder {path} carries its own {CONFIG_NAME}; drop {spell('config')}."
                )
            config = _read_folder_config(path)
            path = path / WEIGHTS_NAME
        elif not path.is_file():
            raise AdapterError(f"The SEMamba checkpoint {path} does not exist (SEMamba has no Hub ids).")
        model = SEMamba(config)
        load_weights(model, read_state_dict(path), str(path))
        return cls(model, device=device)


def load(
    checkpoint: str | os.PathLike | None = None,
    config: ConfigLike = None,
    n_src: int | None = None,
    device: str | torch.device | None = None,
) -> SEMambaPredictor:
    """Entry point of the ``"semamba"`` adapter: ``sips.load_predictor("semamba", checkpoint=...)``.

    With ``checkpoint=None`` the default weights shipped in ``sips_semamba/default/`` are loaded, if
    the package holds them.
    """
    if checkpoint is None:
        folder = default_weights_dir()
        if not (folder / WEIGHTS_NAME).is_file():
            raise AdapterError(
                f"No default SEMamba weights are shipped with sips-semamba; pass {spell('checkpoint')} (e.g. the "
                "published SEMamba_advanced.pth)."
            )
        checkpoint = folder
    return SEMambaPredictor.from_checkpoint(checkpoint, config=config, n_src=n_src, device=device)


def _check_n_src(n_src: int | None) -> None:
    if n_src is not None and n_src != 1:
        raise AdapterError(
            f"SEMamba is a single-output enhancement model, so {spell('n_src', n_src)} cannot be; leave it out or give 1."
        )


def _read_folder_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise AdapterError(f"The SEMamba weights folder {folder} has no {CONFIG_NAME}.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AdapterError(f"{path} is not valid JSON ({err}).") from None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a SEMamba checkpoint file, unwrapped (``generator`` key, ``module.`` prefix).

    ``.safetensors`` files are read with safetensors, anything else with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise AdapterError(f"Cannot read the safetensors checkpoint {path} ({err}).") from None
    else:
        state = load_torch_checkpoint(path, "SEMamba checkpoint", error=AdapterError)
    return unwrap_state_dict(state, str(path))


def unwrap_state_dict(state: Any, source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """``{"generator": sd}`` or a bare ``sd``, minus a ``module.`` prefix present on every key."""
    if isinstance(state, Mapping) and "generator" in state:
        state = state["generator"]
    if not isinstance(state, Mapping) or not state:
        raise AdapterError(
            f"{source} holds no SEMamba state dict (expected {{'generator': state_dict}} or a state dict)."
        )
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise AdapterError(f"{source} is not a SEMamba state dict (its entries are not all named tensors).")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def load_weights(model: SEMamba, state: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> None:
    """Strict, order-independent loading of ``state`` into ``model`` (one-sentence AdapterError on mismatch)."""
    load_strict(
        model,
        state,
        source,
        error=AdapterError,
        what="the SEMamba configuration",
        hint="pass the model's YAML as config=",
    )


DEFAULT_CARD = """# SEMamba weights for sips-semamba

SEMamba speech-enhancement generator (16 kHz) in the layout of `sips-semamba`:
`config.json` holds the `model_cfg` / `stft_cfg` dict, `model.safetensors` the state dict
(keys as in the published `SEMamba_advanced.pth`).

Load with `sips.load_predictor("semamba", checkpoint="<this folder>")`.
"""


def save_default(
    model_or_predictor: SEMamba | SEMambaPredictor,
    folder: str | os.PathLike | None = None,
    card_text: str | None = None,
) -> Path:
    """Write a weights folder: ``model.safetensors``, ``config.json`` and ``README.md`` (the model card).

    Args:
        model_or_predictor: the network (or a predictor holding it).
        folder: destination; ``None`` is the package's default-weights folder (what ``load()`` reads).
        card_text: Markdown model card (training data, recipe, metrics); a generic one if ``None``.

    Returns:
        The folder.
    """
    from safetensors.torch import save_file

    model = model_or_predictor.model if isinstance(model_or_predictor, SEMambaPredictor) else model_or_predictor
    if not isinstance(model, SEMamba):
        raise AdapterError(f"save_default needs a SEMamba model or predictor, got {type(model).__name__}.")
    folder = Path(folder) if folder is not None else default_weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(device="cpu", dtype=torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "model": "SEMamba"})
    (folder / CONFIG_NAME).write_text(json.dumps(resolve_config(model.config), indent=1) + "\n")
    (folder / CARD_NAME).write_text(card_text if card_text is not None else DEFAULT_CARD)
    return folder
