"""Errors a user can cause.

Every exception raised because of bad input, a missing file, a missing optional dependency or a
mismatched model is a :class:`SipsError` subclass carrying one clear sentence. The CLI prints the
message and exits with status 2.

How those sentences name things lives here too: an argument as the user passes it (:func:`spell`,
:func:`named`) and a file name as printable text (:func:`display`), so that every layer (the atomic
writes beneath all of them, the audio files, the command line) words them the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Any

_UNSET: Any = object()
# How a sentence names an argument: "python" (``checkpoint=``) or "cli" (``--checkpoint FILE``).
_SPELLING: contextvars.ContextVar[str] = contextvars.ContextVar("sips_spelling", default="python")
# Python argument -> (the ``sips`` command's option, its metavar or None for a flag / a value shown as is).
_OPTIONS = {
    "checkpoint": ("--checkpoint", "FILE"),
    "config": ("--predictor-config", "FILE"),
    "n_src": ("--n-src", "K"),
    "revision": ("--revision", "REV"),
    "token": ("--token", "TOKEN"),
    "cache_dir": ("--cache-dir", "DIR"),
    "metrics": ("--metrics", "NAME..."),
}


def spell(name: str, value: Any = _UNSET) -> str:
    """``name`` (and ``value``) as the user passes it: ``checkpoint=`` / ``n_src=3`` /
    ``allow_clipping=True`` in Python, ``--checkpoint FILE`` / ``--n-src 3`` / ``--allow-clipping``
    inside the ``sips`` command (:func:`command_line_spelling`). Error sentences use it for every
    argument they ask the user to pass or change."""
    if _SPELLING.get() == "python":
        if value is _UNSET:
            return f"{name}="
        return f"{name}={value!r}"
    flag, metavar = _OPTIONS.get(name, (f"--{name.replace('_', '-')}", None))
    if value is _UNSET:
        return f"{flag} {metavar}" if metavar else flag
    if value is True:
        return flag
    if isinstance(value, list | tuple):
        return f"{flag} {' '.join(map(str, value))}"
    text = str(value).removeprefix("torch.")  # a dtype reads float16 on the command line
    return f"{flag} {text}"


def named(name: str) -> str:
    """The argument ``name`` alone, as the user knows it: ``checkpoint`` in Python, ``--checkpoint``
    in the ``sips`` command."""
    if _SPELLING.get() == "python":
        return name
    return _OPTIONS.get(name, (f"--{name.replace('_', '-')}", None))[0]


@contextlib.contextmanager
def command_line_spelling() -> Iterator[None]:
    """Within this block :func:`spell` names arguments as options of the ``sips`` command."""
    token = _SPELLING.set("cli")
    try:
        yield
    finally:
        _SPELLING.reset(token)


def in_command_line() -> bool:
    """Whether :func:`spell` names arguments as options of the ``sips`` command now."""
    return _SPELLING.get() == "cli"


def display(path: str | os.PathLike) -> str:
    """``path`` (text or bytes) as printable text: bytes that are not UTF-8 appear as ``\\xNN``."""
    text = os.fsdecode(path)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that did not come from a file name
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class SipsError(Exception):
    """Base class of every error a user can cause."""


class AudioError(SipsError):
    """An audio input cannot be used (unreadable, empty, NaN, wrong shape, ...)."""


class OptionError(SipsError, ValueError):
    """An argument is out of its range (window lengths, batch sizes, dtypes, ...)."""


class OutputError(SipsError):
    """An output cannot be written (no permission, disk full, a path outside the output folder)."""


class SampleRateError(SipsError):
    """A sample rate does not match what a model expects."""


class LengthMismatchError(SipsError):
    """A predictor estimate and its mixture differ in length by more than the tolerance."""


class PriorLoadError(SipsError):
    """A prior folder or checkpoint cannot be loaded (missing files, config/weights mismatch)."""


class CorruptPriorError(PriorLoadError):
    """A prior file exists but cannot be read (truncated, damaged, another checksum): fetching it
    again may help, so a cached Hub prior is fetched again once when the Hub answers."""


class HubCacheError(PriorLoadError):
    """The Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE`` / ``cache_dir``) cannot be written:
    read-only, no permission, no space left."""


class HubError(SipsError):
    """The Hugging Face Hub refused an upload or cannot be reached for one."""


class AdapterError(SipsError):
    """A predictor adapter is unknown, registered twice, or misbehaves."""


class ReportError(SipsError):
    """The inputs of a listening report do not fit together (no file in common, two files of one
    name), or a ratings file is unreadable or malformed."""


class MissingDependencyError(SipsError):
    """An optional dependency is needed for this feature but not installed."""


class TrainingError(SipsError):
    """Training cannot start or resume (no data, incompatible checkpoint, ...)."""


class SipsWarning(UserWarning):
    """Base class of the warnings sips gives (the CLI prints each as one ``sips: warning:`` line)."""


class ClippingWarning(SipsWarning):
    """An output would have exceeded full scale, so the whole file was scaled down instead of clipped."""
