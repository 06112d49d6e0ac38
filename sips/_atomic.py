"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A temporary is named ``.<target name>.<8 random characters>.part``: hidden, and without the
target's extension, so no tool (nor sips' own input discovery) takes it for audio. A process
killed hard (``kill -9``, power loss) can leave one behind; the next write of the same target
removes it (:func:`remove_stale`).

Several processes may write into one folder at once (two ``sips refine`` runs on one ``-o``): the
process that makes a temporary holds an exclusive ``flock`` on it until the rename, and only
temporaries whose lock can be taken (their writer is gone: the kernel drops the lock of a dead
process) are removed as stale. Where ``flock`` does not exist, a temporary is stale after
:data:`STALE_SECONDS` without a change. A run claims an input's outputs with :func:`claim`, a
locked temporary of a fixed name, so that another run leaves that input to it.

A shared leaf at the top of the package: every group that writes a file (prior folders, weights
snapshots, audio outputs, scores, reports) uses it, so it knows none of them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .errors import OutputError

try:
    import fcntl
except ImportError:  # Windows: stale temporaries are told by their age
    fcntl = None

TEMP_SUFFIX = ".part"
STALE_SECONDS = 3600.0  # without flock: a temporary unchanged this long has lost its writer
_CLAIM = "inflight"  # the "random" part of a claim's name (8 characters, like mkstemp's)
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
    """Temporaries of ``path`` beside it: left by an interrupted write, or held by a live process."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    own = re.compile(
        rf"^(?:{re.escape(_prefix(path))}{_RANDOM}\.part|\.{re.escape(path.stem)}\.{_RANDOM}\.part{re.escape(path.suffix)})$"
    )
    return sorted(p for p in path.parent.iterdir() if own.match(p.name) and p.is_file())


def remove_stale(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Delete the stale temporaries of ``paths`` (see :func:`stale_temporaries`); returns them.

    A temporary that a live process holds (it is being written, or it is another run's
    :func:`claim`) is not stale and stays."""
    removed = []
    for path in paths:
        for tmp in stale_temporaries(path):
            with contextlib.suppress(FileNotFoundError), _held(tmp) as mine:
                if mine:
                    tmp.unlink()
                    removed.append(tmp)
    return removed


@contextlib.contextmanager
def _held(path: Path) -> Iterator[bool]:
    """Whether this process could take ``path``'s lock (held for the block): ``False`` while another
    process holds it. Without ``flock`` (the platform's or the file system's), whether ``path`` is
    older than :data:`STALE_SECONDS`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        yield _try_lock(fd) if fcntl is not None else _old(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    """Take ``fd``'s exclusive lock without waiting: ``False`` while another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without flock: fall back to the age
        return _old(fd)
    return True


def _old(fd: int) -> bool:
    """Whether the file ``fd`` is unchanged for :data:`STALE_SECONDS`."""
    return time.time() - os.fstat(fd).st_mtime > STALE_SECONDS


def _lock(fd: int, path: Path) -> bool:
    """Take the exclusive lock of the file ``fd`` (waiting for a process that is removing it as
    stale); whether ``path`` still names that file afterwards."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # a file system without flock
        return True
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _locked_temporary(path: Path) -> tuple[int, Path]:
    """A new temporary of ``path``: created, locked by this process and still in place."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
        if _lock(fd, Path(tmp)):
            return fd, Path(tmp)
        os.close(fd)  # removed as stale between its creation and the lock: make another


class Claim:
    """An input's outputs, claimed by this process (:func:`claim`); :meth:`release` ends it."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path = fd, path

    def release(self) -> None:
        """Remove the claim (its lock goes with the file descriptor)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)


def claim(path: str | os.PathLike) -> Claim | None:
    """Claim the right to write ``path`` (an input's first output) for this process: a locked
    temporary ``.<name>.inflight.part`` beside it. ``None`` while another live process holds it
    (another run refines that input now); a claim left by a killed process is taken over.
    The folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{_prefix(path)}{_CLAIM}{TEMP_SUFFIX}"
    while True:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is None:
            return Claim(fd, tmp)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                return Claim(fd, tmp)
        except BlockingIOError:
            os.close(fd)
            return None
        except FileNotFoundError:
            pass
        except OSError:  # a file system without flock: no claims to respect
            return Claim(fd, tmp)
        os.close(fd)  # removed by its last holder meanwhile: claim the new one


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Yield one temporary path in each target's folder; on success all replace their targets.

    The renames happen together at the end, only when the block finished. On any exception
    (Ctrl-C included) every temporary file is removed and no target is touched. Temporaries have
    no extension of their own: a writer that infers the format from the name must be told it
    (``soundfile``'s ``format=``, matplotlib's ``format=``), and it must write to the file at that
    path (not replace it), which holds this process's lock. Stale temporaries of the same targets
    (those no live process holds) are removed first.
    """
    temps: list[Path] = []
    locks: list[int] = []
    try:
        for path in map(Path, paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale([path])
            fd, tmp = _locked_temporary(path)
            locks.append(fd)
            temps.append(tmp)
        yield temps
        for tmp, path in zip(temps, paths, strict=True):
            os.chmod(tmp, default_file_mode())
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise
    finally:
        for fd in locks:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is untouched.
    """
    with atomic_paths([path]) as temps:
        yield str(temps[0])


MIN_FREE_BYTES = 1 << 20  # a failed write where less is free is put down to a full disk
PROBE_BYTES = 1 << 16  # written (and removed) to prove a folder takes files


def failure_cause(err: BaseException, folder: str | os.PathLike | None = None) -> str:
    """Why writing in ``folder`` failed, in words (``No space left on device``, ``Read-only file
    system``, ``Permission denied``, ...): the error's own errno, else (libsndfile's "System
    error", a short write) the state of ``folder``'s file system, else the error's text."""
    code = getattr(err, "errno", None)
    if code:
        return os.strerror(code)
    if folder is not None:
        try:
            fs = os.statvfs(folder)
        except OSError:
            fs = None
        if fs is not None and fs.f_flag & os.ST_RDONLY:
            return os.strerror(errno.EROFS)
        if fs is not None and fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES:
            return os.strerror(errno.ENOSPC)
    text = getattr(err, "error_string", None) or str(err) or type(err).__name__
    return " ".join(text.split()).rstrip(".")


def check_folder(folder: str | os.PathLike, what: str = "the output folder") -> Path:
    """Prove that ``folder`` can be created (if missing) and take files: a probe temporary of
    :data:`PROBE_BYTES` is written and removed, and so are the folders made for it, so a run fails
    before its work, not after, and a run that fails later for another reason leaves nothing.

    Raises:
        OutputError: one sentence naming ``what``, the folder and the cause (a file in its place,
            no permission, a read-only file system, no space left).
    """
    from .errors import display

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"Cannot use {display(folder)} as {what}: it is a file, not a folder.")
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".sips-probe.", suffix=TEMP_SUFFIX, dir=folder)
        try:
            data = memoryview(bytes(PROBE_BYTES))
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        where = folder if folder.is_dir() else None
        raise OutputError(f"Cannot write in {what} {display(folder)}: {failure_cause(err, where)}.") from None
    finally:
        for path in made:
            with contextlib.suppress(OSError):
                path.rmdir()
    return folder


def check_file_target(path: str | os.PathLike, what: str) -> Path:
    """:func:`check_folder` on the folder of the file ``path`` (``what``, e.g. ``"--csv"``), which
    must not be a folder itself."""
    from .errors import display

    path = Path(path)
    if path.is_dir():
        raise OutputError(f"Cannot write {what} to {display(path)}: it is a folder, not a file.")
    check_folder(path.parent, f"the folder of {what}")
    return path


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
