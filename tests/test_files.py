"""The file layer: names, lengths, formats and temporaries of what sips reads and writes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sips import _atomic

from conftest import ROOT


def test_temporaries_carry_no_audio_extension_and_vanish_on_failure(tmp_path):
    targets = [tmp_path / "x.wav", tmp_path / "sub" / "x.flac", tmp_path / "notes.csv"]
    with _atomic.atomic_paths(targets) as temps:
        for tmp, target in zip(temps, targets, strict=True):
            assert tmp.parent == target.parent and tmp.name.startswith(f".{target.name}.")
            assert tmp.suffix == ".part" and _atomic.is_temporary(tmp), tmp
            tmp.write_bytes(b"done")
    assert [t.read_bytes() for t in targets] == [b"done"] * 3
    with pytest.raises(KeyboardInterrupt), _atomic.atomic_path(tmp_path / "y.wav") as tmp:
        Path(tmp).write_bytes(b"half")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.csv", "sub", "x.wav"]


def test_long_names_keep_their_temporaries_within_the_file_name_limit(tmp_path):
    target = tmp_path / ("é" * 120 + ".wav")  # 244 bytes: the name alone nearly fills the limit
    with _atomic.atomic_path(target) as tmp:
        assert len(os.fsencode(Path(tmp).name)) <= 255
        Path(tmp).write_bytes(b"x")
    assert target.read_bytes() == b"x"


def _killed_while_writing(target: Path) -> list[Path]:
    """Start an atomic write of ``target`` in a child process and ``kill -9`` it halfway."""
    code = (
        "import os, sys\n"
        "from sips._atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    open(tmp, 'wb').write(b'RIFF')\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code, str(target)], env=env, capture_output=True)
    assert result.returncode == -9, result.stderr
    return [p for p in target.parent.iterdir() if p.name != target.name]


def test_the_next_write_of_a_target_removes_what_a_killed_write_left(tmp_path):
    target = tmp_path / "x.wav"
    target.write_bytes(b"old")
    left = _killed_while_writing(target)
    assert len(left) == 1 and _atomic.is_temporary(left[0]) and left[0].suffix == ".part"
    old_style = tmp_path / ".x.k2j4h6g8.part.wav"  # the name sips 0.1 gave its temporaries
    old_style.write_bytes(b"RIFF")
    other = tmp_path / ".y.wav.k2j4h6g8.part"  # another target's: not ours to remove
    other.write_bytes(b"RIFF")
    assert set(_atomic.stale_temporaries(target)) == {left[0], old_style}
    _atomic.write_text(target, "new")
    assert target.read_text() == "new" and not left[0].exists() and not old_style.exists() and other.exists()
    assert _atomic.remove_stale([tmp_path / "y.wav"]) == [other] and not other.exists()
