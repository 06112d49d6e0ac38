"""``refine`` and ``refine_estimates``: the tensor-level entry points (DESIGN §1 pipeline).

Shape rule (the only one): the output is the mixture's shape with a source axis inserted before
time, and that axis is never squeezed — ``[T] -> [n_src, T]``, ``[B, T] -> [B, n_src, T]`` (so an
enhancer gives ``[1, T]`` / ``[B, 1, T]``). Torch tensors come back as torch tensors on the
mixture's device and dtype; numpy arrays come back as float32 numpy arrays.

Pipeline: peak-normalise the mixture (one factor per item, over its whole length; the same factor
scales the estimates; silence is guarded), cut inputs longer than ``chunk_seconds`` into
overlapping windows (:mod:`sips.chunks`), run the predictor on each window and keep separated
sources in a consistent order from window to window, encode, start at the encoded mixture ``y``
and drift toward each estimate ``E(x_hat_k)`` with the prior's correction (every source of every
item of every window in a batch is one trajectory), decode, cross-fade the windows, undo the
scaling. Memory therefore depends on the window and ``chunk_batch``, not on the input's length.

Determinism: with a ``seed`` the injected noise (``kappa > 0``) is drawn per window from a
generator seeded by ``(seed, window index)``, so results do not depend on ``chunk_batch``; on CPU
the same seed gives bit-identical outputs. On CUDA, kernels may pick different algorithms from run
to run and for different batch sizes, so results agree only to float precision there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import defaults
from ..arrays import ArrayLike
from ..arrays import as_tensor as _as_tensor
from ..checks import check_device, check_seed
from ..errors import AdapterError, AudioError, LengthMismatchError, OptionError, SampleRateError, named, spell
from ..prediction import bands
from ..prediction.predictors import Predictor, as_predictor
from . import chunks, scaling, spectral
from .nets.edm2 import frozen_weights
from .prior import ScorePrior, load_prior
from .sampler import check_settings, resolve_method, sample

LENGTH_TOLERANCE = spectral.N_FFT
PEAK_FLOOR = 1e-8
DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_OVERLAP_SECONDS = 1.0


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
    steps: int = defaults.STEPS,
    kappa: float = defaults.KAPPA,
    method: str = defaults.METHOD,
    strength: float = defaults.STRENGTH,
    rescale: str = defaults.RESCALE,
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    chunk_batch: int = 1,
    dtype: torch.dtype | None = None,
    compile: bool | str = False,
    ensemble: int = defaults.ENSEMBLE,
    ensemble_reduce: str = "mean",
    return_uncertainty: bool = False,
    postprocess: bool = False,
) -> ArrayLike | tuple[ArrayLike, ArrayLike]:
    """Run ``predictor`` on ``mixture`` and refine its estimate(s) with the prior.

    Args:
        predictor: a :class:`~sips.predictors.Predictor` (e.g. ``sips.load_predictor("wiener")``),
            or a plain callable / ``nn.Module`` ``[B, T] -> [B, T] | [B, n_src, T]`` at 16 kHz.
            It receives the mixture at its own ``sample_rate`` (:mod:`sips.bands`).
        mixture: ``[T]`` or ``[B, T]`` torch tensor or numpy array.
        prior: the prior; ``None`` uses the embedded default.
        sample_rate: rate of ``mixture`` in Hz. Any rate works: the mixture is resampled once to
            the predictor's rate and to the prior's; the output is at ``sample_rate``, and above
            the prior's rate its upper band is the predictor's estimate (:func:`sips.bands.join`).
            ``None`` means the prior's rate (16 kHz) and is allowed only where the predictor works
            at that rate too; with a predictor at another rate (``deepfilternet``, ``rnnoise``:
            48 kHz) it raises :class:`~sips.errors.SampleRateError` rather than guess which of
            the two rates the audio has. sips cannot tell a rate from the samples: pass it for
            anything that is not 16 kHz.
        steps: number of sampler steps N.
        kappa: stochasticity (0: the deterministic ODE of the published system).
        method: ``"auto"`` (Heun for ``kappa = 0``, Euler–Maruyama for ``kappa > 0``),
            ``"euler"`` (Euler–Maruyama, the published sampler) or ``"heun"`` (second-order, ODE only).
        strength: how strongly the prior corrects the predictor's drift, a number >= 0: the
            prior's term (and the injected noise) of the sampler is scaled by it
            (:func:`sips.sampler.sample`); 1 is the published method, 0 returns the (rescaled)
            estimate exactly, without calling the prior.
        rescale: how the estimates are brought to the mixture's scale and sign before the drift
            is formed (:mod:`sips.scaling`): ``"gain"`` (least-squares gains per source, jointly
            fitting the mixture; a negative gain flips the sign), ``"none"``, or ``"auto"``
            (``"gain"`` for separators, ``sips.scaling.AUTO_ENHANCEMENT`` for enhancers).
        seed: seeds the injected noise when ``kappa > 0`` (``None``: torch's global RNG).
        device: where the prior runs (default: the mixture's device).
        progress: show a progress bar over windows x sampler steps (tqdm, to stderr).
        chunk_seconds: inputs longer than this are processed in overlapping windows of this
            length, by the predictor and by the sampler (``None``: never chunk).
        overlap_seconds: overlap of neighbouring windows, cross-faded (and used to keep the
            order of separated sources).
        chunk_batch: windows processed together (on CUDA one batched call; on the CPU the
            networks still run one window at a time, see the module's note on determinism).
        dtype: ``torch.bfloat16`` (CPU or CUDA) or ``torch.float16`` (CUDA) runs the prior
            network under autocast; the sampler's state stays float32. ``None``: float32.
        compile: ``True`` runs the prior network through ``torch.compile`` (inductor; the first
            call compiles, later calls with the same window size reuse it), or a backend name.
        ensemble: number of stochastic trajectories per source (``kappa > 0``; with ``kappa = 0``
            they are identical). Member 0 draws the same noise as a single run with this seed.
        ensemble_reduce: ``"mean"`` or ``"median"``: how the members' final states are combined,
            in the encoded (compressed spectrogram) domain, before decoding.
        return_uncertainty: also return the members' disagreement per STFT frame: the standard
            deviation across members of the encoded state, averaged over channels and frequency.
        postprocess: run the predictor once more, on the refined signal, and return its output
            (the published pipeline's ``--postprocess``): the prior repairs the predictor's
            artefacts, the second pass removes what noise the refinement left or brought back.
            Enhancement only (:class:`~sips.errors.OptionError` for a separator); long inputs get
            it window by window, before the cross-fade. It costs a second predictor call.

    Returns:
        ``[n_src, T]`` or ``[B, n_src, T]``, same type as ``mixture``; with ``return_uncertainty``
        also the disagreement ``[n_src, N]`` or ``[B, n_src, N]`` (``N = 1 + T16 // 128`` frames
        of the signal at the prior's rate, ``T16`` samples long; ``T16 = T`` at 16 kHz).

    Raises:
        AudioError: a mixture that is not ``[T]`` / ``[B, T]`` (soundfile's ``[T, channels]``
            included), an unsigned integer array, too short, NaN or Inf.
        AdapterError: the predictor returns another shape, another number of sources than its
            ``n_src``, or NaN. It gets a copy of each window, under ``torch.inference_mode()``.
        OptionError, SampleRateError, LengthMismatchError: bad settings, a ``sample_rate`` that is
            not a positive whole number of Hz (or ``None`` with a predictor at another rate than
            the prior's), an estimate more than ``n_fft`` samples longer or shorter than the mixture.
    """
    options = _options(locals())
    predictor = as_predictor(predictor)
    wav, restore = as_batch(mixture)
    prior = prior if prior is not None else default_prior()
    rate, low = mixture_rate(sample_rate, prior, predictor), prior.config.sample_rate
    if predictor.sample_rate != low:
        check_options(options, rate)
        out, spread = refine_across_rates(wav, rate, prior, options, predictor=predictor)
        return _result(out, spread, restore, options.uncertainty)
    mix = bands.resample(wav, rate, low)  # the mixture itself at the prior's rate
    collect = _stream_in_memory(mix, prior, options, predictor=predictor)
    if rate == low:
        return collect.result(restore, options.uncertainty)
    spread = torch.cat(collect.spread, dim=-1) if collect.spread else None
    out = bands.resample(torch.cat(collect.blocks, dim=-1), low, rate, length=wav.shape[-1])
    return _result(out, spread, restore, options.uncertainty)


def refine_estimates(
    estimates: ArrayLike,
    mixture: ArrayLike,
    *,
    prior: ScorePrior | None = None,
    sample_rate: int | None = None,
    steps: int = defaults.STEPS,
    kappa: float = defaults.KAPPA,
    method: str = defaults.METHOD,
    strength: float = defaults.STRENGTH,
    rescale: str = defaults.RESCALE,
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    chunk_batch: int = 1,
    dtype: torch.dtype | None = None,
    compile: bool | str = False,
    ensemble: int = defaults.ENSEMBLE,
    ensemble_reduce: str = "mean",
    return_uncertainty: bool = False,
) -> ArrayLike | tuple[ArrayLike, ArrayLike]:
    """Refine estimates computed elsewhere.

    Args:
        estimates: ``[n_src, T']`` for a mixture ``[T]`` or ``[B, n_src, T']`` for ``[B, T]``; a
            single source may also be given with the mixture's own shape.
        mixture: ``[T]`` or ``[B, T]``.
        sample_rate: rate of both in Hz (``None``: the prior's). Above the prior's rate the
            output's upper band is the estimates' own (:func:`sips.bands.join`).
        Other arguments as in :func:`refine`.

    Returns:
        ``[n_src, T]`` or ``[B, n_src, T]``, the type of ``mixture`` (and the disagreement with
        ``return_uncertainty``, as in :func:`refine`).
    """
    options = _options(locals())
    wav, restore = as_batch(mixture)
    est, _ = _as_tensor(estimates, "estimates")
    single = mixture.ndim if isinstance(mixture, np.ndarray) else mixture.dim()
    if est.dim() == single:
        est = est.unsqueeze(-2)
    if est.dim() != single + 1:
        raise AudioError(
            f"estimates of shape {list(est.shape)} do not fit a mixture of shape {list(wav.shape) if single == 2 else [wav.shape[-1]]}."
        )
    check_layout(est, "estimates", "[n_src, T] or [B, n_src, T]")
    if single == 1:
        est = est.unsqueeze(0)
    if est.shape[0] != wav.shape[0]:
        raise AudioError(f"estimates have batch size {est.shape[0]} but the mixture {wav.shape[0]}.")
    prior = prior if prior is not None else default_prior()
    rate = mixture_rate(sample_rate, prior)
    est = match_length(est.to(wav.device, torch.float32), wav.shape[-1])
    if not torch.isfinite(est).all():
        raise AudioError("The estimates contain NaN or infinite values.")
    if rate != prior.config.sample_rate:
        check_options(options, rate)
        out, spread = refine_across_rates(wav, rate, prior, options, estimates=est)
        return _result(out, spread, restore, options.uncertainty)
    return _stream_in_memory(wav, prior, options, estimates=est).result(restore, options.uncertainty)


@dataclasses.dataclass(frozen=True)
class RefineOptions:
    """The sampler and windowing settings of one refinement (see :func:`refine`)."""

    steps: int = defaults.STEPS
    kappa: float = defaults.KAPPA
    method: str = defaults.METHOD
    strength: float = defaults.STRENGTH
    rescale: str = defaults.RESCALE
    seed: int | None = None
    device: str | torch.device | None = None
    progress: bool = False
    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS
    chunk_batch: int = 1
    dtype: torch.dtype | None = None
    compile: bool | str = False
    ensemble: int = defaults.ENSEMBLE
    ensemble_reduce: str = "mean"
    uncertainty: bool = False
    postprocess: bool = False


def _options(arguments: dict[str, Any]) -> RefineOptions:
    """The :class:`RefineOptions` among the keyword arguments of :func:`refine` /
    :func:`refine_estimates` (``return_uncertainty`` is the ``uncertainty`` field)."""
    names = {f.name for f in dataclasses.fields(RefineOptions)}
    chosen = {k: v for k, v in arguments.items() if k in names}
    return RefineOptions(**chosen, uncertainty=arguments["return_uncertainty"])


class _Collector:
    """Gathers the blocks :func:`refine_stream` writes (and the disagreement blocks)."""

    def __init__(self) -> None:
        self.blocks: list[torch.Tensor] = []
        self.spread: list[torch.Tensor] = []

    def __call__(self, block: torch.Tensor, disagreement: torch.Tensor | None = None) -> None:
        self.blocks.append(block)
        if disagreement is not None:
            self.spread.append(disagreement)

    def result(self, restore, uncertainty: bool):
        spread = torch.cat(self.spread, dim=-1) if self.spread else None
        return _result(torch.cat(self.blocks, dim=-1), spread, restore, uncertainty)


def _result(out: torch.Tensor, per_sample: torch.Tensor | None, restore, uncertainty: bool):
    """The refined ``out [B, K, T]`` (and, with ``uncertainty``, the disagreement per sample
    ``[B, K, T']`` read at the STFT frames) in the caller's type and shape."""
    out = restore(out)
    if not uncertainty:
        return out
    length = per_sample.shape[-1]
    at_frames = (torch.arange(1 + length // spectral.HOP) * spectral.HOP).clamp(max=length - 1)
    return out, restore(per_sample[..., at_frames.to(per_sample.device)])


def _stream_in_memory(
    mix: torch.Tensor,
    prior: ScorePrior | None,
    options: RefineOptions,
    *,
    predictor: Predictor | None = None,
    estimates: torch.Tensor | None = None,
    rate: int | None = None,
) -> _Collector:
    """:func:`refine_stream` over a mixture ``[B, T]`` (and estimates ``[B, K, T]``) held in memory."""
    collect = _Collector()
    refine_stream(
        lambda a, b: mix[:, a:b],
        mix.shape[-1],
        peak_scale(mix),
        collect,
        predictor=predictor,
        read_estimates=None if estimates is None else (lambda a, b: estimates[..., a:b]),
        prior=prior,
        options=options,
        rate=rate,
    )
    return collect


def peak_scale(wav: torch.Tensor) -> torch.Tensor:
    """The normalisation factor of each item, ``[B, T] -> [B, 1]``: its peak (guarded for silence)."""
    return wav.abs().amax(dim=-1, keepdim=True).clamp_min(PEAK_FLOOR)


def check_options(options: RefineOptions, rate: int) -> None:
    """Raise :class:`OptionError` with one sentence if ``options`` cannot run at ``rate`` Hz."""
    if options.chunk_seconds is not None:
        window, overlap = _window_samples(options, rate)
        if window <= spectral.N_FFT or overlap < 0 or overlap >= window:
            raise OptionError(
                f"{spell('chunk_seconds', options.chunk_seconds)} must exceed {spectral.N_FFT / rate:.3f} s and "
                f"{spell('overlap_seconds', options.overlap_seconds)} must lie in [0, the window length)."
            )
    if not isinstance(options.chunk_batch, int) or options.chunk_batch < 1:
        raise OptionError(f"chunk_batch must be a positive integer, got {options.chunk_batch!r}.")
    if not isinstance(options.ensemble, int) or options.ensemble < 1:
        raise OptionError(f"ensemble must be a positive integer, got {options.ensemble!r}.")
    if options.ensemble_reduce not in ("mean", "median"):
        raise OptionError(f"ensemble_reduce must be 'mean' or 'median', not {options.ensemble_reduce!r}.")
    check_settings(options.steps, options.kappa, options.method, allow_auto=True, strength=options.strength)
    scaling.check(options.rescale)
    if not isinstance(options.postprocess, bool):
        raise OptionError(f"postprocess must be True or False, got {options.postprocess!r}.")
    check_seed(options.seed)
    device = check_device(options.device)  # without a device the mixture's decides, at run time
    _check_dtype(options.dtype, device.type if device is not None else None)


def _window_samples(options: RefineOptions, rate: int) -> tuple[int, int]:
    """The window and its overlap in samples at ``rate`` Hz."""
    return round(options.chunk_seconds * rate), round(options.overlap_seconds * rate)


def _window_plan(length: int, rate: int, options: RefineOptions) -> tuple[list[int], int, int]:
    """(window starts, window size, overlap) in samples for an input of ``length`` samples."""
    check_options(options, rate)
    if options.chunk_seconds is None:
        return [0], length, 0
    window, overlap = _window_samples(options, rate)
    starts = chunks.window_starts(length, window, overlap)
    return starts, min(window, length), overlap


def _window_seed(seed: int | None, index: int, count: int) -> int | None:
    """The seed of window ``index``: ``seed`` itself for an unchunked input, else one derived
    from ``(seed, index)``."""
    if seed is None or count == 1:
        return seed
    return int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0])


def _member_seed(seed: int | None, index: int, count: int, member: int) -> int | None:
    """The seed of ensemble member ``member`` in window ``index``; member 0 is a single run's."""
    if member == 0 or seed is None:
        return _window_seed(seed, index, count)
    return int(np.random.SeedSequence([int(seed), index, member]).generate_state(1)[0])


def check_postprocess(predictor: Predictor | None, n_src: int | None = None) -> None:
    """Raise :class:`OptionError` unless ``predictor`` can post-process: an enhancer (one source).

    ``n_src`` is the number of sources the predictor actually returned, where known."""
    if predictor is None:
        raise OptionError(
            f"{named('postprocess')} runs the predictor on the refined signal, so it needs a predictor, not estimates."
        )
    sources = predictor.n_src if n_src is None else n_src
    if sources != 1:
        raise OptionError(
            f"{named('postprocess')} applies to enhancement predictors only; this one separates {sources} sources."
        )


def refine_stream(
    read_mixture: Callable[[int, int], torch.Tensor],
    length: int,
    scale: torch.Tensor,
    write: Callable[[torch.Tensor], None],
    *,
    predictor: Predictor | None = None,
    read_estimates: Callable[[int, int], torch.Tensor] | None = None,
    prior: ScorePrior | None,
    options: RefineOptions,
    rate: int | None = None,
) -> int:
    """The windowed refinement over a signal that need not be in memory.

    With ``prior=None`` it is the first stage of a refinement across rates
    (:func:`refine_across_rates`): the estimates of each window (the predictor's, or
    ``read_estimates``'), source-ordered and rescaled (``options.rescale``), cross-faded like the
    refined signal would be, at ``rate`` Hz (the predictor's).

    Args:
        read_mixture: ``(start, stop) -> [B, stop - start]`` float32 samples at the prior's rate
            (at ``rate`` without a prior).
        length: the signal length ``T`` in samples.
        scale: ``[B, 1]`` normalisation factors (:func:`peak_scale` of the whole signal).
        write: receives the refined signal as consecutive blocks ``[B, K, n]`` (float32, on the
            mixture's device) that together cover ``[0, T)``; at most one window is held back.
            With ``options.uncertainty`` it is called as ``write(block, disagreement)``, the
            members' disagreement per sample ``[B, K, n]`` (constant over each frame's hop).
        predictor: runs on each window of the mixture; its separated sources are re-ordered to
            continue the previous window's. With ``options.postprocess`` it runs again on each
            refined window, before the cross-fade. Or:
        read_estimates: ``(start, stop) -> [B, K, stop - start]`` estimates computed elsewhere.
        prior, options: the prior (``None``: no refinement, see above) and the settings.
        rate: the signal's rate in Hz when ``prior`` is ``None`` (else the prior's).

    Returns:
        The number of sources ``K``.
    """
    if (predictor is None) == (read_estimates is None):
        raise TypeError("pass exactly one of predictor and read_estimates")
    if options.postprocess and prior is not None:
        check_postprocess(predictor)
    rate = prior.config.sample_rate if prior is not None else rate
    if predictor is not None and predictor.sample_rate != rate:
        raise SampleRateError(
            f"The predictor works at {predictor.sample_rate} Hz but this stage at {rate} Hz; "
            "refine() and refine_file() resample for it."
        )
    starts, size, overlap = _window_plan(length, rate, options)
    run_device = torch.device(options.device) if options.device is not None else scale.device
    if prior is not None:
        prior = prior.to(run_device)
    pending: torch.Tensor | None = None  # weighted sum over [done, end of the last window)
    weights = torch.zeros(0)
    done = 0  # samples already written
    previous: tuple[torch.Tensor, int] | None = None  # the last window's ordered estimates and start
    # one bar over windows x steps: the sampler's callback advances it by the windows of a group
    bar = tqdm(
        total=len(starts) * options.steps, desc="refine", unit="step", disable=not options.progress or prior is None
    )
    per = 2 if options.uncertainty else 1  # rows of the pending buffer per source
    for group in chunks.batches(starts, options.chunk_batch):
        group_starts = [s for _, s in group]
        segments = torch.stack([read_mixture(s, s + size) for s in group_starts])  # [G, B, W]
        if read_estimates is not None:
            est = torch.stack([read_estimates(s, s + size) for s in group_starts])  # [G, B, K, W]
        else:
            est = _predict(predictor, segments)
            if options.postprocess:
                check_postprocess(predictor, est.shape[2])
            if est.shape[2] > 1:
                est, previous = _order_sources(est, group_starts, size, previous)
        est = scaling.rescale(est, segments, options.rescale)
        if prior is None or options.strength == 0:  # the estimates themselves (stage one / no prior)
            refined = est
            spread = torch.zeros_like(est) if options.uncertainty and prior is not None else None
            bar.update(len(group) * options.steps)
        else:
            seeds = [[_member_seed(options.seed, j, len(starts), m) for j, _ in group] for m in range(options.ensemble)]
            refined, spread = _sample_windows(
                segments / scale,
                est / scale.unsqueeze(-1),
                prior,
                options,
                seeds,
                run_device,
                on_step=lambda _, n=len(group): bar.update(n),
            )
            refined = refined.to(scale.device) * scale.unsqueeze(-1)  # [G, B, K, W]
        if options.postprocess and prior is not None:  # K = 1: the predictor on the refined window
            refined = _predict(predictor, refined[:, :, 0])
        if spread is not None:  # cross-faded like the audio: stacked after the sources
            refined = torch.cat([refined, spread.to(scale.device)], dim=2)
        for (j, s), window in zip(group, refined, strict=True):
            end = s + size
            if pending is None:
                pending = torch.zeros(*window.shape[:2], 0, device=scale.device)
            if window.shape[1] != pending.shape[1]:
                raise AdapterError(
                    f"The predictor returned {window.shape[1] // per} sources for one window and "
                    f"{pending.shape[1] // per} for another."
                )
            grow = end - done - pending.shape[-1]
            pending = torch.nn.functional.pad(pending, (0, grow))
            weights = torch.nn.functional.pad(weights, (0, grow))
            w = chunks.fade_weights(size, *chunks.shared(starts, j, size))
            pending[..., s - done : end - done] += window * w.to(scale.device)
            weights[s - done : end - done] += w
            final = (starts[j + 1] if j + 1 < len(starts) else length) - done
            block = (
                pending[..., :final] if len(starts) == 1 else pending[..., :final] / weights[:final].to(scale.device)
            )
            if options.uncertainty:
                half = block.shape[1] // 2
                write(block[:, :half], block[:, half:])
            else:
                write(block)
            pending, weights, done = pending[..., final:], weights[final:], done + final
    bar.close()
    if pending is None:
        return 0
    return pending.shape[1] // 2 if options.uncertainty else pending.shape[1]


def _predict(predictor: Predictor, segments: torch.Tensor) -> torch.Tensor:
    """The predictor's estimates of mixture windows ``segments [G, B, W] -> [G, B, K, W]``."""
    groups, batch, size = segments.shape
    flat = segments.reshape(-1, size)
    # on the CPU one window at a time, so that results do not depend on chunk_batch
    inputs = [flat[i : i + 1] for i in range(len(flat))] if flat.device.type == "cpu" else [flat]
    parts = []
    for inp in inputs:
        out = _call_predictor(predictor, inp)
        if parts and out.shape[1] != parts[0].shape[1]:
            raise AdapterError(
                f"The predictor returned {out.shape[1]} sources for one window and {parts[0].shape[1]} for another."
            )
        parts.append(match_length(out.to(flat.device, torch.float32), size))
    est = torch.cat(parts)
    if not torch.isfinite(est).all():
        raise AdapterError("The predictor's estimate contains NaN or infinite values.")
    return est.reshape(groups, batch, -1, size)


def _call_predictor(predictor: Predictor, mixture: torch.Tensor) -> torch.Tensor:
    """``predictor`` on a copy of ``mixture [B, W]`` under ``torch.inference_mode()``: an adapter
    that works in place cannot change the mixture sips uses, and an estimate that still requires
    grad is detached. Returns ``[B, K, W']``, a normal (not an inference) tensor.

    Raises:
        AdapterError: the output is not ``[B, K, W']`` or ``K`` differs from ``predictor.n_src``.
    """
    with torch.inference_mode():
        out = predictor(mixture.clone())
    if not isinstance(out, torch.Tensor) or out.dim() != 3 or out.shape[0] != mixture.shape[0]:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise AdapterError(
            f"The predictor returned {shape} for a mixture of shape {list(mixture.shape)}; expected [B, n_src, T]."
        )
    if out.shape[1] != predictor.n_src:
        raise AdapterError(
            f"The predictor declares n_src={predictor.n_src} but returned {out.shape[1]} source(s); "
            "its n_src must say how many sources it returns."
        )
    return out.detach().clone()


def _order_sources(
    est: torch.Tensor, starts: list[int], size: int, previous: tuple[torch.Tensor, int] | None
) -> tuple[torch.Tensor, tuple[torch.Tensor, int]]:
    """Permute each window's sources ``est [G, B, K, W]`` to continue the previous window's.

    ``previous`` is ``(ordered estimates [B, K, W], start)`` of the window before the group."""
    ordered = []
    for g, start in enumerate(starts):
        current = est[g]
        if previous is not None:
            prev, prev_start = previous
            shared = prev_start + size - start  # samples both windows cover
            perm = chunks.best_permutation(prev[..., size - shared :], current[..., :shared])
            current = torch.gather(current, 1, perm.to(current.device)[..., None].expand_as(current))
        ordered.append(current)
        previous = (current, start)
    return torch.stack(ordered), previous


def _sample_windows(
    mix: torch.Tensor,
    est: torch.Tensor,
    prior: ScorePrior,
    options: RefineOptions,
    seeds: list[list[int | None]],
    run_device: torch.device,
    on_step: Callable[[dict], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Normalised windows ``mix [G, B, W]``, ``est [G, B, K, W]`` -> refined ``[G, B, K, W]``, and
    with ``options.uncertainty`` the members' disagreement per sample ``[G, B, K, W]``.

    ``seeds[m][g]`` seeds ensemble member ``m`` of window ``g``; ``on_step`` is the sampler's callback.
    The refined window is ``decode(x) + (x_hat - decode(E(x_hat)))``: what the encoder drops from the
    estimate (its DC bin, which the prior never models) is kept, so a final state equal to the
    target ``E(x_hat)`` gives back the estimate itself."""
    groups, batch, n_src, size = est.shape
    members = options.ensemble
    trajectories = groups * batch * n_src
    y = spectral.encode(mix.reshape(groups * batch, size).to(run_device))
    y = y.repeat_interleave(n_src, dim=0)  # one trajectory per source, window-major
    flat = est.reshape(trajectories, size).to(run_device)
    target = spectral.encode(flat)
    # what the encoder cannot represent (the DC bin, which it drops) stays the estimate's
    unmodelled = flat - spectral.decode(target, length=size)
    y, frames = spectral.pad_frames(y, prior.config.frame_multiple)
    target, _ = spectral.pad_frames(target, prior.config.frame_multiple)
    if members > 1:  # member-major copies of every trajectory
        y, target = y.repeat(members, 1, 1, 1), target.repeat(members, 1, 1, 1)
    noise = _window_noise(seeds, batch * n_src, run_device) if options.kappa > 0 else None
    network = _compiled(prior, options.compile) if options.compile else prior
    # a compiled graph fuses the weight normalisation itself; eager calls share one per refinement
    weights = contextlib.nullcontext() if options.compile else frozen_weights(prior)
    with torch.inference_mode(), weights, _autocast(options.dtype, run_device):
        x = sample(
            _one_at_a_time(network) if run_device.type == "cpu" else network,
            y,
            target - y,
            steps=options.steps,
            kappa=options.kappa,
            method=resolve_method(options.method, options.kappa),
            strength=options.strength,
            noise_sampler=noise,
            callback=on_step,
            c=prior.config.c,
        )
        x = spectral.crop_frames(x.float(), frames).reshape(members, trajectories, *x.shape[1:-1], frames)
        spread = x.std(0, unbiased=False).mean(dim=(1, 2)) if options.uncertainty else None  # [N, frames]
        combined = x[0] if members == 1 else x.mean(0) if options.ensemble_reduce == "mean" else x.median(0).values
        out = spectral.decode(combined, length=size) + unmodelled
    if spread is not None:
        nearest = ((torch.arange(size, device=spread.device) + spectral.HOP // 2) // spectral.HOP).clamp(max=frames - 1)
        spread = spread[:, nearest].reshape(groups, batch, n_src, size)
    return out.reshape(groups, batch, n_src, size), spread


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(prior: ScorePrior, backend: bool | str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``torch.compile(prior)``, made once per prior and backend."""
    backend = "inductor" if backend is True else str(backend)
    per_prior = _COMPILED.setdefault(prior, {})
    if backend not in per_prior:
        per_prior[backend] = torch.compile(prior, backend=backend, dynamic=False)
    return per_prior[backend]


def _one_at_a_time(network: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    """The denoiser applied to one trajectory at a time.

    CPU convolution and matrix kernels choose their blocking by batch size, so a batched call
    differs from single calls in the last bits; one trajectory per call makes every output
    independent of how trajectories (sources, channels, windows) are batched, at little cost on
    a CPU, where a single long trajectory already fills the cores."""

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.cat([network(x[i : i + 1], t[i : i + 1]) for i in range(x.shape[0])])

    return denoise


def _window_noise(seeds: list[list[int | None]], per_window: int, device: torch.device):
    """A noise sampler drawing each (member, window)'s noise from its own generator (or torch's
    global RNG when unseeded), so the noise does not depend on how windows are batched. Seeded
    noise is drawn on the CPU and moved, so CUDA and CPU runs with one seed inject the same noise."""
    if seeds[0][0] is None:
        return None
    generators = [torch.Generator().manual_seed(s) for member in seeds for s in member]

    def draw(i: int, like: torch.Tensor) -> torch.Tensor:
        shape = (per_window, *like.shape[1:])
        return torch.cat([torch.randn(shape, generator=g, dtype=like.dtype) for g in generators]).to(device)

    return draw


def _check_dtype(dtype: torch.dtype | None, device_type: str | None) -> None:
    if dtype not in (None, torch.float32, torch.bfloat16, torch.float16):
        raise OptionError(f"dtype must be torch.bfloat16, torch.float16 or None, not {dtype}.")
    if dtype == torch.float16 and device_type not in (None, "cuda"):
        raise OptionError(
            f"{spell('dtype', torch.float16)} runs on CUDA only; use {spell('dtype', torch.bfloat16)} on the CPU."
        )


def _autocast(dtype: torch.dtype | None, device: torch.device):
    _check_dtype(dtype, device.type)
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


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


def mixture_rate(sample_rate: int | None, prior: ScorePrior, predictor: Predictor | None = None) -> int:
    """The mixture's rate in Hz: ``sample_rate``; ``None`` means the prior's rate, and is refused
    where the predictor works at another rate (sips raises rather than guess which of the two the
    audio has).

    Raises:
        SampleRateError: ``sample_rate`` is not a positive whole number of Hz, or it is ``None``
            while ``predictor.sample_rate`` differs from the prior's.
    """
    if sample_rate is not None:
        return bands.check_rate(sample_rate)
    low = prior.config.sample_rate
    if predictor is not None and predictor.sample_rate != low:
        raise SampleRateError(
            f"The mixture's rate cannot be assumed: the predictor works at {predictor.sample_rate} Hz and the prior "
            f"at {low} Hz, so pass the rate of your audio, e.g. {spell('sample_rate', predictor.sample_rate)} or "
            f"{spell('sample_rate', low)}."
        )
    return low


def refine_across_rates(
    wav: torch.Tensor,
    rate: int,
    prior: ScorePrior,
    options: RefineOptions,
    *,
    predictor: Predictor | None = None,
    estimates: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Refine a mixture at any ``rate`` with a predictor at any rate (:mod:`sips.bands`).

    The predictor runs on the mixture resampled to its own rate (window by window, cross-faded,
    rescaled: :func:`refine_stream` without a prior); its estimate and the mixture go to the
    prior's rate, where the prior refines; the result comes back to ``rate``, where above the
    prior's rate :func:`sips.bands.join` adds the band the prior does not model from the estimate.
    With ``options.postprocess`` the predictor runs once more on the output, at its own rate.

    Args:
        wav: ``[B, T]`` float32 mixture at ``rate`` Hz.
        predictor: runs at its ``sample_rate``; or
        estimates: ``[B, K, T]`` computed elsewhere, at ``rate``.

    Returns:
        ``([B, K, T] at rate, the members' disagreement per sample [B, K, T16] at the prior's rate
        or None)``.
    """
    low = prior.config.sample_rate
    native = predictor.sample_rate if predictor is not None else rate
    length = wav.shape[-1]
    est = _first_stage(bands.resample(wav, rate, native), native, options, predictor, estimates)
    mix_low = bands.resample(wav, rate, low)
    est_low = bands.resample(est, native, low, length=mix_low.shape[-1])
    second = dataclasses.replace(options, rescale="none", postprocess=False)  # rescaled in stage one
    collect = _stream_in_memory(mix_low, prior, second, estimates=est_low)
    refined_low = torch.cat(collect.blocks, dim=-1)
    spread = torch.cat(collect.spread, dim=-1) if collect.spread else None
    if rate > low:
        out = bands.join(bands.resample(est, native, rate, length=length), refined_low, est_low, rate, low)
    else:
        out = bands.resample(refined_low, low, rate, length=length)
    if options.postprocess:
        check_postprocess(predictor, out.shape[1])
        again = _first_stage(bands.resample(out[:, 0], rate, native), native, options, predictor, None)
        out = bands.resample(again, native, rate, length=length)
    return out.to(wav.device), spread


def _first_stage(
    mix: torch.Tensor,
    rate: int,
    options: RefineOptions,
    predictor: Predictor | None,
    estimates: torch.Tensor | None,
) -> torch.Tensor:
    """The rescaled, cross-faded estimates ``[B, K, T]`` of ``mix [B, T]`` at ``rate`` (no prior)."""
    first = dataclasses.replace(options, uncertainty=False, postprocess=False)
    collect = _stream_in_memory(mix, None, first, predictor=predictor, estimates=estimates, rate=rate)
    return torch.cat(collect.blocks, dim=-1)


MAX_CHANNELS = 8  # a last axis this short, after a long first one, is taken for channels


def check_layout(data: torch.Tensor, what: str, expected: str) -> None:
    """Refuse ``[T, channels]`` (soundfile's layout) where sips wants time last: ``data`` of two or
    more axes whose last axis has at most :data:`MAX_CHANNELS` entries and the one before it more
    than half a frame (``n_fft // 2`` samples).

    Raises:
        AudioError: one sentence saying how to transpose.
    """
    if data.dim() >= 2 and data.shape[-1] <= MAX_CHANNELS and data.shape[-2] > spectral.N_FFT // 2:
        raise AudioError(
            f"The {what} has shape {list(data.shape)}, which looks like [T, channels] (soundfile's layout); "
            f"sips takes {expected} with time last, so pass x.T (each channel is an item) or one channel x[:, 0]."
        )


def as_batch(mixture: ArrayLike):
    """``[T] | [B, T]`` -> (``[B, T]`` float32 tensor, function restoring type/shape of outputs).

    Raises:
        AudioError: not a real tensor or numeric array, an unsigned integer array, another number
            of axes, the ``[T, channels]`` layout (:func:`check_layout`), too short, NaN or Inf.
    """
    wav, is_numpy = _as_tensor(mixture, "mixture")
    if wav.dim() not in (1, 2):
        raise AudioError(f"The mixture must have shape [T] or [B, T], got {list(wav.shape)}.")
    check_layout(wav, "mixture", "[T] or [B, T]")
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
