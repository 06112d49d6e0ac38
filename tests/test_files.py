"""The file layer: names, lengths, formats and temporaries of what sips reads and writes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import sips
from sips import _atomic
from sips.cli import main
from sips.io.files import refine_estimate_files, refine_file

from conftest import ROOT, noisy, speech_like

NON_UTF8 = os.fsdecode(b"\xe9.wav")  # the name: the single byte 0xE9, then .wav


_identity = sips.as_predictor(lambda x: x.unsqueeze(1), sample_rate=16000)  # gives the mixture back


def _write(path: Path, data: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    """Write ``[C, T]`` audio with the format named by the extension (an open file: any name works)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = sips.audio.extensions()[path.suffix.lower().lstrip(".")]
    with open(path, "wb") as f:
        sf.write(f, np.asarray(data, dtype=np.float32).T, rate, subtype=subtype, format=fmt)
    return path


def _speech(frames: int, rate: int, channels: int = 1) -> np.ndarray:
    """``[channels, frames]`` of noisy speech-like audio at ``rate``, peak 0.8."""
    import soxr

    seconds = frames / rate + 0.1
    rows = [
        soxr.resample(noisy(speech_like(seconds, seed=k), 10.0, seed=k).numpy(), 16000, rate) for k in range(channels)
    ]
    data = np.stack(rows)[:, :frames]
    return 0.8 * data / np.abs(data).max()


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory, zero_prior):
    return zero_prior.save_pretrained(tmp_path_factory.mktemp("prior") / "zero")


def _files(folder: Path) -> list[bytes]:
    return sorted(os.fsencode(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


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
    before = set(target.parent.iterdir()) if target.parent.is_dir() else set()
    result = subprocess.run([sys.executable, "-c", code, str(target)], env=env, capture_output=True)
    assert result.returncode == -9, result.stderr
    return sorted(set(target.parent.iterdir()) - before)  # what the killed write left


def test_the_next_write_of_a_target_removes_what_a_killed_write_left(tmp_path):
    target = tmp_path / "x.wav"
    target.write_bytes(b"old")
    left = _killed_while_writing(target)
    assert (
        target.read_bytes() == b"old" and len(left) == 1 and _atomic.is_temporary(left[0]) and left[0].suffix == ".part"
    )
    old_style = tmp_path / ".x.k2j4h6g8.part.wav"  # the name sips 0.1 gave its temporaries
    old_style.write_bytes(b"RIFF")
    other = tmp_path / ".y.wav.k2j4h6g8.part"  # another target's: not ours to remove
    other.write_bytes(b"RIFF")
    assert set(_atomic.stale_temporaries(target)) == {left[0], old_style}
    _atomic.write_text(target, "new")
    assert target.read_text() == "new" and not left[0].exists() and not old_style.exists() and other.exists()
    assert _atomic.remove_stale([tmp_path / "y.wav"]) == [other] and not other.exists()


# --- 2. the output has exactly the input's frames, at every rate, channel count and format


@pytest.mark.parametrize(
    ("name", "rate", "frames", "channels", "subtype"),
    [
        ("x.wav", 44100, 66151, 1, "PCM_16"),  # the input: 66,150 frames came out
        ("x.wav", 22050, 33077, 2, "FLOAT"),
        ("x.flac", 24000, 36001, 1, "PCM_24"),
        ("x.aiff", 32000, 48003, 1, "PCM_16"),
        ("x.opus", 48000, 72001, 2, "OPUS"),
        ("x.wav", 96000, 144007, 1, "PCM_32"),
        ("x.ogg", 11025, 16539, 1, "VORBIS"),
        ("x.au", 8000, 12001, 1, "ULAW"),
        ("x.caf", 44100, 66149, 1, "PCM_16"),
    ],
)
def test_output_has_exactly_the_input_frames(tmp_path, zero_prior, name, rate, frames, channels, subtype):
    data = _speech(frames, rate, channels)
    src = _write(tmp_path / "in" / name, data, rate, subtype)
    (out,) = refine_file(_identity, src, tmp_path / "out" / name, prior=zero_prior, steps=2)
    info, given = sf.info(out), sf.info(src)
    assert (info.frames, info.samplerate, info.channels, info.subtype) == (frames, rate, channels, subtype)
    assert given.frames == frames
    x, y = sf.read(src, always_2d=True)[0], sf.read(out, always_2d=True)[0]
    for c in range(channels):  # not shifted: the identity predictor with a zero prior gives the input back
        assert np.corrcoef(x[:, c], y[:, c])[0, 1] > 0.95


def test_exact_length_with_estimates_and_a_mono_mix(tmp_path, zero_prior):
    rate, frames = 44100, 66151
    mixture = _speech(frames, rate, 2)
    _write(tmp_path / "m.wav", mixture, rate)
    for k in (1, 2):
        _write(tmp_path / f"e_s{k}.wav", mixture * (0.5 if k == 1 else 0.4), rate)
    estimates = [tmp_path / "e_s1.wav", tmp_path / "e_s2.wav"]
    outs = refine_estimate_files(estimates, tmp_path / "m.wav", tmp_path / "out" / "m.wav", prior=zero_prior, steps=2)
    assert [sf.info(p).frames for p in outs] == [frames, frames]
    (mixed,) = refine_file(
        _identity, tmp_path / "m.wav", tmp_path / "mix" / "m.wav", prior=zero_prior, steps=2, channels="mix"
    )
    assert (sf.info(mixed).frames, sf.info(mixed).channels) == (frames, 1)


# --- 1. names that are not UTF-8; no per-file exception ever escapes a corpus run


def test_non_utf8_names_are_read_and_written_with_their_bytes(tmp_path, prior_dir, capsys):
    _write(tmp_path / "IN" / NON_UTF8, _speech(24000, 16000))
    _write(tmp_path / "IN" / "z.wav", _speech(24000, 16000))
    args = ["refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT"), "--prior", str(prior_dir), "--steps", "2"]
    assert main(args) == 0
    assert _files(tmp_path / "OUT") == [b"z.wav", b"\xe9.wav"]
    assert sf.info(os.fsencode(tmp_path / "OUT" / NON_UTF8)).frames == 24000
    assert str(tmp_path / "OUT" / "\\xe9.wav") in capsys.readouterr().out.splitlines()  # printed, escaped
    _write(tmp_path / "EST" / NON_UTF8, _speech(24000, 16000) * 0.5)  # sibling: --estimates
    _write(tmp_path / "EST" / "z.wav", _speech(24000, 16000) * 0.5)
    args = ["refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT2"), "--estimates", str(tmp_path / "EST")]
    assert main([*args, "--prior", str(prior_dir), "--steps", "2"]) == 0
    assert _files(tmp_path / "OUT2") == [b"z.wav", b"\xe9.wav"]


def test_non_utf8_names_in_quality_and_eval(tmp_path, prior_dir, capsys):
    for folder, scale in (("REF", 1.0), ("EST", 0.5)):
        _write(tmp_path / folder / NON_UTF8, _speech(24000, 16000) * scale)
        _write(tmp_path / folder / "z.wav", _speech(24000, 16000, 2)[1:] * scale)
    csv = tmp_path / "q.csv"
    assert main(["quality", str(tmp_path / "REF"), "--prior", str(prior_dir), "--csv", str(csv)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [r.split()[0] for r in rows] == ["file", str(tmp_path / "REF" / "z.wav"), f"{tmp_path}/REF/\\xe9.wav"]
    assert "\\xe9.wav" in csv.read_text()
    args = ["eval", str(tmp_path / "REF"), str(tmp_path / "EST"), "--metrics", "si_sdr", "--csv", str(csv)]
    assert main(args) == 0
    assert "(n = 2)" in capsys.readouterr().out and "\\xe9" in csv.read_text()


def _fail_on(monkeypatch, module, attr: str, name: str) -> None:
    """Make ``module.attr(path, ...)`` raise a non-sips exception for the file called ``name``."""
    original = getattr(module, attr)

    def failing(*args, **kwargs):
        if any(isinstance(a, Path) and a.name == name for a in args):
            raise ZeroDivisionError("a bug")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, attr, failing)


def test_an_unexpected_error_in_one_file_is_one_line_counted_and_the_run_goes_on(
    tmp_path, prior_dir, capsys, monkeypatch
):
    import sips.io.files

    for name in ("a.wav", "b.wav", "c.wav"):
        _write(tmp_path / "IN" / name, _speech(24000, 16000))
        _write(tmp_path / "EST" / name, _speech(24000, 16000) * 0.5)
    _fail_on(monkeypatch, sips.io.files, "refine_file", "b.wav")
    args = ["refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT"), "--prior", str(prior_dir), "--steps", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err.splitlines()
    assert [e for e in err if "error" in e] == [
        f"sips: error: {tmp_path / 'IN' / 'b.wav'}: unexpected ZeroDivisionError: a bug"
    ]
    assert err[-1].startswith("sips: 1 of 3 inputs failed")
    assert _files(tmp_path / "OUT") == [b"a.wav", b"c.wav"]
    _fail_on(monkeypatch, sips.audio, "load_mono", "a.wav")  # siblings: quality and eval
    assert main(["quality", str(tmp_path / "IN"), "--prior", str(prior_dir)]) == 2
    captured = capsys.readouterr()
    assert "a.wav: unexpected ZeroDivisionError: a bug" in captured.err and "1 of 3 files failed" in captured.err
    assert [r.split()[0] for r in captured.out.splitlines()] == [
        "file",
        *(str(tmp_path / "IN" / f"{n}.wav") for n in "bc"),
    ]
    assert main(["eval", str(tmp_path / "IN"), str(tmp_path / "EST"), "--metrics", "si_sdr"]) == 2
    captured = capsys.readouterr()
    assert "sips: error: a: unexpected ZeroDivisionError: a bug" in captured.err
    assert "1 of 3 items could not be scored" in captured.err and "(n = 2)" in captured.out


# --- 4. temporaries left by kill -9 are never taken for audio, and a resumed run removes its own


def test_a_killed_write_leaves_nothing_that_later_runs_trip_over(tmp_path, prior_dir, capsys):
    _write(tmp_path / "IN" / "x.wav", _speech(24000, 16000))
    _write(tmp_path / "IN" / "y.wav", _speech(24000, 16000))
    common = ["--prior", str(prior_dir), "--steps", "2"]
    assert main(["refine", str(tmp_path / "IN" / "x.wav"), "-o", str(tmp_path / "OUT"), *common]) == 0
    (left,) = _killed_while_writing(tmp_path / "OUT" / "y.wav")
    old_style = tmp_path / "OUT" / ".x.k2j4h6g8.part.wav"  # what sips 0.1 left behind
    old_style.write_bytes(b"RIFF")
    assert sips.audio.scan(tmp_path / "OUT") == ([tmp_path / "OUT" / "x.wav"], [])
    capsys.readouterr()
    assert main(["quality", str(tmp_path / "OUT"), *common[:2]]) == 0
    assert main(["refine", str(tmp_path / "OUT"), "-o", str(tmp_path / "OUT2"), *common]) == 0
    assert "error" not in capsys.readouterr().err and _files(tmp_path / "OUT2") == [b"x.wav"]
    assert main(["refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT"), *common]) == 0  # resumed
    assert _files(tmp_path / "OUT") == [b"x.wav", b"y.wav"]  # the stale temporaries are gone


# --- 5. every format libsndfile reads is taken; what is skipped is said once


def test_unsupported_files_are_named_in_one_line(tmp_path, prior_dir, capsys):
    _write(tmp_path / "IN" / "a.wav", _speech(24000, 16000))
    _write(tmp_path / "IN" / "sub" / "b.opus", _speech(24000, 16000), subtype="OPUS")
    (tmp_path / "IN" / "c.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A ")
    (tmp_path / "IN" / "sub" / "notes.txt").write_text("hello")
    common = ["--prior", str(prior_dir)]
    assert main(["refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT"), *common, "--steps", "2"]) == 0
    err = capsys.readouterr().err.splitlines()
    skipped = [line for line in err if "skipped" in line]
    assert len(skipped) == 1 and "2 file(s)" in skipped[0] and "(.m4a, .txt)" in skipped[0]
    assert str(tmp_path / "IN" / "c.m4a") in skipped[0] and "notes.txt" in skipped[0]
    assert _files(tmp_path / "OUT") == [b"a.wav", b"sub/b.opus"]
    assert sf.info(tmp_path / "OUT" / "sub" / "b.opus").subtype == "OPUS"
    assert main(["quality", str(tmp_path / "IN"), *common]) == 0  # siblings: quality and eval say it too
    assert sum("skipped 2 file(s)" in line for line in capsys.readouterr().err.splitlines()) == 1
    _write(tmp_path / "REF" / "a.wav", _speech(24000, 16000) * 0.5)  # eval: clean references, not the inputs
    _write(tmp_path / "REF" / "sub" / "b.opus", _speech(24000, 16000) * 0.5, subtype="OPUS")
    (tmp_path / "REF" / "c.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A ")
    (tmp_path / "REF" / "sub" / "notes.txt").write_text("hello")
    assert main(["eval", str(tmp_path / "REF"), str(tmp_path / "OUT"), "--metrics", "si_sdr"]) == 0
    assert sum("skipped 2 file(s)" in line for line in capsys.readouterr().err.splitlines()) == 1
    (tmp_path / "ONLY").mkdir()
    (tmp_path / "ONLY" / "c.m4a").write_bytes(b"\x00")
    assert main(["quality", str(tmp_path / "ONLY"), *common]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("sips: error: No audio files found in") and "c.m4a" in line


def test_libsndfile_formats_are_discovered_by_extension():
    known = sips.audio.extensions()
    assert {"wav", "flac", "ogg", "opus", "mp3", "aiff", "au", "caf", "w64", "rf64"} <= set(known)
    assert known["opus"] == "OGG" and "m4a" not in known and "txt" not in known
    assert sips.audio.subtype_for(Path("x.opus"), "VORBIS") == "OPUS"  # the extension fixes the codec
    assert sips.audio.subtype_for(Path("x.flac"), "FLOAT") is None  # FLAC holds no float: its default
