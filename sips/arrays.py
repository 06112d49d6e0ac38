"""Arrays in: numpy or torch, checked the same way by every entry point (``refine``, ``quality``,
predictors).

A numpy array of any real dtype but an unsigned integer one becomes a float32 tensor on the CPU;
a tensor is taken as it is (real floating point, ``int16`` or ``int32``). :func:`accepts_numpy`
gives a predictor's ``__call__`` the same rule as :func:`sips.refine`: numpy in, numpy out.

A shared leaf at the top of the package, not in :mod:`sips.prediction`: the method uses it as much
as the predictors do, and the adapters import it as ``sips.arrays``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from .errors import AudioError

ArrayLike = torch.Tensor | np.ndarray
Call = TypeVar("Call", bound=Callable[..., Any])


def as_tensor(data: ArrayLike, what: str) -> tuple[torch.Tensor, bool]:
    """``(tensor, came_from_numpy)``: a numpy array as a float32 CPU tensor, a tensor unchanged.

    Raises:
        AudioError: a non-numeric or unsigned integer array, a complex or boolean tensor, or
            anything that is neither (``what`` names the argument in the sentence).
    """
    if isinstance(data, np.ndarray):
        if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
            raise AudioError(f"The {what} must be real and numeric, got dtype {data.dtype}.")
        if np.issubdtype(data.dtype, np.unsignedinteger):
            raise AudioError(
                f"The {what} has the unsigned integer dtype {data.dtype}, whose samples are offset (8-bit PCM "
                "is centred on 128); convert it to signed or float samples first, e.g. (x.astype(np.float32) - 128) / 128."
            )
        return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), True
    if isinstance(data, torch.Tensor):
        if data.is_complex() or not (data.is_floating_point() or data.dtype in (torch.int16, torch.int32)):
            raise AudioError(f"The {what} must be a real tensor, got {data.dtype}.")
        return data, False
    raise AudioError(f"The {what} must be a torch tensor or a numpy array, got {type(data).__name__}.")


def accepts_numpy(call: Call) -> Call:
    """Decorator for a predictor's ``__call__(self, mixture, ...)``: a numpy ``mixture`` runs as a
    float32 CPU tensor (checked by :func:`as_tensor`) and the estimate comes back as a float32
    numpy array of the same shape as the tensor result (``[B, n_src, T]``); a tensor goes through
    unchanged. Other arguments are passed on as they are."""

    @functools.wraps(call)
    def wrapper(self, mixture, *args, **kwargs):
        if not isinstance(mixture, np.ndarray):
            return call(self, mixture, *args, **kwargs)
        tensor, _ = as_tensor(mixture, "mixture")
        out = call(self, tensor, *args, **kwargs)
        return out.detach().to("cpu", torch.float32).numpy() if isinstance(out, torch.Tensor) else out

    return wrapper
