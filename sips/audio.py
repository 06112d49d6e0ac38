"""Reading, resampling and atomically writing audio files (soundfile + soxr).

Arrays here are numpy ``[C, T]`` float32 (channels first); the tensor layer never sees files.

File names go to libsndfile as bytes (:func:`open_sound`), so names that are not valid UTF-8
are read and written with their bytes unchanged; :func:`display` shows them with ``\\xNN``
escapes. Which files count as audio is decided by extension (:data:`EXTENSIONS`), limited to the
formats the installed libsndfile reads (:func:`extensions`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from ._atomic import atomic_path, is_temporary
from .bands import QUALITY as RESAMPLE_QUALITY  # noqa: F401 - the file layer's resampler (re-exported)
from .bands import resample_array as resample
from .errors import AudioError

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


def display(path: str | os.PathLike) -> str:
    """``path`` (text or bytes) as printable text: bytes that are not UTF-8 appear as ``\\xNN``."""
    text = os.fsdecode(path)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that did not come from a file name
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


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


def scan(root: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """``(audio files, skipped files)`` under ``root`` (a file or a folder, searched recursively), sorted.

    A named file is always taken. In a folder, files whose extension names no format the installed
    libsndfile reads are skipped (and returned, to be reported); temporaries of interrupted writes
    (:func:`sips._atomic.is_temporary`) are ignored.
    """
    root = Path(root)
    if root.is_file():
        return [root], []
    if not root.is_dir():
        raise AudioError(f"No such file or folder: {display(root)}.")
    known = extensions()
    found, skipped = [], []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or is_temporary(p):
            continue
        (found if p.suffix.lower().lstrip(".") in known else skipped).append(p)
    return found, skipped


def list_audio(root: str | os.PathLike) -> list[Path]:
    """Audio files under ``root`` (a file or a folder, searched recursively), sorted (see :func:`scan`)."""
    return scan(root)[0]


def skipped_note(skipped: list[Path], shown: int = 3) -> str | None:
    """One phrase naming the files :func:`scan` skipped and why (``None`` if there are none)."""
    if not skipped:
        return None
    kinds = sorted({p.suffix.lower() or "no extension" for p in skipped})
    names = ", ".join(display(p) for p in skipped[:shown])
    more = f" and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return (
        f"skipped {len(skipped)} file(s) whose extension ({', '.join(kinds)}) names no audio format "
        f"libsndfile {sf.__libsndfile_version__} reads: {names}{more}"
    )


def write(path: str | os.PathLike, audio: np.ndarray, rate: int, subtype: str | None = None) -> None:
    """Write ``[C, T]`` (or ``[T]``) audio atomically: a temporary file in the same folder, then rename.

    Nothing is left at ``path`` (nor a temporary file) if writing fails.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    path = Path(path)
    fmt = format_for(path)
    subtype = subtype_for(path, subtype)
    with (
        atomic_path(path) as tmp,
        open_sound(tmp, "w", samplerate=rate, channels=audio.shape[0], subtype=subtype, format=fmt) as f,
    ):
        f.write(audio.T)


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
