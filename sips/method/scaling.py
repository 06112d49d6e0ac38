"""Bringing a predictor's estimates to the mixture's scale and sign before the drift is formed.

The drift ``E(x_hat) - E(y)`` compares the estimate with the mixture through a compressive
encoder, so it is only meaningful when both are on the same scale. Separators trained with a
scale-invariant loss (SI-SDR, the usual choice) leave each source's gain and sign free: the
shipped Conv-TasNet returns its sources about 17 dB too quiet and with inverted polarity. The
drift then points at a quiet, inverted target.

Modes (one string, as every option of :func:`sips.refine`):

- ``"none"``: the estimates as the predictor returned them.
- ``"gain"``: one real gain per source, jointly the least-squares fit of the mixture by the
  gained sources, ``g = argmin || y - sum_k g_k x_hat_k ||^2``. For one source this is the
  projection gain ``<x_hat, y> / <x_hat, x_hat>``. A negative gain also fixes the sign.
  Estimates that are a scaled copy of the true sources are thereby restored exactly (up to a
  common factor if the sources sum to the mixture), and any scaling of the estimates by the
  predictor (``-0.1 x_hat``) gives the same result.
- ``"auto"`` (the default): ``"gain"`` for more than one source; for one source (enhancement),
  ``AUTO_ENHANCEMENT`` (chosen by measurement, see docs/benchmarks.md, "Choosing the defaults").

The gains are computed per window (long inputs are refined in windows) and per item of a batch,
on the peak-normalised signals. A tiny ridge keeps silent or linearly dependent sources finite:
a silent source gets gain 0.
"""

from __future__ import annotations

import torch

from ..defaults import RESCALE_MODES as MODES
from ..errors import OptionError

AUTO_ENHANCEMENT = "none"
RIDGE = 1e-6


def resolve(mode: str, n_src: int) -> str:
    """The concrete mode (``"none"`` or ``"gain"``) that ``mode`` means for ``n_src`` sources."""
    check(mode)
    if mode == "auto":
        return "gain" if n_src > 1 else AUTO_ENHANCEMENT
    return mode


def check(mode: str) -> None:
    """Raise :class:`~sips.errors.OptionError` unless ``mode`` is one of :data:`MODES`."""
    if mode not in MODES:
        raise OptionError(f"rescale must be one of {', '.join(map(repr, MODES))}, not {mode!r}.")


def mixture_gains(estimates: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """Least-squares gains ``[..., K]`` such that ``sum_k g_k estimates[..., k, :]`` fits ``mixture``.

    Args:
        estimates: ``[..., K, T]``.
        mixture: ``[..., T]``.

    Returns:
        ``[..., K]`` in float64-accurate float32 (solved in float64).
    """
    est = estimates.to(torch.float64)
    mix = mixture.to(torch.float64)
    gram = est @ est.transpose(-1, -2)  # [..., K, K]
    rhs = (est @ mix.unsqueeze(-1)).squeeze(-1)  # [..., K]
    scale = torch.diagonal(gram, dim1=-2, dim2=-1).mean(-1, keepdim=True).clamp(min=1e-30)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    gains = torch.linalg.solve(gram + RIDGE * scale.unsqueeze(-1) * eye, rhs)
    silent = torch.diagonal(gram, dim1=-2, dim2=-1) <= 1e-12 * scale
    return gains.masked_fill(silent, 0.0).to(estimates.dtype)


def rescale(estimates: torch.Tensor, mixture: torch.Tensor, mode: str = "auto") -> torch.Tensor:
    """The estimates ``[..., K, T]`` brought to the scale and sign of ``mixture [..., T]``.

    Args:
        estimates: ``[..., K, T]`` source estimates of ``mixture``.
        mixture: ``[..., T]``.
        mode: ``"auto"``, ``"none"`` or ``"gain"`` (see the module's docstring).

    Returns:
        ``[..., K, T]``; the input itself for ``"none"``.

    Raises:
        OptionError: for an unknown ``mode``.
    """
    if resolve(mode, estimates.shape[-2]) == "none":
        return estimates
    return estimates * mixture_gains(estimates, mixture).unsqueeze(-1)
