"""A reference-free speech quality score read from the clean-speech prior.

The estimator
-------------
The prior was trained on clean speech ``s`` only, at the noise levels ``sigma(t) = a + gamma(t)``
(``a = 0.1``, ``gamma(t) = c sin(pi t)^2``, so ``sigma`` in ``[0.1, 0.6]``), to predict the noise
``z`` from ``s + sigma(t) z``, with a learned log-variance ``logvar(t)`` of its own residual::

    loss(s) = E_t E_z [ |D(s + sigma(t) z, t) - z|^2 / exp(logvar(t)) + logvar(t) ]

Each term is, up to a constant, twice the negative log-likelihood of the residual
``r = D - z`` under ``N(0, exp(logvar(t)))``, the residual model the prior learned on clean
speech. The prior fits that model only at these noise levels. A textbook probability-flow
likelihood that runs to a pure Gaussian therefore does not exist here, and we do not pretend it
does. We use the variational reading instead: for a Gaussian corruption the expected denoising
error, weighted over noise levels, bounds the negative log-likelihood of the data (the bound of
denoising score matching). The learned ``logvar`` is the weighting the prior itself found best.
An utterance far from the clean-speech distribution leaves residuals the prior cannot explain:
noise already present in ``x`` is mistaken for part of ``z``, or structure the prior expects is
missing. Its loss rises.

The score is ``-loss``: higher means closer to clean speech. On clean validation speech it is
about the negative of the prior's validation loss (about +0.7 for the embedded prior).

The expectation is estimated with fixed quadrature and fixed probes, so the score is
deterministic:
- the times are ``levels`` midpoints ``t_j = (j + 1/2) / levels`` of ``[0, 1]`` (both halves,
  because the network is conditioned on ``t``, not on ``sigma``);
- ``probes`` noise draws ``z`` come from a generator seeded by ``seed`` (and the window index).

Per frame
---------
The residual is averaged over channels and frequency bins, which gives one value per STFT frame
(hop 128 at 16 kHz, 8 ms). The file's score is the mean over its frames, so it is comparable
across lengths. The input is peak-normalised like refinement's input. Long inputs are scored in
consecutive windows of ``chunk_seconds``, so memory stays bounded.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checks import check_device, check_seed
from ..errors import AudioError, OptionError
from ..method import spectral
from ..method.interpolant import noise_level
from ..method.prior import ScorePrior

DEFAULT_LEVELS = 8
DEFAULT_PROBES = 1


@dataclasses.dataclass(frozen=True)
class QualityScore:
    """The prior's quality score of one signal.

    Attributes:
        score: mean of ``frames``; higher is closer to clean speech.
        frames: ``[N]`` per-frame score (frame ``n`` is centred at sample ``n * hop``).
        frame_seconds: the frame hop in seconds.
        levels: ``[L]`` mean score at each quadrature time ``t_j`` (diagnostics).
    """

    score: float
    frames: torch.Tensor
    frame_seconds: float
    levels: torch.Tensor


def quality(
    audio: torch.Tensor | np.ndarray,
    *,
    prior: ScorePrior | None = None,
    sample_rate: int | None = None,
    seed: int = 0,
    levels: int = DEFAULT_LEVELS,
    probes: int = DEFAULT_PROBES,
    chunk_seconds: float = 10.0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> QualityScore | list[QualityScore]:
    """Score how close ``audio`` is to clean speech, without a reference (see the module docstring).

    Args:
        audio: ``[T]`` or ``[B, T]`` at ``sample_rate`` (torch or numpy).
        prior: the prior; ``None`` uses the embedded default.
        sample_rate: rate of ``audio`` in Hz (``None``: the prior's); other rates are resampled to the
            prior's (soxr VHQ), where the score is computed.
        seed: seeds the fixed probes (same seed, same score).
        levels: number of quadrature times in ``[0, 1]``.
        probes: noise draws per time.
        chunk_seconds: inputs are scored in consecutive windows of this length.
        device: where the prior runs (default: the audio's device).
        progress: show a progress bar over the network calls (windows x levels x probes).

    Returns:
        A :class:`QualityScore` for ``[T]``, a list of them for ``[B, T]``.
    """
    from ..method.refine import as_batch, default_prior, mixture_rate  # the tensor-input checks refine uses
    from ..prediction.bands import resample

    if levels < 1 or probes < 1 or not chunk_seconds > 0:
        raise OptionError("levels and probes must be at least 1 and chunk_seconds positive.")
    check_seed(seed)
    check_device(device)
    wav, _ = as_batch(audio)
    prior = prior if prior is not None else default_prior()
    wav = resample(wav, mixture_rate(sample_rate, prior), prior.config.sample_rate)  # scored at the prior's rate
    run_device = torch.device(device) if device is not None else wav.device
    prior = prior.to(run_device)
    wav = wav / wav.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8)
    window = max(round(chunk_seconds * prior.config.sample_rate) // spectral.HOP, 1) * spectral.HOP
    length = wav.shape[-1]
    starts = list(range(0, length, window))
    if len(starts) > 1 and length - starts[-1] <= spectral.N_FFT:  # a short tail joins the window before
        starts.pop()
    bar = tqdm(total=len(wav) * len(starts) * levels * probes, desc="quality", unit="call", disable=not progress)
    results = []
    for item in wav:
        frames, per_level = [], []
        for index, start in enumerate(starts):
            stop = starts[index + 1] if index + 1 < len(starts) else length
            f, lv = _score_window(item[start:stop], prior, seed, index, levels, probes, run_device, bar)
            # a window's last frame is the next window's first (windows are whole hops long)
            frames.append(f if stop == length else f[:-1])
            per_level.append(lv)
        curve = torch.cat(frames).cpu()
        results.append(
            QualityScore(
                score=float(curve.mean()),
                frames=curve,
                frame_seconds=spectral.HOP / prior.config.sample_rate,
                levels=torch.stack(per_level).mean(0).cpu(),
            )
        )
    bar.close()
    if isinstance(audio, np.ndarray | torch.Tensor) and audio.ndim == 1:
        return results[0]
    return results


def _score_window(
    wav: torch.Tensor,
    prior: ScorePrior,
    seed: int,
    index: int,
    levels: int,
    probes: int,
    device: torch.device,
    bar: tqdm,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``wav [T] -> (per-frame score [N], per-level score [L])`` for one window; ``bar`` counts the calls."""
    if wav.shape[-1] <= spectral.N_FFT // 2:
        raise AudioError(
            f"The audio is too short to score: {wav.shape[-1]} samples, need more than {spectral.N_FFT // 2}."
        )
    spec = spectral.encode(wav[None].to(device))  # [1, 2, F, N]
    spec, frames = spectral.pad_frames(spec, prior.config.frame_multiple)
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0]))
    times = (torch.arange(levels, dtype=torch.float32) + 0.5) / levels
    per_frame = torch.zeros(frames, device=device)
    per_level = torch.zeros(levels)
    with torch.inference_mode():
        for j, t in enumerate(times):
            sigma = float(noise_level(t, prior.config.a, prior.config.c))
            for _ in range(probes):
                z = torch.randn(spec.shape, generator=generator).to(device)
                z_hat, logvar = prior(spec + sigma * z, t.reshape(1).to(device), return_logvar=True)
                residual = (z_hat - z).square().mean(dim=(1, 2))[0, :frames]  # [N]
                logvar = logvar.reshape(()) if logvar is not None else torch.zeros((), device=device)
                loss = residual / logvar.exp() + logvar
                per_frame += -loss / (levels * probes)
                per_level[j] += float(-loss.mean()) / probes
                bar.update(1)
    return per_frame, per_level
