"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A temporary is named ``.<target name>.<8 random characters>.part``: hidden, and without the
target's extension, so no tool (nor sips' own input discovery) takes it for audio. A process
killed hard (``kill -9``, power loss) can leave one behind; the next write of the same target
removes it (:func:`remove_stale`).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

TEMP_SUFFIX = ".part"
_NAME_BYTES = 200  # of the target's name kept in a temporary's name (file names hold 255 bytes)
_RANDOM = r"[a-z0-9_]{8}"  # what tempfile.mkstemp inserts
# ".<name>.<random>.part", and ".<stem>.<random>.part.<ext>" as written by sips 0.1
_TEMPORARY = re.compile(rf"^\..+\.{_RANDOM}\.part(\.[^.]+)?$")


def default_file_mode() -> int:
    """``0o666`` minus the process umask (``mkstemp`` alone creates owner-only files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like a temporary of :func:`atomic_paths` (of this or an older version)."""
    return bool(_TEMPORARY.match(Path(path).name))


def _prefix(path: Path) -> str:
    """``.<name>.``, the name cut to ``_NAME_BYTES`` bytes (undecodable bytes survive the round trip)."""
    return "." + os.fsdecode(os.fsencode(path.name)[:_NAME_BYTES]) + "."


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporaries left beside ``path`` by an interrupted write of ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    own = re.compile(
        rf"^(?:{re.escape(_prefix(path))}{_RANDOM}\.part|\.{re.escape(path.stem)}\.{_RANDOM}\.part{re.escape(path.suffix)})$"
    )
    return sorted(p for p in path.parent.iterdir() if own.match(p.name) and p.is_file())


def remove_stale(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Delete the stale temporaries of ``paths`` (see :func:`stale_temporaries`); returns them."""
    removed = []
    for path in paths:
        for tmp in stale_temporaries(path):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Yield one temporary path in each target's folder; on success all replace their targets.

    The renames happen together at the end, only when the block finished. On any exception
    (Ctrl-C included) every temporary file is removed and no target is touched. Temporaries have
    no extension of their own: a writer that infers the format from the name must be told it
    (``soundfile``'s ``format=``, matplotlib's ``format=``). Stale temporaries of the same targets
    are removed first.
    """
    temps: list[Path] = []
    try:
        for path in map(Path, paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale([path])
            fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
            os.close(fd)
            temps.append(Path(tmp))
        yield temps
        for tmp, path in zip(temps, paths, strict=True):
            os.chmod(tmp, default_file_mode())
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is untouched.
    """
    with atomic_paths([path]) as temps:
        yield str(temps[0])


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
