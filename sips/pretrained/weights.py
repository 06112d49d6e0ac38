"""Reading foreign checkpoints safely, and strict state-dict checks, for the core and every adapter.

Every foreign ``.pt/.pth/.ckpt/.tar`` file (predictor checkpoints, the published prior, NISQA
weights) is read by :func:`load_torch_checkpoint`: ``torch.load(weights_only=True)``, so tensors,
plain containers and numbers only, plus the few globals a known format needs. A file holding
other Python objects is refused in one sentence that names their types and says how to re-save
the weights alone; nothing in it is ever unpickled as code.

A checkpoint that does not fit a network is a user error: it gets one sentence naming how many
keys are missing, unexpected or of another shape, with an example of each.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import SipsError

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _global_name(entry: Any) -> str:
    """``module.qualname`` of an allowed global (an object, or torch's ``(object, "name")`` pair)."""
    if isinstance(entry, tuple):
        return entry[1]
    return f"{entry.__module__}.{entry.__qualname__}"


def _foreign_objects(path: Path, allowed: set[str], err: Exception) -> list[str]:
    """The types of the Python objects in ``path`` that weights-only loading refused."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - the legacy (non-zip) format: fall back to torch's message
        names = _GLOBAL.findall(str(err))
    return sorted(set(names) - allowed)


def load_torch_checkpoint(
    path: str | os.PathLike,
    name: str = "checkpoint",
    *,
    allowed_globals: Sequence[Any] = (),
    error: type[Exception] = SipsError,
) -> Any:
    """Read a foreign torch file with ``torch.load(weights_only=True)`` onto the CPU.

    Args:
        path: the ``.pt/.pth/.ckpt/.tar`` file.
        name: what the file is, for the messages (``"The {name} {path} ..."``), e.g.
            ``"SEMamba checkpoint"``.
        allowed_globals: the classes or functions a known format needs beyond tensors and plain
            containers, as for ``torch.serialization.safe_globals`` (e.g. ``[TorchVersion]``).
        error: the :class:`SipsError` subclass to raise (``AdapterError``, ``PriorLoadError``, ...).

    Returns:
        The object stored in the file (usually a state dict, or a dict around one).

    Raises:
        error: with one sentence, if the file is missing, damaged or not written by
            ``torch.save``, or holds Python objects other than ``allowed_globals`` (their types
            are named, with how to re-save only the weights).
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"The {name} {path} " + ("is a folder, not a file." if path.is_dir() else "does not exist."))
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for foreign or damaged files
        objects = (
            _foreign_objects(path, {_global_name(g) for g in allowed_globals}, err)
            if isinstance(err, pickle.UnpicklingError)
            else []
        )
        if objects:
            shown = ", ".join(objects[:3]) + (f" and {len(objects) - 3} more" if len(objects) > 3 else "")
            raise error(
                f"The {name} {path} holds Python objects besides tensors ({shown}); sips reads checkpoints "
                "weights-only and refuses to unpickle them, so re-save only the weights in the code that made "
                'the file (e.g. torch.save(model.state_dict(), "weights.pth")) and pass that file.'
            ) from None
        first = next((line.strip() for line in _ANSI.sub("", str(err)).splitlines() if line.strip()), "")
        detail = "" if isinstance(err, pickle.UnpicklingError) or len(first) > 120 else f": {first.rstrip('.')}"
        raise error(
            f"The {name} {path} cannot be read as a torch checkpoint (damaged, or not written by torch.save{detail})."
        ) from None


def state_dict_mismatch(module: torch.nn.Module, state: Mapping[str, Any]) -> str | None:
    """How ``state`` differs from ``module.state_dict()`` in keys and shapes (``None`` if it fits).

    Returns a phrase such as ``"2 missing (e.g. a.weight); 1 of another shape (e.g. b: [3] vs [4])"``;
    an entry that is not a tensor counts as of another shape.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        k
        for k in own
        if k in state and (not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != tuple(own[k].shape))
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        got = list(state[k].shape) if isinstance(state[k], torch.Tensor) else type(state[k]).__name__
        parts.append(f"{len(wrong)} of another shape (e.g. {k}: {got} vs {list(own[k].shape)})")
    return "; ".join(parts) or None


def load_strict(
    module: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    *,
    error: type[Exception],
    what: str = "the configuration",
    hint: str = "",
) -> None:
    """``module.load_state_dict(state, strict=True)``, raising ``error`` with one sentence on a mismatch.

    Args:
        module: the network to fill.
        state: the weights (any key order).
        source: where the weights come from, for the message (a path or a name).
        error: the exception class to raise (e.g. ``PriorLoadError``, ``AdapterError``).
        what: what the weights must fit, e.g. ``"the SEMamba configuration"``.
        hint: an optional clause appended to the sentence, e.g. ``"pass the model's YAML as config="``.
    """
    problem = state_dict_mismatch(module, state)
    if problem is not None:
        tail = f"; {hint}" if hint else ""
        raise error(f"The weights in {source} do not fit {what}: {problem} keys{tail}.")
    module.load_state_dict(dict(state), strict=True)


def write_snapshot(
    path: str | os.PathLike,
    state: Mapping[str, torch.Tensor],
    info: Mapping[str, Any],
    dtype: torch.dtype | None = None,
) -> Path:
    """Write weights and what rebuilds their network as one safetensors file, atomically.

    A snapshot is what a training run leaves every minute (``--snapshot``): one file, so that a
    run killed at any time still returns its latest EMA weights. ``info`` (JSON-serialisable:
    the network's configuration, the step, validation numbers) is stored as the file's metadata
    under ``"sips"``; ``dtype`` (e.g. ``torch.float16``) converts floating-point tensors.
    """
    from safetensors.torch import save_file

    from .._atomic import atomic_path

    def convert(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().to("cpu")
        return (t.to(dtype) if dtype is not None and t.is_floating_point() else t).contiguous()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({k: convert(v) for k, v in state.items()}, tmp, metadata={"sips": json.dumps(dict(info))})
    return path


def read_snapshot(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state, info)`` of a file written by :func:`write_snapshot`; :class:`SipsError` otherwise."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise SipsError(f"No snapshot file at {path}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise SipsError(f"{path} is not a readable safetensors file ({err}).") from None
    if "sips" not in meta:
        raise SipsError(f"{path} is a safetensors file without the 'sips' metadata of a training snapshot.")
    return state, json.loads(meta["sips"])
