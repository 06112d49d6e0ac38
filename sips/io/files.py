"""The file layer: audio files in, refined audio files out, in bounded memory.

A file of any rate, channel count and length is streamed block by block: channels are kept
(``channels="each"``, every channel refined as its own item) or downmixed (``"mix"``), resampled
to the prior's rate with soxr (VHQ) into a temporary float file, refined window by window
(:func:`sips.refine.refine_stream`), and resampled back to the file's rate into the output. The
output keeps the input's rate, channel count, exact length in frames (resampling there and back
can gain or lose a few samples: the tail is cropped or zero-padded) and, where the format
allows, its subtype (PCM 16/24/32, float, Vorbis, Opus, ...). A refined signal that exceeds full
scale is never clipped silently: in any subtype but float the whole output file is scaled down to a
peak of :data:`sips.audio.LIMIT_PEAK`, with a one-line :class:`~sips.errors.ClippingWarning`. All outputs of one input (one per source) appear together at the
end: each is written to a temporary file beside its target and renamed only when all are
complete (:func:`sips._atomic.atomic_paths`), so an interruption leaves no partial output. Peak memory depends on the window, not on
the file's length.

A predictor at another rate than the prior's (DeepFilterNet3, RNNoise: 48 kHz), or estimate files
at another rate, go the same way as :func:`sips.refine.refine_across_rates`, file by file: the input
is converted once to the predictor's rate as well, the predictor's windows are cross-faded into
float files there, resampled to the prior's rate and refined; above the prior's rate the output is
the estimate at the file's rate plus the upsampled correction (:func:`sips.bands.join`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .._atomic import atomic_paths, check_file_target, failure_cause
from ..errors import AudioError, OptionError, OutputError, spell
from ..method import spectral
from ..method.prior import ScorePrior
from ..method.refine import RefineOptions, check_postprocess, default_prior, match_length, peak_scale, refine_stream
from ..prediction.predictors import Predictor
from . import audio, provenance

CHANNEL_POLICIES = ("each", "mix")
#: How separated sources are named: ``suffix`` (``NAME_s1.wav``) or ``published`` (``s1/NAME.wav``,
#: the folders of the published SIPS pipeline). One source is always ``NAME.wav``.
LAYOUTS = ("suffix", "published")
BLOCK = 1 << 16  # frames per read / resampling block
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped (PCM inputs)
CLIP_FRACTION = 1e-3  # more than this fraction of clipped samples makes the input "clipped"


def source_path(out_path: str | os.PathLike, k: int, layout: str = "suffix") -> Path:
    """Where source ``k`` (from 1) of several goes: ``out_sK.wav`` (``layout="suffix"``) or
    ``sK/out.wav`` beside where ``out.wav`` would be (``layout="published"``)."""
    if layout not in LAYOUTS:
        raise OptionError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}.")
    out_path = Path(out_path)
    if layout == "published":
        return out_path.parent / f"s{k}" / out_path.name
    return out_path.with_name(f"{out_path.stem}_s{k}{out_path.suffix}")


def output_paths(out_path: str | os.PathLike, n_src: int, layout: str = "suffix") -> list[Path]:
    """``out.wav`` for one source, :func:`source_path` ``1 .. n_src`` for several."""
    if n_src == 1:
        source_path(out_path, 1, layout)  # checks the layout
        return [Path(out_path)]
    return [source_path(out_path, k + 1, layout) for k in range(n_src)]


class _Converted:
    """A file converted to float32 at ``rate`` Hz in a temporary WAV (``frames`` long, ``peak`` per
    channel), and what the original was (``file_rate``, ``file_frames``, ``subtype``)."""

    def __init__(
        self,
        path: Path,
        frames: int,
        channels: int,
        peak: np.ndarray,
        file_rate: int,
        file_frames: int,
        subtype: str,
        rate: int,
    ):
        self.path, self.frames, self.channels, self.peak, self.rate = path, frames, channels, peak, rate
        self.file_rate, self.file_frames, self.subtype = file_rate, file_frames, subtype

    @classmethod
    def float_file(cls, path: Path, frames: int, channels: int, rate: int) -> _Converted:
        """A float file written here (an estimate at ``rate``) to be read like a converted input."""
        return cls(path, frames, channels, np.ones(channels), rate, frames, "FLOAT", rate)

    def reader(self, stack: contextlib.ExitStack) -> Callable[[int, int], torch.Tensor]:
        """``(start, stop) -> [C, stop - start]`` (zero beyond the end)."""
        handle = stack.enter_context(audio.open_sound(self.path))

        def read(start: int, stop: int) -> torch.Tensor:
            handle.seek(min(start, self.frames))
            data = handle.read(stop - start, dtype="float32", always_2d=True)
            out = torch.from_numpy(np.ascontiguousarray(data.T))
            return torch.nn.functional.pad(out, (0, stop - start - out.shape[-1]))

        return read


def _convert(path: Path, rate: int, channels: str, folder: Path, name: str, allow_clipping: bool = True) -> _Converted:
    """Stream ``path`` into ``folder/name`` at ``rate`` (float32), checking its samples on the way."""
    if channels not in CHANNEL_POLICIES:
        raise AudioError(f"channels must be one of {', '.join(CHANNEL_POLICIES)}, not {channels!r}.")
    info = audio.info(path)
    if info.frames == 0:
        raise AudioError(f"{audio.display(path)} contains no audio samples.")
    n_out = 1 if channels == "mix" else info.channels
    target = folder / name
    peak = np.zeros(n_out)
    clipped = total = written = frames_in = 0
    stream = None
    try:
        with (
            audio.open_sound(path) as src,
            _Scratch(target, samplerate=rate, channels=n_out) as dst,
        ):
            if src.samplerate != rate:
                import soxr

                stream = soxr.ResampleStream(
                    src.samplerate, rate, n_out, dtype="float32", quality=audio.RESAMPLE_QUALITY
                )
            while True:
                block = src.read(BLOCK, dtype="float32", always_2d=True)
                last = len(block) < BLOCK
                frames_in += len(block)
                if not np.isfinite(block).all():
                    raise AudioError(f"{audio.display(path)} contains NaN or infinite samples.")
                clipped += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
                total += block.size
                if channels == "mix":
                    block = block.mean(axis=1, keepdims=True)
                if stream is not None:
                    block = stream.resample_chunk(block, last=last)
                if len(block):
                    peak = np.maximum(peak, np.abs(block).max(axis=0))
                    dst.write(block)
                    written += len(block)
                if last:
                    break
    except (sf.LibsndfileError, RuntimeError) as err:
        raise audio.cannot_read(path, err) from None
    shown = audio.display(path)
    if written <= spectral.N_FFT // 2:
        raise AudioError(f"{shown} is too short: {written} samples at {rate} Hz, need more than {spectral.N_FFT // 2}.")
    if not peak.any():
        raise AudioError(f"{shown} is digital silence (every sample is zero); there is nothing to refine.")
    if not allow_clipping and info.subtype.startswith("PCM") and clipped > CLIP_FRACTION * total:
        raise AudioError(
            f"{shown} is clipped ({100 * clipped / total:.2f} % of its samples at full scale); "
            f"pass {spell('allow_clipping', True)} to refine it anyway."
        )
    return _Converted(target, written, n_out, peak, info.samplerate, frames_in, info.subtype, rate)


@dataclasses.dataclass(frozen=True)
class _Outputs:
    """What one input writes: ``sources`` (float WAVs at ``rate``) as ``out_path`` (one source) or
    its per-source names (:func:`output_paths` with ``layout``)."""

    sources: list[Path]
    out_path: Path
    rate: int
    layout: str = "suffix"

    @property
    def paths(self) -> list[Path]:
        return output_paths(self.out_path, len(self.sources), self.layout)


def _write_outputs(groups: list[_Outputs], converted: _Converted, digest: str | None) -> list[Path]:
    """Resample every source of every group back to the input's rate and format, tagged with the
    input's ``digest`` (:mod:`sips.provenance`); all files appear together, or none."""
    out_path = groups[0].out_path
    try:
        return _write_all(groups, converted, digest)
    except (OSError, sf.LibsndfileError, AssertionError) as err:  # soundfile asserts on short writes
        reason = failure_cause(err, out_path.parent if out_path.parent.is_dir() else None)
        raise OutputError(f"Cannot write {audio.display(out_path)}: {reason}.") from None


def _write_all(groups: list[_Outputs], converted: _Converted, digest: str | None) -> list[Path]:
    jobs = [(src, path, group.rate) for group in groups for src, path in zip(group.sources, group.paths, strict=True)]
    paths = [path for _, path, _ in jobs]
    with atomic_paths(paths) as temps:
        for (source, path, rate), tmp in zip(jobs, temps, strict=True):
            fmt = audio.format_for(path)
            subtype = audio.subtype_for(path, converted.subtype)
            gain = _limiting_gain(source, path, rate, converted) if audio.clips(fmt, subtype) else None
            with (
                audio.open_sound(source) as src,
                audio.open_sound(
                    tmp, "w", samplerate=converted.file_rate, channels=src.channels, subtype=subtype, format=fmt
                ) as dst,
            ):
                provenance.write_tag(dst, digest)
                for block in _resampled_back(src, rate, converted.file_rate, converted.file_frames):
                    dst.write(block if gain is None else np.clip(block * gain, -1.0, 1.0))
    return paths


def _limiting_gain(source: Path, path: Path, rate: int, converted: _Converted) -> float:
    """The gain that keeps the output ``path`` of ``source`` within full scale (a first pass over
    what will be written; see :class:`sips.audio.Overload`)."""
    overload = audio.Overload()
    with audio.open_sound(source) as src:
        for block in _resampled_back(src, rate, converted.file_rate, converted.file_frames):
            overload.add(block)
    return overload.gain(path)


def _resampled_back(src: sf.SoundFile, rate: int, rate_out: int, frames: int) -> Iterator[np.ndarray]:
    """Blocks ``[n, C]`` of ``src`` (at ``rate``) resampled to ``rate_out``, exactly ``frames`` long
    (resampling there and back can gain or lose a few samples: the tail is cropped or zero-padded)."""
    remaining = frames
    stream = None
    if rate != rate_out:
        import soxr

        stream = soxr.ResampleStream(rate, rate_out, src.channels, dtype="float32", quality=audio.RESAMPLE_QUALITY)
    while True:
        block = src.read(BLOCK, dtype="float32", always_2d=True)
        last = len(block) < BLOCK
        if stream is not None:
            block = stream.resample_chunk(block, last=last)
        block = block[:remaining]
        if len(block):
            yield block
            remaining -= len(block)
        if last:
            break
    if remaining:
        yield np.zeros((remaining, src.channels), dtype=np.float32)


def _resample_file(source: Path, target: Path, rate: int, rate_out: int, frames: int) -> Path:
    """Stream the float file ``source`` (at ``rate``) into the float file ``target`` at ``rate_out``,
    exactly ``frames`` long (the tail cropped or zero-padded)."""
    with audio.open_sound(source) as src, _Scratch(target, samplerate=rate_out, channels=src.channels) as dst:
        for block in _resampled_back(src, rate, rate_out, frames):
            dst.write(block)
    return target


def _combine(first: Path, second: Path, target: Path, op: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Path:
    """``target = op(first, second)`` sample by sample, for two float files of one rate, length and layout."""
    with (
        audio.open_sound(first) as a,
        audio.open_sound(second) as b,
        _Scratch(target, samplerate=a.samplerate, channels=a.channels) as dst,
    ):
        while True:
            x = a.read(BLOCK, dtype="float32", always_2d=True)
            dst.write(op(x, b.read(len(x), dtype="float32", always_2d=True)))
            if len(x) < BLOCK:
                break
    return target


def _stream(
    converted: _Converted,
    folder: Path,
    prefix: str,
    prior: ScorePrior | None,
    options: RefineOptions,
    rate: int,
    *,
    predictor: Predictor | None = None,
    estimates: list[_Converted] | None = None,
) -> list[Path]:
    """:func:`sips.refine.refine_stream` over a converted file into float files ``folder/prefixK.wav``
    at ``rate``, one per source (with ``prior=None``: the rescaled, cross-faded estimates)."""
    sinks: list[_Scratch] = []
    with contextlib.ExitStack() as stack:
        read = converted.reader(stack)
        read_estimates = None
        if estimates is not None:
            readers = [e.reader(stack) for e in estimates]

            def read_estimates(start: int, stop: int) -> torch.Tensor:
                return torch.stack([r(start, stop) for r in readers], dim=1)  # [C, K, n]

        def write(block: torch.Tensor) -> None:  # [C, K, n]
            if not sinks:
                for k in range(block.shape[1]):
                    sink = _Scratch(folder / f"{prefix}{k}.wav", samplerate=rate, channels=block.shape[0])
                    sinks.append(stack.enter_context(sink))
            for k, sink in enumerate(sinks):
                sink.write(block[:, k].T.numpy())

        scale = peak_scale(torch.from_numpy(converted.peak.astype(np.float32))[:, None])
        refine_stream(
            read,
            converted.frames,
            scale,
            write,
            predictor=predictor,
            read_estimates=read_estimates,
            prior=prior,
            options=options,
            rate=rate,
        )
        return [s.path for s in sinks]


def _refine_converted(
    converted: _Converted,
    out_path: Path,
    folder: Path,
    prior: ScorePrior,
    options: RefineOptions,
    *,
    predictor: Predictor | None = None,
    estimates: list[_Converted] | None = None,
    layout: str = "suffix",
    estimate_path: Path | None = None,
    digest: str | None = None,
) -> list[Path]:
    rate = prior.config.sample_rate
    sources = _stream(converted, folder, "source", prior, options, rate, predictor=predictor, estimates=estimates)
    groups = [_Outputs(sources, out_path, rate, layout)]
    if estimate_path is not None:  # the predictor once more, alone: the refined output stays exactly as without
        first = dataclasses.replace(options, postprocess=False, uncertainty=False)
        est = _stream(converted, folder, "estimate", None, first, rate, predictor=predictor, estimates=estimates)
        groups.append(_Outputs(est, estimate_path, rate, layout))
    return _write_outputs(groups, converted, digest)


def _refine_across_rates(
    native: _Converted,
    converted: _Converted,
    out_path: Path,
    folder: Path,
    prior: ScorePrior,
    options: RefineOptions,
    *,
    predictor: Predictor | None = None,
    estimates: list[_Converted] | None = None,
    layout: str = "suffix",
    estimate_path: Path | None = None,
    digest: str | None = None,
) -> list[Path]:
    """The file layer's :func:`sips.refine.refine_across_rates`: ``native`` is the input at the
    predictor's (or the estimates') rate, ``converted`` at the prior's. The estimates written to
    ``estimate_path`` are the first stage's, full band, resampled from the predictor's rate."""
    low, rate = prior.config.sample_rate, converted.file_rate
    first = dataclasses.replace(options, postprocess=False, uncertainty=False)
    est = _stream(native, folder, "estimate-native", None, first, native.rate, predictor=predictor, estimates=estimates)
    est_low = [
        _resample_file(p, folder / f"estimate{k}.wav", native.rate, low, converted.frames) for k, p in enumerate(est)
    ]
    readers = [_Converted.float_file(p, converted.frames, converted.channels, low) for p in est_low]
    second = dataclasses.replace(options, rescale="none", postprocess=False)  # rescaled in the first stage
    refined = _stream(converted, folder, "source", prior, second, low, estimates=readers)
    final, final_rate = refined, low
    if rate > low:  # the prior's band from the refined signal, the band above from the estimate (sips.bands)
        final, final_rate = [], rate
        for k, (r, e, full) in enumerate(zip(refined, est_low, est, strict=True)):
            diff = _combine(r, e, folder / f"correction{k}.wav", np.subtract)
            diff = _resample_file(diff, folder / f"correction-full{k}.wav", low, rate, converted.file_frames)
            full = _resample_file(full, folder / f"estimate-full{k}.wav", native.rate, rate, converted.file_frames)
            final.append(_combine(full, diff, folder / f"joined{k}.wav", np.add))
    if options.postprocess:  # the predictor once more, on the output, at its own rate
        check_postprocess(predictor, len(final))
        again = _convert(final[0], native.rate, "each", folder, "postprocess-in.wav")
        pp = dataclasses.replace(first, rescale="none")
        final, final_rate = (
            _stream(again, folder, "postprocessed", None, pp, native.rate, predictor=predictor),
            native.rate,
        )
    groups = [_Outputs(final, out_path, final_rate, layout)]
    if estimate_path is not None:
        groups.append(_Outputs(est, estimate_path, native.rate, layout))
    return _write_outputs(groups, converted, digest)


def _check_target(out_path: Path, layout: str) -> None:
    """Fail before any work on an unknown layout, an extension libsndfile cannot write, or a
    folder where ``out_path`` cannot be written (:func:`sips._atomic.check_file_target`)."""
    output_paths(out_path, 1, layout)
    audio.format_for(out_path)
    check_file_target(out_path, "the output")


@contextlib.contextmanager
def _work_folder() -> Iterator[Path]:
    """A temporary folder (in ``TMPDIR``) for the float copies of one input and its results."""
    try:
        work = tempfile.TemporaryDirectory(prefix="sips-")
    except OSError as err:
        raise _scratch_error(Path(tempfile.gettempdir()), err) from None
    with work as folder:
        yield Path(folder)


def _scratch_error(folder: Path, err: BaseException) -> OutputError:
    where = folder if folder.is_dir() else None
    return OutputError(
        f"Cannot write the temporary files of this run in {audio.display(folder)} (set TMPDIR to choose another "
        f"folder): {failure_cause(err, where)}."
    )


class _Scratch:
    """A float WAV in the run's temporary folder. A failure to create, write or finish it is an
    :class:`OutputError` naming that folder (``TMPDIR``), never blamed on an input."""

    def __init__(self, path: Path, *, samplerate: int, channels: int) -> None:
        self.path = path
        self.file = self._do(audio.open_sound, path, "w", samplerate=samplerate, channels=channels, subtype="FLOAT")

    def _do(self, action, *args, **kwargs):
        try:
            return action(*args, **kwargs)
        except (OSError, sf.LibsndfileError, RuntimeError, AssertionError) as err:
            raise _scratch_error(self.path.parent, err) from None

    def write(self, block: np.ndarray) -> None:
        """Append ``[n, C]`` frames."""
        self._do(self.file.write, block)

    def __enter__(self) -> _Scratch:
        return self

    def __exit__(self, kind, *_) -> None:
        if kind is None:
            self._do(self.file.close)
        else:
            with contextlib.suppress(Exception):
                self.file.close()


def refine_file(
    predictor: Predictor,
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    prior: ScorePrior | None = None,
    channels: str = "each",
    allow_clipping: bool = False,
    layout: str = "suffix",
    estimate_path: str | os.PathLike | None = None,
    **kwargs,
) -> list[Path]:
    """Refine one file with ``predictor``; returns the written paths (one per source, then the
    estimates' with ``estimate_path``).

    ``channels="each"`` refines every channel separately, ``"mix"`` a mono downmix. The output
    keeps the input's sample rate, channel count and subtype where its format allows; a result
    beyond full scale is scaled down as a whole, with a :class:`~sips.errors.ClippingWarning`,
    never clipped. Clipped PCM input is refused unless ``allow_clipping``. Separated sources are named by ``layout``
    (:func:`output_paths`). With ``estimate_path`` the predictor's own estimate is written there too,
    named like the output (``estimate_path`` for one source, its ``_sK`` / ``sK/`` names for several),
    in the same format: the estimate as the prior received it (after ``rescale``; for an enhancer
    at the default, the predictor's output), full band, at the input's rate. It is computed by a
    second pass of the predictor, so the refined output is the same as without it. All files of
    the input appear together, or none. Every file carries the input's provenance tag
    (:mod:`sips.provenance`). Other keywords are those of :func:`sips.refine` (``steps``,
    ``kappa``, ``seed``, ``chunk_seconds``, ``postprocess``, ...).

    Raises:
        AudioError: an input that cannot be read or used (empty, too short, silent, NaN, clipped).
        OutputError: before any work, an output folder that cannot be written (the place and the
            cause); later, a write that fails (``No space left on device``, ...), or a temporary
            folder (``TMPDIR``) that cannot take the float copies. No partial output is left.
        AdapterError, OptionError, ...: as :func:`sips.refine`.
    """
    prior = prior if prior is not None else default_prior()
    options = RefineOptions(**kwargs)
    _check_target(Path(out_path), layout)
    if estimate_path is not None:
        estimate_path = Path(estimate_path)
        if estimate_path.resolve() == Path(out_path).resolve():
            raise OptionError(f"The estimate and the refined output would both be {audio.display(out_path)}.")
        _check_target(estimate_path, layout)
    low = prior.config.sample_rate
    more = {"layout": layout, "estimate_path": estimate_path}
    with _work_folder() as folder:
        converted = _convert(Path(in_path), low, channels, folder, "mixture.wav", allow_clipping)
        more["digest"] = provenance.file_digest(in_path)  # once the file has proved readable
        if predictor.sample_rate == low:
            return _refine_converted(converted, Path(out_path), folder, prior, options, predictor=predictor, **more)
        native = _convert(Path(in_path), predictor.sample_rate, channels, folder, "mixture-native.wav")
        return _refine_across_rates(
            native, converted, Path(out_path), folder, prior, options, predictor=predictor, **more
        )


def refine_estimate_files(
    estimate_paths: list[Path],
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    prior: ScorePrior | None = None,
    channels: str = "each",
    allow_clipping: bool = False,
    layout: str = "suffix",
    **kwargs,
) -> list[Path]:
    """Refine estimates stored as files (one per source) of the mixture ``in_path``; returns the
    written paths. Arguments and errors as in :func:`refine_file`."""
    prior = prior if prior is not None else default_prior()
    options = RefineOptions(**kwargs)
    _check_target(Path(out_path), layout)
    rate = prior.config.sample_rate
    with _work_folder() as folder:
        converted = _convert(Path(in_path), rate, channels, folder, "mixture.wav", allow_clipping)
        own = converted.file_rate  # estimates at another rate than the prior's: refined across rates
        mixture = converted if own == rate else _convert(Path(in_path), own, channels, folder, "mixture-native.wav")
        estimates = []
        for k, path in enumerate(estimate_paths):
            est = _convert(Path(path), own, channels, folder, f"estimate-given{k}.wav")
            if est.channels != mixture.channels:
                raise AudioError(
                    f"{audio.display(path)} has {est.channels} channel(s) but the mixture "
                    f"{audio.display(in_path)} has {mixture.channels}."
                )
            match_length(torch.zeros(est.frames), mixture.frames)  # same length, within n_fft
            estimates.append(est)
        more = {"layout": layout, "digest": provenance.file_digest(in_path)}
        if own == rate:
            return _refine_converted(converted, Path(out_path), folder, prior, options, estimates=estimates, **more)
        return _refine_across_rates(
            mixture, converted, Path(out_path), folder, prior, options, estimates=estimates, **more
        )
