"""Reading, resampling and atomically writing audio files (soundfile + soxr).

Arrays here are numpy ``[C, T]`` float32 (channels first); the tensor layer never sees files.

File names go to libsndfile as bytes (:func:`open_sound`), so names that are not valid UTF-8
are read and written with their bytes unchanged; :func:`~sips.errors.display` shows them with ``\\xNN``
escapes. Which files count as audio is decided by extension (:data:`EXTENSIONS`), limited to the
formats the installed libsndfile reads (:func:`extensions`).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from .._atomic import atomic_path, is_temporary
from ..errors import AudioError, ClippingWarning, display
from ..prediction.bands import QUALITY as RESAMPLE_QUALITY  # noqa: F401 - the file layer's resampler (re-exported)
from ..prediction.bands import resample_array as resample

#: Audio file extensions and the libsndfile major format of each (``.opus`` is Ogg Opus).
EXTENSIONS = {
    "wav": "WAV",
    "wave": "WAV",
    "flac": "FLAC",
    "ogg": "OGG",
    "oga": "OGG",
    "opus": "OGG",
    "mp3": "MP3",
    "aiff": "AIFF",
    "aif": "AIFF",
    "aifc": "AIFF",
    "au": "AU",
    "snd": "AU",
    "caf": "CAF",
    "w64": "W64",
    "rf64": "RF64",
    "sph": "NIST",
    "nist": "NIST",
    "voc": "VOC",
    "htk": "HTK",
    "sd2": "SD2",
    "paf": "PAF",
    "pvf": "PVF",
    "sf": "IRCAM",
    "avr": "AVR",
    "wve": "WVE",
    "xi": "XI",
    "sds": "SDS",
    "svx": "SVX",
    "8svx": "SVX",
    "mat": "MAT5",
}
_SUBTYPE_OF_EXTENSION = {"opus": "OPUS"}  # an extension that also fixes the codec


@functools.cache
def extensions() -> dict[str, str]:
    """:data:`EXTENSIONS` restricted to what the installed libsndfile reads (``ext -> format``)."""
    formats = sf.available_formats()

    def readable(ext: str, fmt: str) -> bool:
        codec = _SUBTYPE_OF_EXTENSION.get(ext)
        return fmt in formats and (codec is None or codec in sf.available_subtypes(fmt))

    return {ext: fmt for ext, fmt in EXTENSIONS.items() if readable(ext, fmt)}


def open_sound(path: str | os.PathLike, mode: str = "r", **kwargs) -> sf.SoundFile:
    """``soundfile.SoundFile`` on ``path``, its name passed as bytes (any file name works)."""
    return sf.SoundFile(os.fsencode(path), mode, **kwargs)


def cannot_read(path: str | os.PathLike, err: Exception) -> AudioError:
    """The error for a file libsndfile refuses, with libsndfile's own reason."""
    reason = err.error_string if isinstance(err, sf.LibsndfileError) else str(err)
    return AudioError(f"Cannot read {display(path)} as audio ({reason.strip().rstrip('.')}).")


def read(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file.

    Returns:
        ``(audio [C, T] float32, sample_rate)``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"Audio file not found: {display(path)}.")
    try:
        with open_sound(path) as f:
            rate = f.samplerate
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise cannot_read(path, err) from None
    if data.shape[0] == 0:
        raise AudioError(f"{display(path)} contains no audio samples.")
    if not np.isfinite(data).all():
        raise AudioError(f"{display(path)} contains NaN or infinite samples.")
    return np.ascontiguousarray(data.T), int(rate)


def info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """soundfile's header information (rate, channels, frames, subtype)."""
    try:
        return sf.info(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise cannot_read(path, err) from None


def load_mono(path: str | os.PathLike, rate: int) -> np.ndarray:
    """Read a file, average its channels and resample it to ``rate``; returns ``[T]`` float32."""
    audio, file_rate = read(path)
    return resample(audio.mean(axis=0), file_rate, rate)


def scan(
    root: str | os.PathLike, exclude: str | os.PathLike | Sequence[str | os.PathLike] | None = None
) -> tuple[list[Path], list[Path]]:
    """``(audio files, skipped files)`` under ``root`` (a file or a folder, searched recursively), sorted.

    A named file is always taken. In a folder, files whose extension names no format the installed
    libsndfile reads, and links whose target does not exist, are skipped (and returned, to be
    reported: :func:`skipped_note`); temporaries of interrupted writes
    (:func:`sips._atomic.is_temporary`) are ignored, and so are the folder(s) ``exclude`` with all
    they hold (the output folders of a run, when they lie inside an input folder).
    """
    root = Path(root)
    if root.is_file():
        return [root], []
    if not root.is_dir():
        raise AudioError(f"No such file or folder: {display(root)}.")
    known = extensions()
    folders = [] if exclude is None else [exclude] if isinstance(exclude, str | os.PathLike) else list(exclude)
    inside = root.resolve()
    excluded = [e for e in (Path(f).resolve() for f in folders) if e.is_relative_to(inside)]  # only folders inside root
    found, skipped = [], []
    for p in sorted(root.rglob("*")):
        if is_temporary(p) or (excluded and any(p.parent.resolve().is_relative_to(e) for e in excluded)):
            continue
        if _dangling(p):
            skipped.append(p)
        elif p.is_file():
            (found if p.suffix.lower().lstrip(".") in known else skipped).append(p)
    return found, skipped


def _dangling(path: Path) -> bool:
    """Whether ``path`` is a link whose target does not exist."""
    return path.is_symlink() and not path.exists()


def list_audio(root: str | os.PathLike) -> list[Path]:
    """Audio files under ``root`` (a file or a folder, searched recursively), sorted (see :func:`scan`)."""
    return scan(root)[0]


def skipped_note(skipped: list[Path], shown: int = 3) -> str | None:
    """One phrase naming the files :func:`scan` skipped and why (``None`` if there are none)."""
    if not skipped:
        return None
    links = [p for p in skipped if _dangling(p)]
    others = [p for p in skipped if not _dangling(p)]
    parts = []
    if others:
        kinds = sorted({p.suffix.lower() or "no extension" for p in others})
        parts.append(
            f"skipped {len(others)} file(s) whose extension ({', '.join(kinds)}) names no audio format "
            f"libsndfile {sf.__libsndfile_version__} reads: {_names(others, shown)}"
        )
    if links:
        parts.append(f"skipped {len(links)} link(s) whose target does not exist: {_names(links, shown)}")
    return "; ".join(parts)


def _names(paths: list[Path], shown: int) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(display(p) for p in paths[:shown]) + more


def write(path: str | os.PathLike, audio: np.ndarray, rate: int, subtype: str | None = None) -> None:
    """Write ``[C, T]`` (or ``[T]``) float audio (full scale 1.0) atomically: a temporary file in
    the same folder, then rename.

    Nothing is left at ``path`` (nor a temporary file) if writing fails. Audio that exceeds full
    scale is never clipped silently: in a format that cannot hold it (PCM, lossy codecs) the whole
    file is scaled down to a peak of :data:`LIMIT_PEAK`, with a :class:`~sips.errors.ClippingWarning`
    that says by how much and how many samples were over (:class:`Overload`).

    Raises:
        AudioError: an extension libsndfile cannot write.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    path = Path(path)
    fmt = format_for(path)
    subtype = subtype_for(path, subtype)
    if clips(fmt, subtype):
        overload = Overload()
        overload.add(audio)
        audio = np.clip(audio * overload.gain(path), -1.0, 1.0)
    with (
        atomic_path(path) as tmp,
        open_sound(tmp, "w", samplerate=rate, channels=audio.shape[0], subtype=subtype, format=fmt) as f,
    ):
        f.write(audio.T)


#: The peak a file is scaled to when its samples would exceed full scale (-0.01 dBFS).
LIMIT_PEAK = 0.999


def clips(fmt: str, subtype: str | None) -> bool:
    """Whether ``fmt`` / ``subtype`` (``None``: the format's default) clips samples beyond full
    scale: every subtype but float and double (PCM, and lossy codecs, which decode to PCM)."""
    return (subtype or sf.default_subtype(fmt)) not in ("FLOAT", "DOUBLE")


class Overload:
    """Samples beyond full scale, counted block by block before a file is written; :meth:`gain`
    then says how much the whole file must be scaled down so that none is clipped."""

    def __init__(self) -> None:
        self.peak, self.over, self.total = 0.0, 0, 0

    def add(self, block: np.ndarray) -> None:
        """Count one block of samples (any shape)."""
        if block.size:
            magnitude = np.abs(block)
            self.peak = max(self.peak, float(magnitude.max()))
            self.over += int(np.count_nonzero(magnitude > 1.0))
            self.total += block.size

    def gain(self, path: str | os.PathLike) -> float:
        """``1.0`` if no sample exceeds full scale, else ``LIMIT_PEAK / peak``, announced by a
        one-line :class:`~sips.errors.ClippingWarning` naming ``path``."""
        if self.peak <= 1.0:
            return 1.0
        gain = LIMIT_PEAK / self.peak
        warnings.warn(
            f"{display(path)}: {self.over} of {self.total} samples ({100 * self.over / self.total:.2f} %) would "
            f"exceed full scale (peak {20 * np.log10(self.peak):+.1f} dBFS), so the whole file was scaled by "
            f"{20 * np.log10(gain):.1f} dB instead of clipping them.",
            ClippingWarning,
            stacklevel=2,
        )
        return gain


def format_for(path: Path) -> str:
    """The soundfile format written for ``path``'s extension (an error for unknown ones)."""
    ext = path.suffix.lower().lstrip(".")
    known = extensions()
    if ext not in known:
        raise AudioError(
            f"Cannot write audio with extension .{ext}; use one of libsndfile's, e.g. .wav, .flac, .ogg, .opus or .mp3."
        )
    return known[ext]


def subtype_for(path: Path, subtype: str | None) -> str | None:
    """``subtype`` if ``path``'s format can hold it, else the extension's codec or the format's default."""
    fmt = format_for(path)
    fixed = _SUBTYPE_OF_EXTENSION.get(path.suffix.lower().lstrip("."))
    if fixed is not None:
        return fixed
    return subtype if subtype is not None and sf.check_format(fmt, subtype) else None
