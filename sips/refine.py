"""``refine`` and ``refine_estimates``: the tensor-level entry points (DESIGN §1 pipeline).

Shape rule (the only one): the output is the mixture's shape with a source axis inserted before
time, and that axis is never squeezed — ``[T] -> [n_src, T]``, ``[B, T] -> [B, n_src, T]`` (so an
enhancer gives ``[1, T]`` / ``[B, 1, T]``). Torch tensors come back as torch tensors on the
mixture's device and dtype; numpy arrays come back as float32 numpy arrays.

Pipeline: peak-normalise the mixture (the same factor scales the estimates; silence is guarded),
match the estimates' length to the mixture (at most ``n_fft`` samples apart), encode, start at the
encoded mixture ``y`` and drift toward each estimate ``E(x_hat_k)`` with the prior's correction
(every source of every item is one trajectory, all batched), decode, crop, undo the scaling.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from . import spectral
from .errors import AdapterError, AudioError, LengthMismatchError, SampleRateError
from .predictors import Predictor, as_predictor
from .prior import ScorePrior, load_prior
from .sampler import sample

ArrayLike = torch.Tensor | np.ndarray
LENGTH_TOLERANCE = spectral.N_FFT
PEAK_FLOOR = 1e-8


@functools.lru_cache(maxsize=1)
def _embedded_prior() -> ScorePrior:
    return load_prior()


def default_prior() -> ScorePrior:
    """The embedded default prior, loaded once per process."""
    return _embedded_prior()


def refine(
    predictor: Predictor | Any,
    mixture: ArrayLike,
    *,
    prior: ScorePrior | None = None,
    sample_rate: int | None = None,
    steps: int = 15,
    kappa: float = 0.0,
    method: str = "euler",
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> ArrayLike:
    """Run ``predictor`` on ``mixture`` and refine its estimate(s) with the prior.

    Args:
        predictor: a :class:`~sips.predictors.Predictor` (e.g. ``sips.load_predictor("wiener")``),
            or a plain callable / ``nn.Module`` ``[B, T] -> [B, T] | [B, n_src, T]`` at 16 kHz.
        mixture: ``[T]`` or ``[B, T]`` torch tensor or numpy array.
        prior: the prior; ``None`` uses the embedded default.
        sample_rate: rate of ``mixture``; ``None`` means the prior's rate. Another rate is an
            error (resample first, or use the file layer / CLI, which resample).
        steps: number of sampler steps N.
        kappa: stochasticity (0: the deterministic ODE of the published system).
        method: ``"euler"`` (Euler–Maruyama) or ``"heun"`` (ODE only).
        seed: seeds the injected noise when ``kappa > 0`` (``None``: torch's global RNG).
        device: where the prior runs (default: the mixture's device).
        progress: show a progress bar.

    Returns:
        ``[n_src, T]`` or ``[B, n_src, T]``, same type as ``mixture``.
    """
    predictor = as_predictor(predictor)
    wav, restore = _as_batch(mixture)
    prior = prior if prior is not None else default_prior()
    _check_rate(sample_rate, prior)
    if predictor.sample_rate != prior.config.sample_rate:
        raise SampleRateError(
            f"The predictor works at {predictor.sample_rate} Hz but the prior at {prior.config.sample_rate} Hz; "
            "wrap the predictor with resampling or choose one at the prior's rate."
        )
    estimates = predictor(wav)
    if not isinstance(estimates, torch.Tensor) or estimates.dim() != 3 or estimates.shape[0] != wav.shape[0]:
        shape = list(estimates.shape) if isinstance(estimates, torch.Tensor) else type(estimates).__name__
        raise AdapterError(
            f"The predictor returned {shape} for a mixture of shape {list(wav.shape)}; expected [B, n_src, T]."
        )
    out = _refine_batch(
        estimates.to(wav.device),
        wav,
        prior,
        steps=steps,
        kappa=kappa,
        method=method,
        seed=seed,
        device=device,
        progress=progress,
    )
    return restore(out)


def refine_estimates(
    estimates: ArrayLike,
    mixture: ArrayLike,
    *,
    prior: ScorePrior | None = None,
    sample_rate: int | None = None,
    steps: int = 15,
    kappa: float = 0.0,
    method: str = "euler",
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> ArrayLike:
    """Refine estimates computed elsewhere.

    Args:
        estimates: ``[n_src, T']`` for a mixture ``[T]`` or ``[B, n_src, T']`` for ``[B, T]``; a
            single source may also be given with the mixture's own shape.
        mixture: ``[T]`` or ``[B, T]``.
        Other arguments as in :func:`refine`.

    Returns:
        ``[n_src, T]`` or ``[B, n_src, T]``, the type of ``mixture``.
    """
    wav, restore = _as_batch(mixture)
    est, _ = _as_tensor(estimates, "estimates")
    single = mixture.ndim if isinstance(mixture, np.ndarray) else mixture.dim()
    if est.dim() == single:
        est = est.unsqueeze(-2)
    if est.dim() != single + 1:
        raise AudioError(
            f"estimates of shape {list(est.shape)} do not fit a mixture of shape {list(wav.shape) if single == 2 else [wav.shape[-1]]}."
        )
    if single == 1:
        est = est.unsqueeze(0)
    if est.shape[0] != wav.shape[0]:
        raise AudioError(f"estimates have batch size {est.shape[0]} but the mixture {wav.shape[0]}.")
    prior = prior if prior is not None else default_prior()
    _check_rate(sample_rate, prior)
    out = _refine_batch(
        est.to(wav.device, torch.float32),
        wav,
        prior,
        steps=steps,
        kappa=kappa,
        method=method,
        seed=seed,
        device=device,
        progress=progress,
    )
    return restore(out)


def _refine_batch(
    estimates: torch.Tensor,
    wav: torch.Tensor,
    prior: ScorePrior,
    *,
    steps: int,
    kappa: float,
    method: str,
    seed: int | None,
    device: str | torch.device | None,
    progress: bool,
) -> torch.Tensor:
    """``estimates [B, K, T'], wav [B, T] -> [B, K, T]`` (float32, on ``wav``'s device)."""
    batch, length = wav.shape
    n_src = estimates.shape[1]
    if not torch.isfinite(estimates).all():
        raise AdapterError("The predictor's estimate contains NaN or infinite values.")
    estimates = match_length(estimates, length)
    run_device = torch.device(device) if device is not None else wav.device
    prior = prior.to(run_device)

    scale = wav.abs().amax(dim=-1, keepdim=True).clamp_min(PEAK_FLOOR)  # [B, 1]
    mix = (wav / scale).to(run_device)
    est = (estimates / scale.unsqueeze(-1)).to(run_device)

    y = spectral.encode(mix)  # [B, 2, F, N]
    y = y.repeat_interleave(n_src, dim=0)  # one trajectory per source
    target = spectral.encode(est.reshape(batch * n_src, length))
    y, frames = spectral.pad_frames(y, prior.config.frame_multiple)
    target, _ = spectral.pad_frames(target, prior.config.frame_multiple)

    generator = None
    if seed is not None:
        generator = torch.Generator(device=run_device).manual_seed(int(seed))
    with torch.inference_mode():
        x = sample(
            prior,
            y,
            target - y,
            steps=steps,
            kappa=kappa,
            method=method,
            generator=generator,
            progress=progress,
            c=prior.config.c,
        )
        out = spectral.decode(spectral.crop_frames(x, frames), length=length)
    return out.reshape(batch, n_src, length).to(wav.device) * scale.unsqueeze(-1)


def match_length(estimates: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or zero-pad ``[..., T']`` to ``length``; more than ``n_fft`` samples apart is an error."""
    diff = estimates.shape[-1] - length
    if abs(diff) > LENGTH_TOLERANCE:
        raise LengthMismatchError(
            f"The estimate has {estimates.shape[-1]} samples but the mixture {length}; "
            f"at most {LENGTH_TOLERANCE} samples of difference are tolerated."
        )
    if diff > 0:
        return estimates[..., :length]
    if diff < 0:
        return torch.nn.functional.pad(estimates, (0, -diff))
    return estimates


def _check_rate(sample_rate: int | None, prior: ScorePrior) -> None:
    if sample_rate is not None and int(sample_rate) != prior.config.sample_rate:
        raise SampleRateError(
            f"The mixture is at {sample_rate} Hz but the prior works at {prior.config.sample_rate} Hz; resample it first "
            f"(e.g. torchaudio.functional.resample(x, {sample_rate}, {prior.config.sample_rate})) or use the CLI, which resamples."
        )


def _as_tensor(data: ArrayLike, what: str) -> tuple[torch.Tensor, bool]:
    if isinstance(data, np.ndarray):
        if not np.issubdtype(data.dtype, np.number):
            raise AudioError(f"The {what} must be numeric, got dtype {data.dtype}.")
        return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), True
    if isinstance(data, torch.Tensor):
        if data.is_complex() or not (data.is_floating_point() or data.dtype in (torch.int16, torch.int32)):
            raise AudioError(f"The {what} must be a real tensor, got {data.dtype}.")
        return data, False
    raise AudioError(f"The {what} must be a torch tensor or a numpy array, got {type(data).__name__}.")


def _as_batch(mixture: ArrayLike):
    """``[T] | [B, T]`` -> (``[B, T]`` float32 tensor, function restoring type/shape of outputs)."""
    wav, is_numpy = _as_tensor(mixture, "mixture")
    if wav.dim() not in (1, 2):
        raise AudioError(f"The mixture must have shape [T] or [B, T], got {list(wav.shape)}.")
    single = wav.dim() == 1
    dtype, device = wav.dtype, wav.device
    wav = wav.reshape(-1, wav.shape[-1]).to(torch.float32)
    if wav.shape[-1] <= spectral.N_FFT // 2:
        raise AudioError(f"The mixture is too short: {wav.shape[-1]} samples, need more than {spectral.N_FFT // 2}.")
    if not torch.isfinite(wav).all():
        raise AudioError("The mixture contains NaN or infinite samples.")

    def restore(out: torch.Tensor) -> ArrayLike:
        out = out[0] if single else out
        if is_numpy:
            return out.detach().cpu().numpy().astype(np.float32, copy=False)
        return out.to(device=device, dtype=dtype if dtype.is_floating_point else torch.float32)

    return wav, restore
