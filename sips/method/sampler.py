"""Samplers for the refinement SDE/ODE (DESIGN §1), in the k-diffusion style.

Each sampler is a pure function over a ``denoiser(x [B, ...], t [B]) -> z_hat [B, ...]``. The state
starts at the encoded mixture ``y`` and moves with the predictor's constant drift
``v = E(x_hat) - E(y)`` plus the prior's correction ``(gamma_dot(t) - kappa) * z_hat``:

    dx = (v + (gamma_dot(t) - kappa) * D(x, t)) dt + sqrt(2 kappa gamma(t)) dW

With ``D = 0`` the ODE ends exactly at ``y + v``, the predictor's estimate.

Methods (one ``method=`` argument):

* ``"euler"`` — Euler–Maruyama, the published sampler (``kappa >= 0``); ``steps - 1`` network
  calls for the ODE, ``steps`` for the SDE.
* ``"heun"`` — Heun's second-order method for the deterministic ODE (``kappa = 0`` only);
  ``2 * steps - 2`` network calls.

For the ODE the network is not called at ``t = 0`` and ``t = 1``, where ``gamma_dot`` vanishes
and its output would be multiplied by zero (the published sampler calls it and discards it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from ..errors import OptionError, spell
from .interpolant import DEFAULT_C, gamma, gamma_dot, time_grid

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NoiseSampler = Callable[[int, torch.Tensor], torch.Tensor]

METHODS = ("euler", "heun")


def resolve_method(method: str, kappa: float) -> str:
    """``"auto"`` means Heun for the deterministic ODE (``kappa = 0``) and Euler–Maruyama for the
    SDE (``kappa > 0``, which Heun does not integrate); other names are returned unchanged."""
    if method == "auto":
        return "heun" if kappa == 0 else "euler"
    return method


def check_settings(steps: int, kappa: float, method: str, *, allow_auto: bool = False, strength: float = 1.0) -> None:
    """Raise :class:`OptionError` (one sentence) unless ``steps``, ``kappa``, ``method`` and
    ``strength`` can run.

    ``steps`` is an integer >= 1, ``kappa`` and ``strength`` finite numbers >= 0, ``method`` one of
    :data:`METHODS` (or ``"auto"`` where ``allow_auto``: :func:`resolve_method` picks), and Heun
    only integrates the deterministic ODE (``kappa = 0``). Shared by :func:`sample` and
    :func:`sips.refine`, which checks before any work.
    """
    methods = ("auto", *METHODS) if allow_auto else METHODS
    if method not in methods:
        raise OptionError(f"method must be one of {', '.join(map(repr, methods))}, not {method!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise OptionError(f"steps must be a positive integer, got {steps!r}.")
    if isinstance(kappa, bool) or not isinstance(kappa, int | float) or not math.isfinite(kappa) or kappa < 0:
        raise OptionError(f"kappa must be a finite number >= 0, got {kappa!r}.")
    if (
        isinstance(strength, bool)
        or not isinstance(strength, int | float)
        or not math.isfinite(strength)
        or strength < 0
    ):
        raise OptionError(f"strength must be a finite number >= 0, got {strength!r}.")
    if method == "heun" and kappa > 0:
        raise OptionError(
            f"{spell('method', 'heun')} integrates the deterministic ODE; use {spell('kappa', 0)} or {spell('method', 'euler')}."
        )


def nfe(steps: int, method: str = "euler", kappa: float = 0.0) -> int:
    """Number of network calls (NFE) of one trajectory of :func:`sample` (``method`` may be ``"auto"``).

    The deterministic ODE needs no call at ``t = 0`` and ``t = 1``, where ``gamma_dot`` vanishes:
    Euler makes ``steps - 1`` calls, Heun ``2 * steps - 2``. With ``kappa > 0`` Euler–Maruyama
    also calls the network at ``t = 0``: ``steps`` calls."""
    if resolve_method(method, kappa) == "heun":
        return 2 * steps - 2
    return steps if kappa > 0 else steps - 1


def sample(
    denoiser: Denoiser,
    y: torch.Tensor,
    drift: torch.Tensor,
    *,
    steps: int,
    kappa: float = 0.0,
    method: str = "euler",
    strength: float = 1.0,
    generator: torch.Generator | None = None,
    noise_sampler: NoiseSampler | None = None,
    callback: Callable[[dict], None] | None = None,
    progress: bool = False,
    c: float = DEFAULT_C,
) -> torch.Tensor:
    """Integrate from the mixture ``y`` (t = 0) to the refined estimate (t = 1).

    Args:
        denoiser: ``(x [B, ...], t [B]) -> z_hat [B, ...]``, the prior's noise prediction.
        y: ``[B, ...]`` encoded mixture (the start state).
        drift: ``[B, ...]`` constant drift ``E(x_hat) - E(y)``.
        steps: number of uniform time steps N (``dt = 1 / N``).
        kappa: stochasticity; 0 gives the deterministic ODE.
        method: ``"euler"`` or ``"heun"`` (ODE only).
        strength: scales the prior's correction and the injected noise,
            ``dx = (v + s (gamma_dot - kappa) z_hat) dt + sqrt(2 s kappa gamma) dW``: 1 is the
            published sampler, 0 follows the drift alone (to ``y + v``).
        generator: ``torch.Generator`` for the injected noise (``kappa > 0``).
        noise_sampler: ``(i, like) -> noise`` returning step ``i``'s noise (overrides ``generator``).
        callback: called after every step with ``{"i", "t", "x", "z_hat"}``.
        progress: show a tqdm progress bar.
        c: amplitude of ``gamma(t) = c sin(pi t)^2`` (the prior's ``c``).

    Returns:
        ``[B, ...]`` final state.
    """
    check_settings(steps, kappa, method, strength=strength)
    if drift.shape != y.shape:
        raise ValueError(f"drift {list(drift.shape)} and y {list(y.shape)} must have the same shape.")
    if noise_sampler is None:
        noise_sampler = _default_noise(generator)

    times = time_grid(steps).to(y.device)
    dt = 1.0 / steps
    batch = y.shape[0]

    def velocity(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if kappa == 0 and (t == 0 or t == 1):  # gamma_dot vanishes: the prior term is exactly 0
            return drift, None
        coef = strength * (gamma_dot(t, c) - kappa)
        z_hat = denoiser(x, t * torch.ones(batch, device=y.device))
        return drift + coef * z_hat, z_hat

    x = y
    for i in tqdm(range(steps), disable=not progress, desc="refine", leave=False):
        t = times[i]
        d, z_hat = velocity(x, t)
        if method == "heun":
            x_next = x + d * dt
            d_next, _ = velocity(x_next, times[i + 1])
            x = x + (d + d_next) * (dt / 2)
        else:
            x = x + d * dt
            if kappa > 0:
                g = gamma(t * torch.ones(batch, device=y.device), c).reshape(-1, *([1] * (y.dim() - 1)))
                x = x + torch.sqrt((2 * dt * kappa * strength) * g) * noise_sampler(i, x)
        if callback is not None:
            callback({"i": i, "t": float(t), "x": x, "z_hat": z_hat})
    return x


def _default_noise(generator: torch.Generator | None) -> NoiseSampler:
    def draw(i: int, like: torch.Tensor) -> torch.Tensor:
        device = generator.device if generator is not None else like.device
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=device).to(like.device)

    return draw
