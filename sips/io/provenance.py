"""Where an output came from: the mixture tag of the files sips writes, and the checks that read it.

Every audio file the file layer writes (a refined output, or a predictor's estimate written with
``--write-estimates``) carries, in its ``comment`` string (WAV ``LIST/INFO``, FLAC and Ogg Vorbis
comments, AIFF, CAF, MP3 ID3), the tag ``sips:mixture-sha256=<hex>``: the SHA-256 of the bytes of
the input file it was made from. Formats without string metadata (W64, RAW, ...) carry no tag.

``sips eval`` reads it to refuse a pairing whose "reference" is the estimate's own noisy input
(``sips eval examples out`` after ``sips refine examples/noisy.wav -o out``: ``out/noisy.wav`` would
be matched by name with ``examples/noisy.wav``). The check is by content, so it holds whatever the
files are called or where they were moved, and it never fires for a clean reference, which is
never a file that was refined. Estimates from other tools carry no tag; for them only an estimate
identical to its reference (the same bytes) is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

import soundfile as sf

from . import audio

TAG_PREFIX = "sips:mixture-sha256="
_TAG = re.compile(re.escape(TAG_PREFIX) + r"([0-9a-f]{64})")
_BLOCK = 1 << 20


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of the bytes of ``path``, as 64 hex digits (read in blocks)."""
    digest = hashlib.sha256()
    with open(os.fsencode(path), "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def tag(digest: str) -> str:
    """The ``comment`` text of an output made from the input of SHA-256 ``digest``."""
    return TAG_PREFIX + digest


def write_tag(sound: sf.SoundFile, digest: str | None) -> None:
    """Put :func:`tag` into a file open for writing; formats without string metadata are left as
    they are (the tag is a help for ``sips eval``, never a reason for a write to fail)."""
    if digest is None:
        return
    try:
        sound.comment = tag(digest)
    except (sf.LibsndfileError, RuntimeError):
        pass


def mixture_digest(path: str | os.PathLike) -> str | None:
    """The SHA-256 of the input ``path`` was refined from, or ``None`` if it carries no sips tag
    (or cannot be opened)."""
    try:
        with audio.open_sound(path) as sound:
            found = _TAG.search(sound.comment or "")
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None
    return found[1] if found else None


def misused_references(pairs: Iterable[tuple[Path, Path]]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """Of the ``(estimate, reference)`` pairs, those whose reference is the estimate's own input
    (by the estimate's tag), and those whose two files hold the same bytes.

    Returns:
        ``(refined_from_reference, identical)``, each a list of ``(estimate, reference)``.
    """
    digests: dict[Path, str] = {}

    def digest(path: Path) -> str:
        if path not in digests:
            digests[path] = file_digest(path)
        return digests[path]

    refined, identical = [], []
    for est, ref in pairs:
        source = mixture_digest(est)
        if source is not None and source == digest(ref):
            refined.append((est, ref))
        elif os.path.getsize(est) == os.path.getsize(ref) and digest(est) == digest(ref):
            identical.append((est, ref))
    return refined, identical
