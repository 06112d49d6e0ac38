"""Reading FlexIO weights: the published ``.ckpt`` (torch, weights only) or safetensors, loaded strictly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sips.errors import AdapterError
from sips.pretrained.weights import load_torch_checkpoint, state_dict_mismatch

__all__ = ["read_state_dict", "unwrap_state_dict", "load_strict", "shared_groups", "state_dict_for_saving"]

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


def unwrap_state_dict(ckpt: Any, source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """Apply the published unwrap rules.

    1. The first of ``'state_dict'``, ``'model'``, ``'model_state_dict'`` present replaces the dict.
    2. If **all** keys start with ``'model.'``, the prefix is stripped.
    """
    if isinstance(ckpt, Mapping):
        for key in _WRAPPER_KEYS:
            if key in ckpt:
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, Mapping) or not ckpt:
        raise AdapterError(f"{source} does not hold a FlexIO state dict.")
    if all(isinstance(k, str) and k.startswith("model.") for k in ckpt):
        ckpt = {k[len("model.") :]: v for k, v in ckpt.items()}
    bad = [k for k, v in ckpt.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise AdapterError(f"{source} holds non-tensor entries (e.g. {bad[0]!r}) where FlexIO weights are expected.")
    return dict(ckpt)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read and unwrap a ``.safetensors`` file or a torch checkpoint (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise AdapterError(f"The FlexIO checkpoint {path} does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return unwrap_state_dict(load_file(str(path)), str(path))
        except AdapterError:
            raise
        except Exception as err:  # noqa: BLE001 - corrupt file
            raise AdapterError(f"The safetensors file {path} cannot be read ({err}).") from None
    ckpt = load_torch_checkpoint(path, "FlexIO checkpoint", error=AdapterError)
    return unwrap_state_dict(ckpt, str(path))


def shared_groups(module: nn.Module) -> list[list[str]]:
    """Groups (of two or more) of state-dict keys that refer to one tensor (the shared rotary ``freqs``)."""
    by_storage: dict[tuple[int, int], list[str]] = {}
    for key, tensor in module.state_dict(keep_vars=True).items():
        by_storage.setdefault((tensor.data_ptr(), tensor.numel()), []).append(key)
    return [keys for keys in by_storage.values() if len(keys) > 1]


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with one-sentence :class:`AdapterError` on any mismatch.

    Keys that share one tensor in ``module`` (rotary frequencies) must hold equal values in ``state``.
    """
    load_problem = state_dict_mismatch(module, state)
    if load_problem is not None:
        raise AdapterError(f"The weights in {source} do not fit the FlexIO configuration: {load_problem} keys.")
    for group in shared_groups(module):
        first = state[group[0]]
        for key in group[1:]:
            if not torch.equal(state[key].to(first.dtype), first):
                raise AdapterError(f"The shared tensors {group[0]} and {key} differ in {source}.")
    module.load_state_dict(dict(state), strict=True)


def state_dict_for_saving(module: nn.Module) -> dict[str, torch.Tensor]:
    """State dict with every tensor cloned and contiguous (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}
