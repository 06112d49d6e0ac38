"""Kinds of faults users reported against other speech tools, each tried on sips (issue 22).

One test (or a few) per kind, on synthetic signals: the output folder inside the input folder,
clipping on output, predictors that touch their input, concurrent runs, unwritable places,
Hub cache errors, array layouts in the Python API and ``python -m sips``.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import sips
from sips.cli import main

from conftest import ROOT, noisy, speech_like, write_wav

RATE = 16000


def _mixture(seconds: float = 0.5) -> torch.Tensor:
    return noisy(speech_like(seconds), 10.0)


# --- 3. predictors get a copy, run without autograd, and return n_src sources ---------------------


class _InPlace:
    """Normalises its input in place, as some adapters do."""

    sample_rate, n_src = RATE, 1

    def __call__(self, m):
        m.div_(m.abs().amax(-1, keepdim=True))
        return 0.5 * m[:, None]


class _OnACopy(_InPlace):
    def __call__(self, m):
        return super().__call__(m.clone())


class _RequiresGrad:
    """Returns an estimate that still requires grad (built outside inference mode)."""

    sample_rate, n_src = RATE, 1

    def __init__(self):
        self.weight = torch.ones(1, requires_grad=True)

    def __call__(self, m):
        with torch.inference_mode(False):
            return (m.clone() * self.weight)[:, None]


class _WrongCount:
    """Declares one source, returns two."""

    sample_rate, n_src = RATE, 1

    def __call__(self, m):
        return torch.stack([m, -m], dim=1)


def test_a_predictor_working_in_place_does_not_change_the_mixture(zero_prior):
    mixture = _mixture()
    kept = mixture.clone()
    in_place = sips.refine(_InPlace(), mixture, prior=zero_prior, rescale="gain", steps=2)
    on_copy = sips.refine(_OnACopy(), mixture, prior=zero_prior, rescale="gain", steps=2)
    assert torch.equal(mixture, kept)
    assert torch.allclose(in_place, on_copy)


def test_predictors_run_in_inference_mode():
    seen = []

    class Recording:  # a Predictor of its own, not wrapped by sips.as_predictor
        sample_rate, n_src = RATE, 1

        def __call__(self, m):
            seen.append(torch.is_inference_mode_enabled())
            return m[:, None]

    sips.refine(Recording(), _mixture(), steps=1)
    assert seen and all(seen)


def test_an_estimate_requiring_grad_is_refined_and_postprocessed(tmp_path, zero_prior):
    path = write_wav(tmp_path / "in.wav", _mixture().numpy())
    out = sips.refine(_RequiresGrad(), _mixture(), prior=zero_prior, steps=1, postprocess=True)
    assert not out.requires_grad
    written = sips.files.refine_file(_RequiresGrad(), path, tmp_path / "out.wav", prior=zero_prior, postprocess=True)
    assert [p.name for p in written] == ["out.wav"]


def test_a_predictor_returning_another_number_of_sources_is_one_sentence(tmp_path, capsys):
    with pytest.raises(sips.AdapterError, match=r"declares n_src=1 but returned 2 source"):
        sips.refine(_WrongCount(), _mixture(), steps=1)
    sips.register_adapter("test-wrong-count")(lambda **_: _WrongCount())
    write_wav(tmp_path / "IN" / "x.wav", _mixture().numpy())
    code = main(["refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT"), "--predictor", "test-wrong-count"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "n_src=1" in lines[0], lines
    assert not [p for p in (tmp_path / "OUT").rglob("*") if p.is_file()]


# --- 7. array layouts of the Python API ------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_soundfile_layout_is_named_in_one_sentence(channels):
    stereo = np.stack([_mixture().numpy()] * channels, axis=-1)  # what soundfile.read returns: [T, channels]
    with pytest.raises(sips.AudioError, match=r"looks like \[T, channels\].*x\.T"):
        sips.refine(sips.load_predictor("wiener"), stereo)
    with pytest.raises(sips.AudioError, match=r"looks like \[T, channels\]"):
        sips.quality(torch.from_numpy(stereo))
    with pytest.raises(sips.AudioError, match=r"estimates .* looks like \[T, channels\]"):
        sips.refine_estimates(stereo, stereo[:, 0])


def test_channels_first_arrays_still_work(zero_prior):
    stereo = np.stack([_mixture().numpy()] * 2)  # [channels, T]
    out = sips.refine(lambda m: m, stereo, prior=zero_prior, steps=1)
    assert out.shape == (2, 1, stereo.shape[-1])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_unsigned_integer_arrays_are_refused(dtype):
    offset = ((_mixture().numpy() * 100) + 128).astype(dtype)
    with pytest.raises(sips.AudioError, match=f"unsigned integer dtype {np.dtype(dtype).name}"):
        sips.refine(sips.load_predictor("wiener"), offset)


# --- 8. python -m sips ------------------------------------------------------------------------------


def test_python_dash_m_sips_runs_the_cli():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    version = subprocess.run([sys.executable, "-m", "sips", "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and version.stdout.strip() == f"sips {sips.__version__}", version.stderr
    bad = subprocess.run([sys.executable, "-m", "sips", "refine"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("sips: error:")


# --- 1. the output folder inside the input folder; dangling links ---------------------------------


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_an_output_folder_inside_the_input_is_never_taken_as_input(tmp_path, capsys):
    for name in ("a", "sub/b"):
        write_wav(tmp_path / "rec" / f"{name}.wav", _mixture().numpy())
    args = ["refine", str(tmp_path / "rec"), "-o", str(tmp_path / "rec" / "clean"), "--steps", "1"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0  # the documented way to resume
    assert "skipped 2 input(s) whose outputs exist" in capsys.readouterr().err
    assert _files(tmp_path / "rec") == ["a.wav", "clean/a.wav", "clean/sub/b.wav", "sub/b.wav"]
    # an input inside the output folder is still an input
    assert main(["refine", str(tmp_path / "rec" / "sub"), "-o", str(tmp_path / "rec"), "--steps", "1"]) == 0
    assert "b.wav" in _files(tmp_path / "rec")


@pytest.mark.parametrize("command", ["refine", "quality"])
def test_a_dangling_link_is_named_in_the_skipped_line(command, tmp_path, capsys):
    write_wav(tmp_path / "IN" / "a.wav", _mixture().numpy())
    (tmp_path / "IN" / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (tmp_path / "IN" / "notes.txt").write_text("hello")
    args = [command, str(tmp_path / "IN")] + (
        ["-o", str(tmp_path / "OUT"), "--steps", "1"] if command == "refine" else []
    )
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "skipped 1 link(s) whose target does not exist: " in err and "gone.wav" in err, err
    assert "skipped 1 file(s) whose extension (.txt)" in err


# --- 2. never clip silently on output --------------------------------------------------------------


class _Loud:
    """An enhancer whose estimate peaks above full scale."""

    sample_rate, n_src = RATE, 1

    def __call__(self, m):
        return 1.8 * m[:, None]


sips.register_adapter("test-loud")(lambda **_: _Loud())


def _peak_near_full_scale(seconds: float = 0.5) -> np.ndarray:
    x = _mixture(seconds).numpy()
    return 0.9 * x / np.abs(x).max()  # loudness-limited: no sample at full scale


@pytest.mark.parametrize(
    ("name", "subtype", "source"),
    [
        ("x.wav", "PCM_16", "predictor"),
        ("x.flac", "PCM_24", "predictor"),
        ("x.wav", "PCM_16", "estimates"),
        ("x.ogg", "VORBIS", "predictor"),
    ],
)
def test_outputs_beyond_full_scale_are_scaled_down_with_one_warning(name, subtype, source, tmp_path, capsys):
    mixture = _peak_near_full_scale()
    write_wav(tmp_path / "IN" / name, mixture, subtype=subtype)
    args = ["refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT"), "--steps", "1", "--rescale", "none"]
    if source == "predictor":
        args += ["--predictor", "test-loud"]
    else:
        write_wav(tmp_path / "EST" / name.replace(".ogg", ".wav"), 1.8 * mixture, subtype="FLOAT")
        args += ["--estimates", str(tmp_path / "EST")]
    assert main(args) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sips: warning:")]
    assert len(warned) == 1 and "would exceed full scale" in warned[0] and name in warned[0], warned
    out, _ = sf.read(tmp_path / "OUT" / name)
    peak = np.abs(out).max()
    assert 0.9 < peak < (1.0 if subtype != "VORBIS" else 1.05)
    if subtype.startswith("PCM"):
        assert np.count_nonzero(np.abs(out) >= 0.9999) == 0  # not one sample at full scale
    assert np.corrcoef(out, mixture)[0, 1] > 0.9  # scaled, not distorted


def test_float_outputs_keep_their_peak_and_quiet_outputs_say_nothing(tmp_path, capsys):
    write_wav(tmp_path / "IN" / "loud.wav", _peak_near_full_scale(), subtype="FLOAT")
    write_wav(tmp_path / "IN" / "quiet.wav", 0.3 * _peak_near_full_scale())
    args = ["refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT"), "--steps", "1", "--rescale", "none"]
    assert main([*args, "--predictor", "test-loud"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert np.abs(sf.read(tmp_path / "OUT" / "loud.wav")[0]).max() > 1.2  # float holds it


def test_audio_write_scales_instead_of_clipping(tmp_path):
    loud = 1.5 * _peak_near_full_scale()
    with pytest.warns(sips.ClippingWarning, match=r"scaled by -\d"):
        sips.audio.write(tmp_path / "x.flac", loud, RATE)
    out, _ = sf.read(tmp_path / "x.flac")
    assert np.abs(out).max() == pytest.approx(sips.audio.LIMIT_PEAK, abs=1e-4)
    assert np.allclose(out, loud * sips.audio.LIMIT_PEAK / np.abs(loud).max(), atol=1e-4)


# --- 4. two runs on one output folder ----------------------------------------------------------------


def test_a_temporary_another_writer_holds_is_not_stale(tmp_path):
    from sips import _atomic

    target = tmp_path / "x.wav"
    dead = tmp_path / ".x.wav.abcd1234.part"  # left by a killed process: nobody holds it
    dead.write_bytes(b"half")
    with _atomic.atomic_path(target) as tmp:
        assert not dead.exists()  # removed as stale before the write
        open(tmp, "wb").write(b"data")
        assert _atomic.remove_stale([target]) == []  # what a second run does meanwhile
        assert os.path.exists(tmp)
    assert target.read_bytes() == b"data" and _files(tmp_path) == ["x.wav"]


def test_a_claim_is_exclusive_and_a_dead_claim_is_taken_over(tmp_path):
    from sips import _atomic

    target = tmp_path / "out" / "x.wav"
    first = _atomic.claim(target)
    assert first is not None and _atomic.claim(target) is None
    assert _atomic.remove_stale([target]) == []  # a live claim is not stale
    first.release()
    assert _files(tmp_path) == []
    (tmp_path / "out" / ".x.wav.inflight.part").write_bytes(b"")  # a claim whose run was killed
    again = _atomic.claim(target)
    assert again is not None
    again.release()


def test_an_input_another_run_is_refining_is_left_to_it(tmp_path, capsys):
    from sips import _atomic

    for name in ("a", "b"):
        write_wav(tmp_path / "IN" / f"{name}.wav", _mixture().numpy())
    args = ["refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT"), "--steps", "1"]
    other = _atomic.claim(tmp_path / "OUT" / "a.wav")  # the other run, refining a.wav now
    assert main(args) == 0
    assert "skipped 1 input(s) that another sips run" in capsys.readouterr().err
    assert _files(tmp_path / "OUT") == [".a.wav.inflight.part", "b.wav"]
    other.release()
    assert main(args) == 0 and _files(tmp_path / "OUT") == ["a.wav", "b.wav"]
    assert "skipped 1 input(s) whose outputs exist" in capsys.readouterr().err


def test_two_runs_started_together_both_succeed(tmp_path):
    for k in range(6):
        write_wav(tmp_path / "IN" / f"x{k}.wav", noisy(speech_like(0.3, seed=k), 10.0).numpy())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "sips", "refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT")]
    runs = [subprocess.Popen([*command, "--steps", "1"], stderr=subprocess.PIPE, text=True, env=env) for _ in "ab"]
    errors = [run.communicate()[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert _files(tmp_path / "OUT") == [f"x{k}.wav" for k in range(6)]


# --- 5. unwritable places: said at once, with the place and the cause -----------------------------

LOADED: list[str] = []


@sips.register_adapter("test-loaded-22")
def _loaded(**_):
    LOADED.append("loaded")
    return sips.load_predictor("wiener")


def _refine_args(tmp_path, out="OUT"):
    return ["refine", str(tmp_path / "IN"), "-o", str(tmp_path / out), "--steps", "1", "--predictor", "test-loaded-22"]


def _inputs(tmp_path, names=("a", "b")):
    for name in names:
        write_wav(tmp_path / "IN" / f"{name}.wav", _mixture().numpy())


def _one_error(code, capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("sips: error: "), lines
    return lines[0]


def _full_disk(monkeypatch, under):
    """libsndfile's 'System error' for writes under ``under``, whose file system has no space left."""
    real_write, real_statvfs, under = sf.SoundFile.write, os.statvfs, str(under)

    def write(self, data):
        if os.fsdecode(self.name).startswith(under):
            raise sf.LibsndfileError(2, "Error writing: ")
        return real_write(self, data)

    def statvfs(path):
        result = real_statvfs(path)
        if os.fsdecode(path).startswith(under):
            return os.statvfs_result((*result[:4], 0, *result[5:]))  # f_bavail = 0
        return result

    monkeypatch.setattr(sf.SoundFile, "write", write)
    monkeypatch.setattr(os, "statvfs", statvfs)


@pytest.mark.parametrize(
    ("setup", "out", "fragment"),
    [
        (lambda t: (t / "OUT").write_text("a file"), "OUT", "it is a file, not a folder"),
        (lambda t: None, "clean.wav", "has an audio file extension"),
        (lambda t: (t / "file").write_text("x"), "file/OUT", "Not a directory"),
    ],
    ids=["out-is-a-file", "out-named-like-audio", "out-below-a-file"],
)
def test_an_unusable_output_folder_is_refused_before_any_model_loads(setup, out, fragment, tmp_path, capsys):
    _inputs(tmp_path)
    setup(tmp_path)
    LOADED.clear()
    line = _one_error(main(_refine_args(tmp_path, out)), capsys)
    assert fragment in line and out.split("/")[0] in line, line
    assert LOADED == [] and not (tmp_path / "clean.wav").exists()


def test_a_read_only_output_folder_is_said_before_any_model_loads(tmp_path, capsys, monkeypatch):
    import errno
    import tempfile

    _inputs(tmp_path)
    real = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(str(tmp_path / "OUT")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    LOADED.clear()
    line = _one_error(main(_refine_args(tmp_path)), capsys)
    assert "Read-only file system" in line and "output folder (-o)" in line and LOADED == []


def test_a_full_disk_under_the_output_says_no_space_left(tmp_path, capsys, monkeypatch):
    _inputs(tmp_path, ["a"])
    (tmp_path / "OUT").mkdir()
    _full_disk(monkeypatch, tmp_path / "OUT")
    line = _one_error(main(_refine_args(tmp_path)), capsys)
    assert "Cannot write" in line and "No space left on device" in line, line
    assert _files(tmp_path / "OUT") == []


def test_a_full_temporary_folder_is_not_blamed_on_the_input(tmp_path, capsys, monkeypatch):
    import tempfile

    _inputs(tmp_path, ["a"])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    _full_disk(monkeypatch, scratch)
    line = _one_error(main(_refine_args(tmp_path)), capsys)
    assert "No space left on device" in line and "TMPDIR" in line and "Cannot read" not in line, line
    with pytest.raises(sips.OutputError, match="TMPDIR"):
        sips.files.refine_file(sips.load_predictor("wiener"), tmp_path / "IN" / "a.wav", tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "IN" / "a.wav"))  # TMPDIR naming a file
    line = _one_error(main(_refine_args(tmp_path)), capsys)
    assert "temporary folder (TMPDIR)" in line and "not a folder" in line, line


@pytest.mark.parametrize("command", ["quality", "eval"])
def test_an_unwritable_csv_is_said_before_any_work(command, tmp_path, capsys):
    _inputs(tmp_path, ["a"])
    (tmp_path / "taken").write_text("a file")
    args = [str(tmp_path / "IN")] * (2 if command == "eval" else 1)
    line = _one_error(main([command, *args, "--csv", str(tmp_path / "taken" / "x.csv")]), capsys)
    assert "--csv" in line and "it is a file, not a folder" in line, line
    line = _one_error(main([command, *args, "--csv", str(tmp_path / "IN")]), capsys)
    assert "it is a folder, not a file" in line, line
