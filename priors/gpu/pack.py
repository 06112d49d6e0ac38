"""Build the data pack of the GPU recipe: the permitted training audio as Ogg Opus, <= 45 MB.

    python priors/gpu/pack.py CORPUS PACK [--level 0.92] [--limit-mb 45] [--workers 2]

CORPUS is built by ``shared/data/build_corpus.py``; PACK is a corpus in the same layout, so
:class:`sips.corpus.ClipBank` and :class:`sips.corpus.MixtureBank` read it unchanged:

- ``clean/<split>/<voice>/*.opus``: every file (all splits) of the training voices
  (``sips.corpus.TRAIN_SOURCES``: festvox_ru and the Asterisk prompts, permissive licences), and
  the ``valid`` and ``test`` files of the validation voices (``sips.corpus.VALID_VOICES``), which
  only give validation losses. The test voices (``sips.corpus.TEST_VOICES``) are never packed.
- ``noise/train/<category>/*.opus``: the training noise (the test noise stays out).
- ``PACK.json``: what was packed (minutes and bytes per part, the Opus setting).

Opus at libsndfile's ``compression_level`` 0.92 is about 26 kbit/s for 16 kHz speech. The lossless
alternative does not fit: FLAC needs about 130 kbit/s, 5 times the budget. What the codec does
to a prior trained on decoded audio is measured in ``priors/gpu/README.md``. Opus keeps the
sample count of every file, so crops drawn with the same generator are the same crops as on the
original corpus. The pack is rebuilt idempotently: files already encoded are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf

from sips._atomic import atomic_path, write_text
from sips.training.corpus import TRAIN_SOURCES, VALID_VOICES

LEVEL = 0.92
LIMIT_MB = 45.0
PARTS = (
    # (name, kind, splits, folder prefixes)
    ("train voices", "clean", ("train", "valid", "test"), TRAIN_SOURCES),
    ("validation voices", "clean", ("valid", "test"), VALID_VOICES),
    ("training noise", "noise", ("train",), None),
)


def plan(corpus: Path) -> list[tuple[str, Path]]:
    """``(part, source file)`` for everything the pack holds, sorted (no test voice matches ``PARTS``)."""
    todo = []
    for name, kind, splits, prefixes in PARTS:
        for split in splits:
            root = corpus / kind / split
            if not root.is_dir():
                continue
            for folder in sorted(p for p in root.iterdir() if p.is_dir()):
                if prefixes is not None and not folder.name.startswith(tuple(prefixes)):
                    continue
                todo.extend((name, f) for f in sorted(folder.rglob("*.wav")))
    return todo


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
    p.add_argument("--level", type=float, default=LEVEL, help="libsndfile Opus compression level, 0..1")
    p.add_argument("--limit-mb", type=float, default=LIMIT_MB, help="fail if the pack is larger (MB = 10^6 bytes)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    todo = plan(args.corpus)
    if not todo:
        print(f"pack: no training audio under {args.corpus}", file=sys.stderr)
        return 2
    jobs = [(src, args.pack / src.relative_to(args.corpus).with_suffix(".opus"), args.level) for _, src in todo]
    with ProcessPoolExecutor(args.workers) as pool:
        done = list(pool.map(encode, jobs, chunksize=16))
    parts: dict[str, dict[str, float]] = {}
    for (name, _), (size, seconds) in zip(todo, done, strict=True):
        part = parts.setdefault(name, {"files": 0, "minutes": 0.0, "megabytes": 0.0})
        part["files"] += 1
        part["minutes"] += seconds / 60
        part["megabytes"] += size / 1e6
    total = sum(p["megabytes"] for p in parts.values())
    minutes = sum(p["minutes"] for p in parts.values())
    summary = {
        "codec": "Ogg Opus (libsndfile)",
        "compression_level": args.level,
        "kbit_per_second": round(total * 8e3 / (minutes * 60), 1),
        "megabytes": round(total, 2),
        "parts": {k: {f: round(v, 2) for f, v in d.items()} for k, d in parts.items()},
    }
    write_text(args.pack / "PACK.json", json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    if total > args.limit_mb:
        print(f"pack: {total:.1f} MB is over the {args.limit_mb} MB limit; raise --level", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
