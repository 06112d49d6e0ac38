"""Checks of options shared by :func:`sips.refine`, :func:`sips.quality` and the CLI.

Each raises :class:`~sips.errors.OptionError` with one sentence. ``check_device("cuda")`` on a
machine without CUDA (or ``"gpu"``, which torch does not know) names the devices that do exist,
so the CLI can refuse it before any model is loaded or any file is read.

A shared leaf at the top of the package: the method, the prior, training, evaluation and the CLI
use it, and it imports nothing of sips but its errors.
"""

from __future__ import annotations

import numbers

import torch

from .errors import OptionError


def available_devices() -> list[str]:
    """The devices this process can use: ``cpu``, then ``cuda:0 ...`` and ``mps`` where present."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a ``torch.device`` (``None`` stays ``None``), or :class:`OptionError` if it
    is not a device name or does not exist on this machine."""
    if device is None:
        return None
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        parsed = None
    if parsed is not None and _exists(parsed):
        return parsed
    raise OptionError(f"The device {str(device)!r} is not available here; available: {', '.join(available_devices())}.")


def _exists(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    backend = getattr(torch.backends, device.type, None) or getattr(torch, device.type, None)
    is_available = getattr(backend, "is_available", None)
    return bool(is_available()) if callable(is_available) else False


def check_seed(seed: object, name: str = "seed") -> None:
    """A seed is ``None`` or an integer >= 0 (numpy's ``SeedSequence`` takes no negative seeds)."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise OptionError(f"{name} must be an integer >= 0, got {seed!r}.")


#: Training precisions: ``fp32``, or ``bf16`` autocast (matrix products and convolutions in
#: bfloat16, weights, optimiser state and losses in float32; on CUDA and CPU alike).
PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else :class:`OptionError`."""
    if precision not in PRECISIONS:
        raise OptionError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    return precision


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context of ``precision`` on ``device`` (disabled for ``fp32``)."""
    check_precision(precision)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def use_tensor_cores(device: torch.device) -> None:
    """On CUDA: TF32 matrix products and convolutions, and cuDNN's autotuner (training loops)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
