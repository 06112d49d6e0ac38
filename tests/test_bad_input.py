"""Every input a user can get wrong: one clear sentence, exit status 2, no partial output.

The CLI runs in-process (``sips.cli.main``) so that the cases stay fast and can simulate
failures of the machine (no permission, disk full, Ctrl-C) with monkeypatch.
"""

import argparse
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import sips
from sips.cli import main

from conftest import noisy, speech_like, write_wav

RATE = 16000


def _good(path: Path, seconds: float = 0.5, **kw) -> Path:
    return write_wav(path, noisy(speech_like(seconds), 10.0).numpy(), **kw)


def _raw(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _float_wav(path: Path, data: np.ndarray) -> Path:
    return write_wav(path, data, subtype="FLOAT")


def _prior_dir(root: Path, files: dict[str, bytes | str]) -> Path:
    folder = root / "prior"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def _tiny_prior_config() -> str:
    cfg = sips.PriorConfig(model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=())
    return json.dumps({"library": "sips", "class_name": "ScorePrior", **cfg.to_dict()})


def _tiny_prior_weights(tmp: Path) -> bytes:
    prior = sips.ScorePrior(model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=())
    prior.save_pretrained(tmp / "tiny")
    return (tmp / "tiny" / "model.safetensors").read_bytes()


@sips.register_adapter("test-bad-shape")
def _bad_shape(**_):
    return sips.as_predictor(lambda x: x[:, None, None], sample_rate=RATE)


@sips.register_adapter("test-bad-length")
def _bad_length(**_):
    return sips.as_predictor(lambda x: x[:, : x.shape[-1] // 2], sample_rate=RATE)


@sips.register_adapter("test-nan")
def _nan(**_):
    return sips.as_predictor(lambda x: x * float("nan"), sample_rate=RATE)


@sips.register_adapter("test-crash")
def _crash(**_):
    def forward(x):  # a bug in someone's adapter, not a sips error
        raise ZeroDivisionError("division by zero")

    return sips.as_predictor(forward, sample_rate=RATE)


def _non_utf8(folder: Path) -> Path:
    """A corrupt file whose name is the byte 0xE9 and ``.wav``."""
    return _raw(folder / os.fsdecode(b"\xe9.wav"), b"RIFF....WAVEfmt garbage")


def _namespace_checkpoint(path: Path) -> Path:
    torch.save({"generator": {"w": torch.zeros(2)}, "args": argparse.Namespace()}, path)
    return path


# (setup(tmp) -> extra CLI args, the CLI args with IN/OUT placeholders, a fragment of the message)
CASES = {
    "empty-file": (lambda t: _raw(t / "IN" / "x.wav", b""), ["refine", "IN/x.wav"], "Cannot read"),
    "zero-length": (lambda t: write_wav(t / "IN" / "x.wav", np.zeros(0)), ["refine", "IN/x.wav"], "no audio samples"),
    "shorter-than-a-frame": (
        lambda t: write_wav(t / "IN" / "x.wav", 0.1 * np.ones(100)),
        ["refine", "IN/x.wav"],
        "too short",
    ),
    "all-zero": (lambda t: write_wav(t / "IN" / "x.wav", np.zeros(RATE)), ["refine", "IN/x.wav"], "digital silence"),
    "nan-samples": (
        lambda t: _float_wav(t / "IN" / "x.wav", np.r_[np.ones(RATE) * 0.1, np.nan]),
        ["refine", "IN/x.wav"],
        "NaN or infinite",
    ),
    "inf-samples": (
        lambda t: _float_wav(t / "IN" / "x.wav", np.r_[np.ones(RATE) * 0.1, np.inf]),
        ["refine", "IN/x.wav"],
        "NaN or infinite",
    ),
    "clipped": (
        lambda t: write_wav(t / "IN" / "x.wav", np.sign(np.sin(np.arange(RATE) / 5.0))),
        ["refine", "IN/x.wav"],
        "clipped",
    ),
    "corrupt-header": (
        lambda t: _raw(t / "IN" / "x.wav", b"RIFF....WAVEfmt garbage"),
        ["refine", "IN/x.wav"],
        "Cannot read",
    ),
    "truncated-header": (
        lambda t: _raw(t / "IN" / "x.wav", _good(t / "tmp.wav").read_bytes()[:30]),
        ["refine", "IN/x.wav"],
        "Cannot read",
    ),
    "unsupported-format": (
        lambda t: _raw(t / "IN" / "x.wav", b"\x89PNG\r\n\x1a\n" + bytes(200)),
        ["refine", "IN/x.wav"],
        "Cannot read",
    ),
    "unwritable-extension": (
        lambda t: _raw(t / "IN" / "x.txt", b"text"),
        ["refine", "IN/x.txt"],
        "Cannot write audio with extension .txt",
    ),
    "missing-input": (lambda t: None, ["refine", "IN/none.wav"], "No such file or folder"),
    "empty-folder": (lambda t: (t / "IN").mkdir(), ["refine", "IN"], "No audio files found"),
    "unknown-adapter": (lambda t: _good(t / "IN" / "x.wav"), ["refine", "IN/x.wav", "--predictor", "nope"], "Unknown"),
    "predictor-wrong-shape": (
        lambda t: _good(t / "IN" / "x.wav"),
        ["refine", "IN/x.wav", "--predictor", "test-bad-shape"],
        "expected [B, n_src, T]",
    ),
    "predictor-wrong-length": (
        lambda t: _good(t / "IN" / "x.wav"),
        ["refine", "IN/x.wav", "--predictor", "test-bad-length"],
        "samples of difference",
    ),
    "predictor-nan": (
        lambda t: _good(t / "IN" / "x.wav"),
        ["refine", "IN/x.wav", "--predictor", "test-nan"],
        "NaN or infinite",
    ),
    "prior-missing-weights": (
        lambda t: (_good(t / "IN" / "x.wav"), _prior_dir(t, {"config.json": _tiny_prior_config()})),
        ["refine", "IN/x.wav", "--prior", "TMP/prior"],
        "model.safetensors",
    ),
    "prior-missing-config": (
        lambda t: (_good(t / "IN" / "x.wav"), _prior_dir(t, {"model.safetensors": _tiny_prior_weights(t)})),
        ["refine", "IN/x.wav", "--prior", "TMP/prior"],
        "config.json",
    ),
    "prior-truncated-safetensors": (
        lambda t: (
            _good(t / "IN" / "x.wav"),
            _prior_dir(t, {"config.json": _tiny_prior_config(), "model.safetensors": _tiny_prior_weights(t)[:500]}),
        ),
        ["refine", "IN/x.wav", "--prior", "TMP/prior"],
        "safetensors",
    ),
    "prior-pickle-as-safetensors": (
        lambda t: (
            _good(t / "IN" / "x.wav"),
            torch.save({"w": torch.zeros(2)}, t / "pickle.pt"),
            _prior_dir(t, {"config.json": _tiny_prior_config(), "model.safetensors": (t / "pickle.pt").read_bytes()}),
        ),
        ["refine", "IN/x.wav", "--prior", "TMP/prior"],
        "safetensors",
    ),
    "prior-config-of-another-model": (
        lambda t: (
            _good(t / "IN" / "x.wav"),
            _prior_dir(
                t,
                {
                    "config.json": json.dumps({"model_type": "bert", "hidden_size": 768}),
                    "model.safetensors": _tiny_prior_weights(t),
                },
            ),
        ),
        ["refine", "IN/x.wav", "--prior", "TMP/prior"],
        "prior",
    ),
    "out-dir-is-input-dir": (lambda t: _good(t / "IN" / "x.wav"), ["refine", "IN", "-o", "IN"], "also an input"),
    "two-inputs-one-output": (
        lambda t: (_good(t / "IN" / "x.wav"), _good(t / "IN2" / "x.wav")),
        ["refine", "IN/x.wav", "IN2/x.wav"],
        "same output",
    ),
    "output-link-leaves-out-dir": (
        lambda t: (
            _good(t / "IN" / "sub" / "x.wav"),
            (t / "OUT").mkdir(),
            os.symlink(t / "elsewhere", t / "OUT" / "sub"),
        ),
        ["refine", "IN"],
        "outside",
    ),
    "estimates-missing": (
        lambda t: (_good(t / "IN" / "x.wav"), (t / "EST").mkdir()),
        ["refine", "IN/x.wav", "--estimates", "TMP/EST"],
        "No estimate for",
    ),
    "estimates-channel-count": (
        lambda t: (_good(t / "IN" / "x.wav"), write_wav(t / "EST" / "x.wav", np.zeros((2, 8000)) + 0.1)),
        ["refine", "IN/x.wav", "--estimates", "TMP/EST"],
        "channel(s)",
    ),
    "estimates-length": (
        lambda t: (_good(t / "IN" / "x.wav"), _good(t / "EST" / "x.wav", seconds=0.25)),
        ["refine", "IN/x.wav", "--estimates", "TMP/EST"],
        "samples of difference",
    ),
    "predictor-option-with-estimates": (
        lambda t: (_good(t / "IN" / "x.wav"), _good(t / "EST" / "x.wav")),
        ["refine", "IN/x.wav", "--estimates", "TMP/EST", "--n-src", "2"],
        "apply to --predictor",
    ),
    "window-too-short": (
        lambda t: _good(t / "IN" / "x.wav"),
        ["refine", "IN/x.wav", "--chunk-seconds", "0.01"],
        "--chunk-seconds 0.01 must exceed",
    ),
    "float16-on-cpu": (
        lambda t: _good(t / "IN" / "x.wav"),
        ["refine", "IN/x.wav", "--dtype", "float16"],
        "CUDA only",
    ),
    "non-utf8-name": (lambda t: _non_utf8(t / "IN"), ["refine", "IN"], "\\xe9.wav as audio"),
    "only-unreadable-formats": (
        lambda t: (_raw(t / "IN" / "a.m4a", b"ftypM4A"), _raw(t / "IN" / "notes.txt", b"hello")),
        ["refine", "IN"],
        "names no audio format libsndfile",
    ),
    "predictor-crashes": (
        lambda t: _good(t / "IN" / "x.wav"),
        ["refine", "IN/x.wav", "--predictor", "test-crash"],
        "unexpected ZeroDivisionError",
    ),
    "checkpoint-with-python-object": (
        lambda t: (_good(t / "IN" / "x.wav"), _namespace_checkpoint(t / "g.pth")),
        ["refine", "IN/x.wav", "--predictor", "semamba", "--checkpoint", "TMP/g.pth"],
        "(argparse.Namespace)",
    ),
    "convert-with-python-object": (
        lambda t: (_namespace_checkpoint(t / "SIPS.pt"), _raw(t / "SIPS_config.json", b"{}")),
        ["convert", "TMP/SIPS.pt", "TMP/SIPS_config.json", "-o", "TMP/OUT"],
        "(argparse.Namespace)",
    ),
    "quality-corrupt": (
        lambda t: _raw(t / "IN" / "x.wav", b"RIFF....WAVEfmt garbage"),
        ["quality", "IN/x.wav"],
        "Cannot read",
    ),
    "quality-non-utf8-name": (lambda t: _non_utf8(t / "IN"), ["quality", "IN"], "\\xe9.wav as audio"),
    "quality-only-unreadable-formats": (
        lambda t: _raw(t / "IN" / "a.m4a", b"ftypM4A"),
        ["quality", "IN"],
        "a.m4a",
    ),
    "eval-corrupt-estimate": (
        lambda t: (_good(t / "REF" / "x.wav"), _raw(t / "EST" / "x.wav", b"RIFF....WAVEfmt garbage")),
        ["eval", "TMP/REF", "TMP/EST", "--metrics", "si_sdr"],
        "x: Cannot read",
    ),
    "eval-non-utf8-name": (
        lambda t: (_good(t / "REF" / "x.wav").rename(t / "REF" / os.fsdecode(b"\xe9.wav")), _non_utf8(t / "EST")),
        ["eval", "TMP/REF", "TMP/EST", "--metrics", "si_sdr"],
        "\\xe9.wav as audio",
    ),
    "eval-missing-folder": (lambda t: _good(t / "REF" / "x.wav"), ["eval", "TMP/REF", "TMP/none"], "Folder not found"),
}


def _run(tmp_path: Path, args: list[str], capsys) -> tuple[int, list[str]]:
    args = [a.replace("IN", str(tmp_path / "IN")).replace("TMP", str(tmp_path)) for a in args]
    if args[0] == "refine":
        args += ["--steps", "2"] + ([] if "-o" in args else ["-o", str(tmp_path / "OUT")])
    code = main(args)
    return code, capsys.readouterr().err.strip().splitlines()


def _outputs(tmp_path: Path) -> list[Path]:
    out = tmp_path / "OUT"
    return [p for p in out.rglob("*") if p.is_file()] if out.is_dir() else []


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_one_sentence_exit_2_and_no_output(case, tmp_path, capsys):
    setup, args, fragment = CASES[case]
    setup(tmp_path)
    code, lines = _run(tmp_path, args, capsys)
    assert code == 2, lines
    assert len(lines) == 1 and fragment in lines[0] and lines[0].startswith("sips: error: "), lines
    assert _outputs(tmp_path) == []
    assert not (tmp_path / "elsewhere").exists()


def _fail_output_writes(monkeypatch, err: OSError) -> None:
    original = sf.SoundFile.__init__

    def refuse(self, file, mode="r", *args, **kwargs):
        if "w" in mode and ".part" in str(file):
            raise err
        return original(self, file, mode, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "__init__", refuse)


@pytest.mark.parametrize(
    ("err", "fragment"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
        (OSError(errno.ENOSPC, "No space left on device"), "No space left"),
    ],
    ids=["no-write-permission", "disk-full"],
)
def test_unwritable_output_is_one_sentence_and_leaves_nothing(err, fragment, tmp_path, capsys, monkeypatch):
    _good(tmp_path / "IN" / "x.wav")
    _fail_output_writes(monkeypatch, err)
    code, lines = _run(tmp_path, ["refine", "IN/x.wav"], capsys)
    assert code == 2 and len(lines) == 1 and fragment in lines[0] and "Cannot write" in lines[0], lines
    assert _outputs(tmp_path) == []  # neither the output nor its temporary file


def test_a_bad_file_in_a_corpus_is_reported_and_the_rest_written(tmp_path, capsys):
    for name in ("a", "b", "c"):
        _good(tmp_path / "IN" / f"{name}.wav")
    _raw(tmp_path / "IN" / "bad.wav", b"")
    code, lines = _run(tmp_path, ["refine", "IN"], capsys)
    assert code == 2
    assert any("bad.wav" in line and "Cannot read" in line for line in lines)
    assert "1 of 4 inputs failed" in lines[-1]
    assert sorted(p.name for p in _outputs(tmp_path)) == ["a.wav", "b.wav", "c.wav"]


def test_ctrl_c_keeps_finished_files_leaves_no_half_file_and_resumes(tmp_path, capsys, monkeypatch):
    for name in ("a", "b", "c", "d"):
        _good(tmp_path / "IN" / f"{name}.wav")
    import sips.io.files

    written = []
    original = sips.io.files._write_all

    def interrupted(groups, converted, digest):
        if len(written) == 2:  # Ctrl-C while the third output is being written
            original_init = sf.SoundFile.write

            def stop(self, data):
                raise KeyboardInterrupt

            monkeypatch.setattr(sf.SoundFile, "write", stop)
            try:
                return original(groups, converted, digest)
            finally:
                monkeypatch.setattr(sf.SoundFile, "write", original_init)
        written.append(groups[0].paths[0].name)
        return original(groups, converted, digest)

    monkeypatch.setattr(sips.io.files, "_write_all", interrupted)
    assert main(["refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT"), "--steps", "2"]) == 130
    assert sorted(p.name for p in _outputs(tmp_path)) == ["a.wav", "b.wav"]  # no .part file left
    first = {p.name: p.stat().st_mtime_ns for p in _outputs(tmp_path)}
    monkeypatch.setattr(sips.io.files, "_write_all", original)
    capsys.readouterr()
    assert main(["refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT"), "--steps", "2"]) == 0
    assert sorted(p.name for p in _outputs(tmp_path)) == ["a.wav", "b.wav", "c.wav", "d.wav"]
    assert all(p.stat().st_mtime_ns == first[p.name] for p in _outputs(tmp_path) if p.name in first)  # skipped
    assert "skipped 2" in capsys.readouterr().err
    assert main(["refine", str(tmp_path / "IN"), "-o", str(tmp_path / "OUT"), "--steps", "2", "--overwrite"]) == 0
    assert all(p.stat().st_mtime_ns != first[p.name] for p in _outputs(tmp_path) if p.name in first)


LOADED: list[str] = []


@sips.register_adapter("test-loaded")
def _loaded(**_):
    LOADED.append("loaded")
    return sips.load_predictor("wiener")


# Bad options, each with inputs that do not exist: the option must be refused first, in one line,
# before any file is read or any model loaded (the adapter "test-loaded" records being built).
REFINE = ["refine", "IN/none.wav", "-o", "TMP/OUT", "--predictor", "test-loaded"]
OPTION_CASES = {
    "kappa-negative": ([*REFINE, "--kappa", "-1"], "--kappa: expected a number >= 0, got '-1'"),
    "kappa-nan": ([*REFINE, "--kappa", "nan"], "--kappa: expected a number >= 0, got 'nan'"),
    "method-unknown": ([*REFINE, "--method", "rk4"], "--method: invalid choice: 'rk4'"),
    "heun-with-kappa": ([*REFINE, "--method", "heun", "--kappa", "0.3"], "use --kappa 0 or --method euler"),
    "steps-zero": ([*REFINE, "--steps", "0"], "--steps: expected an integer >= 1, got '0'"),
    "steps-text": ([*REFINE, "--steps", "many"], "--steps: expected an integer >= 1, got 'many'"),
    "seed-negative": ([*REFINE, "--seed", "-1"], "--seed: expected an integer >= 0"),
    "chunk-negative": ([*REFINE, "--chunk-seconds", "-2"], "--chunk-seconds: expected a number >= 0"),
    "overlap-too-long": ([*REFINE, "--chunk-seconds", "2", "--overlap-seconds", "3"], "--overlap-seconds 3.0 must lie"),
    "chunk-batch-zero": ([*REFINE, "--chunk-batch", "0"], "--chunk-batch: expected an integer >= 1"),
    "n-src-zero": ([*REFINE, "--n-src", "0"], "--n-src: expected an integer >= 1"),
    "ensemble-without-kappa": ([*REFINE, "--ensemble", "4"], "--ensemble needs --kappa > 0"),
    "device-gpu": ([*REFINE, "--device", "gpu"], "The device 'gpu' is not available here; available: cpu"),
    "device-absent-cuda": ([*REFINE, "--device", "cuda:99"], "The device 'cuda:99' is not available here"),
    "quality-seed": (["quality", "IN/none.wav", "--seed", "-3"], "--seed: expected an integer >= 0"),
    "quality-device": (["quality", "IN/none.wav", "--device", "gpu"], "The device 'gpu' is not available"),
    "eval-metric": (["eval", "TMP/REF", "TMP/EST", "--metrics", "mos"], "--metrics: invalid choice: 'mos'"),
    "train-steps": (["train", "IN", "-o", "TMP/RUN", "--steps", "0"], "--steps: expected an integer >= 1"),
    "train-lr": (["train", "IN", "-o", "TMP/RUN", "--lr", "inf"], "--lr: expected a number > 0"),
    "train-ema": (["train", "IN", "-o", "TMP/RUN", "--ema", "1"], "--ema: expected a number in [0, 1)"),
    "train-segment": (["train", "IN", "-o", "TMP/RUN", "--segment-seconds", "0"], "--segment-seconds: expected a"),
    "train-channel-mult": (["train", "IN", "-o", "TMP/RUN", "--channel-mult", "1,0"], "integers >= 1, got '1,0'"),
    "train-threads": (["train", "IN", "-o", "TMP/RUN", "--threads", "0"], "--threads: expected an integer >= 1"),
    "train-minutes": (["train", "IN", "-o", "TMP/RUN", "--max-minutes", "-5"], "--max-minutes: expected a number > 0"),
}
if not torch.cuda.is_available():
    OPTION_CASES["device-cuda"] = ([*REFINE, "--device", "cuda"], "The device 'cuda' is not available here")


@pytest.mark.parametrize("case", list(OPTION_CASES), ids=list(OPTION_CASES))
def test_bad_option_is_refused_first_in_one_line(case, tmp_path, capsys):
    args, fragment = OPTION_CASES[case]
    LOADED.clear()
    args = [a.replace("IN", str(tmp_path / "IN")).replace("TMP", str(tmp_path)) for a in args]
    code = main(args)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and captured.out == "", lines
    assert len(lines) == 1 and lines[0].startswith("sips: error: ") and fragment in lines[0], lines
    assert LOADED == [] and not any(tmp_path.iterdir())  # nothing loaded, nothing written


@pytest.mark.parametrize(
    "options",
    [
        {"method": "rk4"},
        {"kappa": -1.0},
        {"kappa": float("nan")},
        {"steps": 0},
        {"seed": -1},
        {"device": "gpu"},
        {"device": "cuda:99"},
        {"ensemble": 0},
    ],
    ids=str,
)
def test_bad_options_in_python_are_option_errors_before_the_predictor_runs(options):
    calls = []

    def predictor(x):
        calls.append(x)
        return x

    with pytest.raises(sips.OptionError):
        sips.refine(predictor, noisy(speech_like(0.5), 10.0), **options)
    assert calls == []


@pytest.mark.parametrize("options", [{"seed": -1}, {"device": "gpu"}], ids=str)
def test_bad_quality_options_in_python_are_option_errors(options):
    with pytest.raises(sips.OptionError):
        sips.quality(speech_like(0.5), **options)
