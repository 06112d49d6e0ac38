"""Reading NCSN++ weights: the published Lightning checkpoint (weights only, EMA weights) or safetensors.

The published ``NCSNpp_VB-DMD.ckpt`` is a PyTorch-Lightning checkpoint holding ``state_dict`` (the
module's weights, keys ``dnn.*``) and ``ema`` (``{"decay", "num_updates", "shadow_params",
"collected_params"}``, ``shadow_params`` one tensor per parameter in the state dict's order). The
published system runs with the EMA weights, and so does this adapter: ``state_dict`` is checked
strictly (keys and shapes) and then replaced, tensor by tensor, by ``shadow_params``. A file
without ``ema`` (a plain state dict, or ``{"state_dict": ...}``) is used as it is.

Every torch file is read by :func:`load_torch_checkpoint`, with ``torch.load(weights_only=True)``;
beyond tensors and plain containers only the names in :data:`ALLOWED_GLOBALS` are accepted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sips.errors import AdapterError, spell
from sips.pretrained import weights

__all__ = [
    "ALLOWED_GLOBALS",
    "SpecsDataModule",
    "load_torch_checkpoint",
    "read_checkpoint",
    "inference_state",
    "first_difference",
    "load_weights",
]


class SpecsDataModule:
    """Inert stand-in for the class ``sgmse.data_module.SpecsDataModule``.

    StoRM saves its data-module class among the Lightning hyper-parameters, so the published
    checkpoint names it; unpickling it yields this class, which holds and runs nothing.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


#: The only global the published checkpoint needs beyond tensors and plain containers (spec §8.3).
ALLOWED_GLOBALS = [(SpecsDataModule, "sgmse.data_module.SpecsDataModule")]


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """Read a foreign torch file with ``torch.load(weights_only=True)`` and :data:`ALLOWED_GLOBALS`,
    through the core's reader of foreign checkpoints (:func:`sips.weights.load_torch_checkpoint`).

    Raises:
        AdapterError: one sentence if the file is missing, damaged, or holds other Python objects
            (their types are named; nothing in the file is executed).
    """
    return weights.load_torch_checkpoint(path, "NCSN++ checkpoint", allowed_globals=ALLOWED_GLOBALS, error=AdapterError)


def read_checkpoint(path: str | os.PathLike) -> Any:
    """The contents of a ``.safetensors`` file (a state dict) or of a torch checkpoint."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return load_torch_checkpoint(path)
    if not path.is_file():
        raise AdapterError(f"The NCSN++ checkpoint {path} does not exist.")
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - corrupt or foreign file
        raise AdapterError(f"The safetensors file {path} cannot be read ({err}).") from None


def first_difference(model: nn.Module, state: Mapping[str, Any]) -> str | None:
    """The first way ``state`` differs from ``model.state_dict()`` (in the model's key order), or ``None``.

    Returns a phrase such as ``"dnn.all_modules.1.weight has shape [8, 2, 3, 3] instead of [128, 2, 3, 3]
    (1 of 5 differences)"``.
    """
    own = model.state_dict()
    found = []
    for key, tensor in own.items():
        if key not in state:
            found.append(f"{key} is missing")
        elif not isinstance(state[key], torch.Tensor):
            found.append(f"{key} is a {type(state[key]).__name__}, not a tensor")
        elif tuple(state[key].shape) != tuple(tensor.shape):
            found.append(f"{key} has shape {list(state[key].shape)} instead of {list(tensor.shape)}")
    found += [f"{key} is not a key of the network" for key in state if key not in own]
    if not found:
        return None
    return found[0] + (f" (1 of {len(found)} differences)" if len(found) > 1 else "")


def inference_state(ckpt: Any, model: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """The weights to run ``model`` with: the EMA weights of a Lightning checkpoint, else its state dict.

    Raises:
        AdapterError: one sentence naming the first key or shape that differs from ``model``'s.
    """
    ema = None
    if isinstance(ckpt, Mapping) and "state_dict" in ckpt:
        ema = ckpt.get("ema")
        ckpt = ckpt["state_dict"]
    if not isinstance(ckpt, Mapping) or not ckpt:
        raise AdapterError(f"{source} holds no NCSN++ state dict (expected a Lightning checkpoint or a state dict).")
    problem = first_difference(model, ckpt)
    if problem is not None:
        cfg = getattr(model, "config", {})
        size = f" (nf={cfg.get('nf')}, ch_mult={cfg.get('ch_mult')})" if cfg else ""
        raise AdapterError(
            f"The weights in {source} do not fit the NCSN++ network{size}: {problem}; "
            f"for another size pass its constructor arguments as {spell('config')}."
        )
    if ema is None:
        return dict(ckpt)
    shadow = ema.get("shadow_params") if isinstance(ema, Mapping) else None
    if not isinstance(shadow, list | tuple):
        raise AdapterError(f"The 'ema' entry of {source} holds no list of shadow_params.")
    names = [name for name, _ in model.named_parameters()]
    if len(shadow) != len(names):
        raise AdapterError(
            f"The EMA weights in {source} hold {len(shadow)} tensors, but the NCSN++ network has {len(names)} parameters."
        )
    own = model.state_dict()
    for i, (name, tensor) in enumerate(zip(names, shadow, strict=True)):
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != tuple(own[name].shape):
            got = list(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise AdapterError(
                f"The EMA tensor {i} in {source} ({name}) is {got} instead of shape {list(own[name].shape)}."
            )
    return dict(zip(names, shadow, strict=True))


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Fill ``model`` strictly with the inference weights of the checkpoint at ``path``."""
    state = inference_state(read_checkpoint(path), model, str(path))
    model.load_state_dict(state, strict=True)
