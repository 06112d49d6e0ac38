"""The stochastic interpolant between a mixture (t = 0) and clean speech (t = 1), DESIGN §1.

    x_t = (1 - t) * y + t * x + gamma(t) * z,    gamma(t) = c * sin(pi t)^2

Pure tensor functions; ``t`` may be a Python float or a tensor broadcastable to the data.
"""

from __future__ import annotations

import math

import torch

DEFAULT_A = 0.1
DEFAULT_C = 0.5


def gamma(t: torch.Tensor | float, c: float = DEFAULT_C) -> torch.Tensor | float:
    """Noise scale of the interpolant, ``c * sin(pi t)^2``."""
    if isinstance(t, torch.Tensor):
        return c * torch.sin(math.pi * t) ** 2
    return c * math.sin(math.pi * t) ** 2


def gamma_dot(t: torch.Tensor | float, c: float = DEFAULT_C) -> torch.Tensor | float:
    """Time derivative of :func:`gamma`, ``c * pi * sin(2 pi t)``."""
    if isinstance(t, torch.Tensor):
        return (c * math.pi) * torch.sin((2 * math.pi) * t)
    return (c * math.pi) * math.sin(2 * math.pi * t)


def interpolate(
    y: torch.Tensor, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor, c: float = DEFAULT_C
) -> torch.Tensor:
    """The interpolant ``x_t`` for ``y, x, z [B, ...]`` and ``t [B]``."""
    t = _expand(t, y)
    return (1 - t) * y + t * x + gamma(t, c) * z


def noise_level(t: torch.Tensor, a: float = DEFAULT_A, c: float = DEFAULT_C) -> torch.Tensor:
    """Standard deviation ``a + gamma(t)`` of the training corruption at time ``t``."""
    return a + gamma(t, c)


def corrupt(
    s: torch.Tensor, t: torch.Tensor, z: torch.Tensor, a: float = DEFAULT_A, c: float = DEFAULT_C
) -> torch.Tensor:
    """Prior-training corruption of clean ``s [B, ...]``: ``s + (a + gamma(t)) * z`` with ``t [B]``."""
    return s + _expand(noise_level(t, a, c), s) * z


def time_grid(steps: int, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
    """Uniform grid ``[steps + 1]`` (float32) from ``t0`` to ``t1``."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    return torch.linspace(t0, t1, steps + 1)


def _expand(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.dim() - 1))) if t.dim() else t
