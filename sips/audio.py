"""Reading, resampling and atomically writing audio files (soundfile + soxr).

Arrays here are numpy ``[C, T]`` float32 (channels first); the tensor layer never sees files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from ._atomic import atomic_path
from .errors import AudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")


def read(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file.

    Returns:
        ``(audio [C, T] float32, sample_rate)``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"Audio file not found: {path}.")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise AudioError(f"Cannot read {path} as audio ({err}).") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path} contains no audio samples.")
    if not np.isfinite(data).all():
        raise AudioError(f"{path} contains NaN or infinite samples.")
    return np.ascontiguousarray(data.T), int(rate)


def info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """soundfile's header information (rate, channels, frames, subtype)."""
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"Cannot read {path} as audio ({err}).") from None


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """High-quality (soxr VHQ) resampling of ``[..., T]`` float32 audio."""
    if rate_in == rate_out:
        return audio
    import soxr

    flat = audio.reshape(-1, audio.shape[-1])
    out = np.stack([soxr.resample(ch, rate_in, rate_out, quality="VHQ") for ch in flat])
    return out.reshape(*audio.shape[:-1], out.shape[-1]).astype(np.float32, copy=False)


def load_mono(path: str | os.PathLike, rate: int) -> np.ndarray:
    """Read a file, average its channels and resample it to ``rate``; returns ``[T]`` float32."""
    audio, file_rate = read(path)
    return resample(audio.mean(axis=0), file_rate, rate)


def list_audio(root: str | os.PathLike) -> list[Path]:
    """Audio files under ``root`` (a file or a folder, searched recursively), sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise AudioError(f"No such file or folder: {root}.")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def write(path: str | os.PathLike, audio: np.ndarray, rate: int, subtype: str | None = None) -> None:
    """Write ``[C, T]`` (or ``[T]``) audio atomically: a temporary file in the same folder, then rename.

    Nothing is left at ``path`` (nor a temporary file) if writing fails.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    fmt = format_for(Path(path))
    with atomic_path(path) as tmp:
        sf.write(tmp, audio.T, rate, subtype=subtype, format=fmt)


def format_for(path: Path) -> str:
    """The soundfile format written for ``path``'s extension (an error for unknown ones)."""
    ext = path.suffix.lower().lstrip(".")
    formats = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "oga": "OGG", "aiff": "AIFF", "aif": "AIFF", "mp3": "MP3"}
    if ext not in formats:
        raise AudioError(f"Cannot write audio with extension .{ext}; use .wav, .flac, .ogg, .aiff or .mp3.")
    return formats[ext]
