"""Build the data pack of the GPU recipe: the permitted training audio as Ogg Opus, <= 47 MB.

    python priors/gpu/pack.py CORPUS PACK [--voice-minutes 30] [--level 0.92] [--limit-mb 47] [--workers 2]

CORPUS is built by ``shared/data/build_corpus.py``; PACK is a corpus in the same layout, so
:class:`sips.corpus.ClipBank` and :class:`sips.corpus.MixtureBank` read it unchanged:

- ``clean/<split>/<voice>/*.opus``: the training voices, every voice of
  :data:`sips.corpus.WIDE_SOURCES` (festvox_ru and the GPL-2/GPL-2+ voices: one licence for the
  weights, GPL-2.0-only; the CC-BY-SA Asterisk prompts stay out), each voice at most
  ``--voice-minutes`` of audio (files drawn in a fixed pseudo-random order over all its splits);
  and the ``valid`` and ``test`` files of the validation voices (:data:`sips.corpus.VALID_VOICES`),
  which only give validation losses. The test voices (:data:`sips.corpus.TEST_VOICES`) are never
  packed.
- ``noise/train/<category>/*.opus``: the training noise (the test noise stays out).
- ``PACK.json``: what was packed (minutes and bytes per part, the training and validation voices
  with their minutes, the Opus setting); ``train_all.sh`` reads the voices from it.

Opus at libsndfile's ``compression_level`` 0.92 is about 27 kbit/s for 16 kHz speech; what the
codec does to a prior is measured in ``priors/gpu/README.md``. The wide voices hold 283 minutes,
about 57 MB at that rate, more than fits beside the repository in the lease's 64 MiB; a lower
bitrate would dull the 4-8 kHz band further, so the largest voices are capped instead (every
voice stays in). Opus keeps the sample count of every file, so crops drawn with the same
generator are the same crops as on the original files. The pack is rebuilt idempotently: files
already encoded are kept, and files the plan no longer holds are removed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf

from sips._atomic import atomic_path, write_text
from sips.training.corpus import SPLITS, VALID_VOICES, WIDE_SOURCES

LEVEL = 0.92
LIMIT_MB = 47.0
VOICE_MINUTES = 30.0
TRAIN, VALID, NOISE = "training voices", "validation voices", "training noise"


def _order(path: Path) -> str:
    """A fixed pseudo-random order of a voice's files (the same on every machine and rebuild)."""
    return hashlib.sha256("/".join(path.parts[-3:]).encode()).hexdigest()  # split/voice/file


def _seconds(path: Path) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


def _voices(corpus: Path, kind: str, splits, prefixes) -> dict[str, list[Path]]:
    """``{folder name: its audio files over splits}`` for the folders whose names start with ``prefixes``."""
    voices: dict[str, list[Path]] = {}
    for split in splits:
        root = corpus / kind / split
        for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else ():
            if prefixes is None or folder.name.startswith(tuple(prefixes)):
                voices.setdefault(folder.name, []).extend(sorted(folder.rglob("*.wav")))
    return voices


def plan(corpus: Path, voice_minutes: float = VOICE_MINUTES) -> list[tuple[str, Path]]:
    """``(part, source file)`` for everything the pack holds, sorted (no test voice matches a part)."""
    todo = []
    for files in _voices(corpus, "clean", SPLITS, WIDE_SOURCES).values():
        total = 0.0
        for f in sorted(files, key=_order):
            if total >= voice_minutes * 60:
                break
            total += _seconds(f)
            todo.append((TRAIN, f))
    for files in _voices(corpus, "clean", ("valid", "test"), VALID_VOICES).values():
        todo.extend((VALID, f) for f in files)
    for files in _voices(corpus, "noise", ("train",), None).values():
        todo.extend((NOISE, f) for f in files)
    return sorted(todo)


def encode(job: tuple[Path, Path, float]) -> tuple[int, float]:
    """Encode one file (kept if already there); returns ``(bytes, seconds)``."""
    src, dst, level = job
    info = sf.info(str(src))
    if not dst.is_file():
        audio, rate = sf.read(str(src), dtype="float32")
        dst.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dst) as tmp:
            sf.write(tmp, audio, rate, format="OGG", subtype="OPUS", compression_level=level)
    return dst.stat().st_size, info.frames / info.samplerate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("pack", type=Path)
    p.add_argument("--voice-minutes", type=float, default=VOICE_MINUTES, help="most minutes packed per training voice")
    p.add_argument("--level", type=float, default=LEVEL, help="libsndfile Opus compression level, 0..1")
    p.add_argument("--limit-mb", type=float, default=LIMIT_MB, help="fail if the pack is larger (MB = 10^6 bytes)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    todo = plan(args.corpus, args.voice_minutes)
    if not any(part == TRAIN for part, _ in todo):
        print(f"pack: no training voice (sips.corpus.WIDE_SOURCES) under {args.corpus}", file=sys.stderr)
        return 2
    jobs = [(src, args.pack / src.relative_to(args.corpus).with_suffix(".opus"), args.level) for _, src in todo]
    planned = {dst for _, dst, _ in jobs}
    for kind in ("clean", "noise"):  # what an earlier plan packed and this one does not
        for stale in sorted((args.pack / kind).rglob("*.opus")) if (args.pack / kind).is_dir() else ():
            if stale not in planned:
                stale.unlink()
    with ProcessPoolExecutor(args.workers) as pool:
        done = list(pool.map(encode, jobs, chunksize=16))
    parts: dict[str, dict[str, float]] = {}
    voices: dict[str, dict[str, float]] = {TRAIN: {}, VALID: {}}
    for (name, src), (size, seconds) in zip(todo, done, strict=True):
        part = parts.setdefault(name, {"files": 0, "minutes": 0.0, "megabytes": 0.0})
        part["files"] += 1
        part["minutes"] += seconds / 60
        part["megabytes"] += size / 1e6
        if name in voices:
            voices[name][src.parent.name] = voices[name].get(src.parent.name, 0.0) + seconds / 60
    total = sum(p["megabytes"] for p in parts.values())
    minutes = sum(p["minutes"] for p in parts.values())
    summary = {
        "codec": "Ogg Opus (libsndfile)",
        "compression_level": args.level,
        "kbit_per_second": round(total * 8e3 / (minutes * 60), 1),
        "megabytes": round(total, 2),
        "voice_minutes": args.voice_minutes,
        "parts": {k: {f: round(v, 2) for f, v in d.items()} for k, d in parts.items()},
        # the folder names train_all.sh trains and validates on, with their minutes
        "voices": {
            "train": {v: round(m, 2) for v, m in sorted(voices[TRAIN].items())},
            "valid": {v: round(m, 2) for v, m in sorted(voices[VALID].items())},
        },
    }
    write_text(args.pack / "PACK.json", json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "voices"}, indent=2))
    if total > args.limit_mb:
        print(
            f"pack: {total:.1f} MB is over the {args.limit_mb} MB limit; lower --voice-minutes (or raise --level,"
            " a lower bitrate)",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
