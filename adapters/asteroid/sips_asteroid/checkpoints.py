"""Reading and writing checkpoints: asteroid packages, kaituoxu packages, safetensors folders.

Foreign ``.pth`` files are read by the core's :func:`sips.weights.load_torch_checkpoint`
(``torch.load(weights_only=True)``); the only class allowed beyond tensors and plain containers is
``torch.torch_version.TorchVersion``, which asteroid's ``serialize()`` stores in
``infos.software_versions.torch_version``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sips.errors import AdapterError
from sips.prediction.configfile import read_config_file
from sips.pretrained.weights import load_torch_checkpoint, state_dict_mismatch

from ._lazy import import_asteroid
from .kaituoxu import HPARAM_KEYS

#: Folder of the default weights shipped in the package (``config.json`` + ``model.safetensors``).
DEFAULT_FOLDER = Path(__file__).resolve().parent / "default"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"

_FILE_SUFFIXES = {".pth", ".pt", ".ckpt", ".bin", ".tar", ".safetensors", ".json", ".yaml", ".yml"}
_HUB_ID = re.compile(r"^[\w.\-!()]+/[\w.\-!()]+(@[\w.\-/]+)?$")


def default_folder() -> Path:
    """The folder the default weights are read from (``DEFAULT_FOLDER``, looked up at call time)."""
    return DEFAULT_FOLDER


def safe_torch_load(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` allowing asteroid's ``TorchVersion`` strings only.

    Raises:
        AdapterError: the file holds other Python objects or is not a torch checkpoint.
    """
    from torch.torch_version import TorchVersion

    return load_torch_checkpoint(path, "checkpoint", allowed_globals=[TorchVersion], error=AdapterError)


def looks_like_hub_id(name: str) -> bool:
    """``owner/name[@revision]`` (Hugging Face / asteroid zoo) or an http(s) URL, not a file path."""
    if name.startswith(("http://", "https://")):
        return True
    return bool(_HUB_ID.match(name)) and not name.startswith(".") and Path(name).suffix.lower() not in _FILE_SUFFIXES


def resolve(checkpoint: str | os.PathLike) -> Path:
    """A local file/folder, or the cached download of an asteroid Hub id / zoo name / URL.

    Raises:
        AdapterError: no such local file, or the download failed.
    """
    path = Path(os.path.expanduser(os.fspath(checkpoint)))
    if path.exists():
        return path
    name = os.fspath(checkpoint)
    if isinstance(checkpoint, str) and looks_like_hub_id(name):
        hub = import_asteroid("asteroid.utils.hub_utils")
        try:
            return Path(hub.cached_download(name))
        except Exception as err:  # network, authentication, missing repo: all one user-facing error
            raise AdapterError(f"Could not fetch the asteroid model {name!r} ({type(err).__name__}: {err}).") from None
    raise AdapterError(f"No checkpoint file or folder at {path}.")


def hub_sample_rate(name: str) -> float | None:
    """The sample rate asteroid records for a zoo model name (its old packages lack one), else None."""
    hub = import_asteroid("asteroid.utils.hub_utils")
    return hub.SR_HASHTABLE.get(name)


def read_config(config: Mapping[str, Any] | str | os.PathLike | None) -> dict[str, Any]:
    """A config given as a mapping, a JSON file or a YAML file, as a plain dict (``None``: empty)."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    return read_config_file(config, "asteroid config")


def read_folder(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config, state_dict)`` of a folder with ``config.json`` and ``model.safetensors``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for needed in (config_path, weights_path):
        if not needed.is_file():
            raise AdapterError(f"The model folder {folder} lacks {needed.name}.")
    config = read_config(config_path)
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as err:
        raise AdapterError(f"{weights_path} cannot be read as safetensors ({err}).") from None
    return config, state


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A bare state dict from a ``.safetensors`` file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise AdapterError(f"{path} cannot be read as safetensors ({err}).") from None


def classify(obj: Any, source: str) -> str:
    """Format of a loaded checkpoint object.

    Returns:
        ``"asteroid"`` (``{model_name, model_args, state_dict, ...}`` from ``serialize()``),
        ``"kaituoxu"`` (``{N, L, ..., state_dict, optim_dict, epoch}``),
        ``"kaituoxu_state"`` / ``"asteroid_state"`` (bare state dicts).
    """
    if isinstance(obj, Mapping):
        if {"model_name", "model_args", "state_dict"} <= set(obj):
            return "asteroid"
        if "state_dict" in obj and any(k in obj for k in HPARAM_KEYS):
            return "kaituoxu"
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            if "encoder.conv1d_U.weight" in obj:
                return "kaituoxu_state"
            return "asteroid_state"
    keys = ", ".join(list(obj)[:6]) if isinstance(obj, Mapping) else type(obj).__name__
    raise AdapterError(
        f"{source} is neither an asteroid package (model_name, model_args, state_dict), a kaituoxu "
        f"Conv-TasNet package (N, L, ..., state_dict) nor a state dict (found: {keys})."
    )


def check_state(module: torch.nn.Module, state: Mapping[str, Any], source: str) -> None:
    """Raise :class:`AdapterError` unless ``state`` has exactly ``module``'s keys and shapes."""
    problem = state_dict_mismatch(module, state)
    if problem is not None:
        raise AdapterError(f"The weights in {source} do not fit the model: {problem} keys.")


def save_default(model: torch.nn.Module, folder: str | os.PathLike, card_text: str | None = None) -> Path:
    """Write an asteroid ``ConvTasNet`` as a default-weights folder.

    Files: ``config.json`` (the ``ConvTasNet`` constructor arguments, incl. ``sample_rate``),
    ``model.safetensors`` (its state dict) and ``README.md`` (``card_text``). Copy the folder to
    ``sips_asteroid/default/`` to ship it; ``load_convtasnet()`` then loads it without a checkpoint.

    Args:
        model: an asteroid ``ConvTasNet`` as built by its constructor.
        folder: destination (created if needed).
        card_text: the model card (Markdown); ``None`` writes a short card listing the configuration.

    Returns:
        The folder.
    """
    from safetensors.torch import save_file

    models = import_asteroid("asteroid.models")
    if not isinstance(model, models.ConvTasNet):
        raise AdapterError(f"save_default expects an asteroid ConvTasNet, got {type(model).__name__}.")
    args = dict(model.get_model_args())
    args["sample_rate"] = model.sample_rate
    rebuilt = models.ConvTasNet(**args)
    check_state(rebuilt, model.state_dict(), "the model given to save_default")
    if type(rebuilt.masker.bottleneck[0]) is not type(model.masker.bottleneck[0]):
        raise AdapterError(
            "This ConvTasNet has a replaced first norm that its constructor arguments cannot record; "
            "save_default needs a model built by the ConvTasNet constructor."
        )
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt", "model": "asteroid.ConvTasNet"})
    (out / CONFIG_NAME).write_text(json.dumps(args, indent=2, sort_keys=True) + "\n")
    if card_text is None:
        card_text = _default_card(args, sum(p.numel() for p in model.parameters()))
    (out / CARD_NAME).write_text(card_text if card_text.endswith("\n") else card_text + "\n")
    return out


def _default_card(args: Mapping[str, Any], n_params: int) -> str:
    lines = [
        "# Default Conv-TasNet of sips-asteroid",
        "",
        f"asteroid `ConvTasNet`, {n_params:,} parameters, {args.get('n_src')} sources at "
        f'{args.get("sample_rate")} Hz. Loaded by `sips.load_predictor("convtasnet")`.',
        "",
        "Configuration (`config.json`):",
        "",
        *(f"- `{k}`: {v!r}" for k, v in sorted(args.items())),
    ]
    return "\n".join(lines) + "\n"
