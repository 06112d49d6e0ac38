import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import sips
from sips.cli import main

from conftest import ROOT, noisy, speech_like, write_wav

EXAMPLE = ROOT / "examples" / "noisy.wav"
SIPS = Path(shutil.which("sips") or ROOT / ".venv" / "bin" / "sips")


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory):
    torch.manual_seed(0)
    prior = sips.ScorePrior(model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=())
    for p in prior.parameters():
        if p.dim() == 0:
            p.data.fill_(0.3)
    return prior.save_pretrained(tmp_path_factory.mktemp("prior") / "tiny")


def test_main_job_on_the_example_with_embedded_defaults(tmp_path):
    result = subprocess.run(
        [str(SIPS), "refine", str(EXAMPLE), "-o", str(tmp_path / "out")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    out, rate = sf.read(tmp_path / "out" / "noisy.wav")
    ref, ref_rate = sf.read(EXAMPLE)
    assert rate == ref_rate and out.shape == ref.shape and np.abs(out - ref).max() > 0
    again = tmp_path / "again"
    assert main(["refine", str(EXAMPLE), "-o", str(again)]) == 0
    assert np.array_equal(sf.read(again / "noisy.wav")[0], out)  # same seed: bit-identical


def test_folders_are_refined_recursively_keeping_names_rate_and_channels(tmp_path, prior_dir):
    clean = speech_like(0.5)
    write_wav(tmp_path / "in" / "a.wav", noisy(clean, 5.0).numpy())
    write_wav(
        tmp_path / "in" / "sub" / "b.flac", np.stack([noisy(clean, 5.0, seed=s).numpy() for s in (1, 2)]), rate=22050
    )
    assert (
        main(["refine", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--prior", str(prior_dir), "--steps", "2"])
        == 0
    )
    a = sf.info(tmp_path / "out" / "a.wav")
    b = sf.info(tmp_path / "out" / "sub" / "b.flac")
    assert (a.samplerate, a.channels, a.frames) == (16000, 1, 8000)
    assert (b.samplerate, b.channels, b.frames) == (22050, 2, 8000)  # 8000 samples written at 22.05 kHz
    assert not list((tmp_path / "out").rglob("*.part*"))


def test_precomputed_estimates_and_source_suffixes(tmp_path, prior_dir):
    s1, s2 = speech_like(0.5, seed=1), speech_like(0.5, seed=2) * 0.5
    write_wav(tmp_path / "mix" / "m.wav", (s1 + s2).numpy())
    write_wav(tmp_path / "est" / "m_s1.wav", s1.numpy())
    write_wav(tmp_path / "est" / "m_s2.wav", s2.numpy())
    args = ["refine", str(tmp_path / "mix"), "-o", str(tmp_path / "out"), "--estimates", str(tmp_path / "est")]
    assert main([*args, "--prior", str(prior_dir), "--steps", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m_s1.wav", "m_s2.wav"]


def test_kappa_depends_on_seed(tmp_path, prior_dir):
    write_wav(tmp_path / "x.wav", noisy(speech_like(0.5), 5.0).numpy(), subtype="FLOAT")
    outs = []
    for seed in (1, 1, 2):
        out = tmp_path / f"o{len(outs)}"
        main(
            [
                "refine",
                str(tmp_path / "x.wav"),
                "-o",
                str(out),
                "--prior",
                str(prior_dir),
                "--kappa",
                "0.5",
                "--seed",
                str(seed),
                "--steps",
                "3",
            ]
        )
        outs.append(sf.read(out / "x.wav")[0])
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["refine", "missing.wav", "-o", "OUT"], "No such file or folder"),
        (["refine", "IN", "-o", "IN"], "also an input"),
        (["refine", "IN/bad.wav", "-o", "OUT"], "Cannot read"),
        (["refine", "IN/a.wav", "-o", "OUT", "--predictor", "nope"], "Unknown predictor"),
        (["refine", "IN/a.wav", "-o", "OUT", "--prior", "IN"], "no config.json"),
        (["convert", "missing.pt", "missing.json", "-o", "OUT"], "File not found"),
    ],
    ids=["missing-input", "out-is-in", "corrupt", "unknown-adapter", "bad-prior", "convert-missing"],
)
def test_user_errors_exit_2_with_one_sentence_and_no_output(tmp_path, args, message):
    write_wav(tmp_path / "IN" / "a.wav", noisy(speech_like(0.5), 5.0).numpy())
    (tmp_path / "IN" / "bad.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    args = [a.replace("IN", str(tmp_path / "IN")).replace("OUT", str(tmp_path / "OUT")) for a in args]
    result = subprocess.run([str(SIPS), *args], capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "OUT").exists() or not any((tmp_path / "OUT").rglob("*"))


def test_torchrun_two_processes_write_the_same_files_as_one(tmp_path):
    """Sharded over 2 CPU processes with torchrun, each rank takes every second input; the files
    must equal a single process's, bit for bit (same thread count, so the same reductions)."""
    names = ["a", "b", "c", "sub/d", "sub/e"]
    for k, name in enumerate(names):
        write_wav(tmp_path / "IN" / f"{name}.wav", noisy(speech_like(0.6, seed=k), 5.0).numpy())
    common = ["refine", str(tmp_path / "IN"), "--steps", "3", "--kappa", "0.3", "--seed", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([str(SIPS), *common, "-o", str(tmp_path / "ONE")], capture_output=True, text=True, env=env)
    assert single.returncode == 0, single.stderr
    torchrun = Path(sys.executable).with_name("torchrun")
    sharded = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc-per-node",
            "2",
            "--no-python",
            str(SIPS),
            *common,
            "-o",
            str(tmp_path / "TWO"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert sharded.returncode == 0, sharded.stderr
    printed = sorted(line for line in sharded.stdout.splitlines() if line.endswith(".wav"))
    assert printed == sorted(str(tmp_path / "TWO" / f"{n}.wav") for n in names)  # each input done once
    for name in names:
        one, two = (sf.read(tmp_path / d / f"{name}.wav", dtype="int16")[0] for d in ("ONE", "TWO"))
        assert np.array_equal(one, two), name
    assert sorted(p.relative_to(tmp_path / "TWO") for p in (tmp_path / "TWO").rglob("*.wav")) == sorted(
        Path(f"{n}.wav") for n in names
    )


@pytest.mark.parametrize(
    ("name", "rate", "channels", "subtype"),
    [
        ("a.wav", 44100, 2, "PCM_16"),
        ("b.flac", 16000, 1, "PCM_24"),
        ("c.wav", 8000, 1, "FLOAT"),
        ("d.ogg", 48000, 2, "VORBIS"),
        ("e.wav", 16000, 3, "PCM_32"),
        ("f.aiff", 32000, 1, "PCM_16"),
    ],
)
def test_any_rate_channels_and_subtype_come_back_as_they_came(tmp_path, prior_dir, name, rate, channels, subtype):
    import soxr

    sources = [noisy(speech_like(0.8, seed=k), 10.0, seed=k).numpy() for k in range(channels)]
    data = np.stack([soxr.resample(s, 16000, rate) for s in sources])
    write_wav(tmp_path / "in" / name, 0.8 * data / np.abs(data).max(), rate=rate, subtype=subtype)
    assert (
        main(["refine", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--prior", str(prior_dir), "--steps", "2"])
        == 0
    )
    src, out = sf.info(tmp_path / "in" / name), sf.info(tmp_path / "out" / name)
    assert (out.samplerate, out.channels, out.subtype) == (rate, channels, subtype)
    assert out.frames == src.frames  # exactly: cropped or padded after resampling back
    x, _ = sf.read(tmp_path / "in" / name, dtype="float32", always_2d=True)
    y, _ = sf.read(tmp_path / "out" / name, dtype="float32", always_2d=True)
    n = min(len(x), len(y))
    corr = np.corrcoef(x[:n].T, y[:n].T)[:channels, channels:]  # input channel i against output channel j
    assert (corr.argmax(axis=1) == np.arange(channels)).all()  # every channel stays in its place


def test_channels_mix_writes_mono(tmp_path, prior_dir):
    stereo = np.stack([noisy(speech_like(0.5, seed=k), 10.0).numpy() for k in range(2)])
    write_wav(tmp_path / "in" / "s.wav", stereo, rate=22050)
    args = ["refine", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--prior", str(prior_dir), "--steps", "2"]
    assert main([*args, "--channels", "mix"]) == 0
    info = sf.info(tmp_path / "out" / "s.wav")
    assert (info.channels, info.samplerate) == (1, 22050)


def _options(parser=None):
    """(subcommand, action) for every option and argument of every subcommand."""
    from sips.cli import build_parser

    parser = parser or build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                yield name, sub, action


def test_every_option_has_a_sentence_and_its_default():
    missing = []
    for name, sub, action in _options():
        text = sub._get_formatter()._get_help_string(action)
        flag = action.option_strings[-1] if action.option_strings else action.dest
        if len(text.split()) < 2:
            missing.append(f"sips {name} {flag}: no help")
        elif action.option_strings and not action.required and action.default is not False and "default" not in text:
            missing.append(f"sips {name} {flag}: no default in {text!r}")
    assert missing == []
    assert len(list(_options())) > 60


def test_version_and_help_exit_0(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sips {sips.__version__}"
    assert main(["eval", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "REF_DIR" in help_text and "folder of clean references" in help_text and "permutation" in help_text
    assert "%%" not in help_text


def test_commands_named_in_the_refine_help_exist(capsys):
    """The help points to `sips predictors` and `sips priors`; both run and list what they name."""
    import re

    assert main(["refine", "--help"]) == 0
    named = sorted(set(re.findall(r"`sips (\w+)`", " ".join(capsys.readouterr().out.split()))))
    assert named == ["predictors", "priors"]
    assert main(["predictors"]) == 0
    listed = capsys.readouterr().out.split()
    assert {"wiener", "sips-prior", "semamba", "sips-semamba"} <= set(listed)
    assert main(["priors"]) == 0
    assert "sips-cpu-16k" in capsys.readouterr().out


def test_a_missing_builtin_adapter_names_its_distribution(tmp_path, monkeypatch, capsys):
    from sips.prediction import predictors

    real = predictors._entry_points
    monkeypatch.setattr(predictors, "_entry_points", lambda: {k: v for k, v in real().items() if k != "semamba"})
    monkeypatch.delitem(predictors._registry, "semamba", raising=False)
    write_wav(tmp_path / "x.wav", noisy(speech_like(0.5), 5.0).numpy())
    assert main(["refine", str(tmp_path / "x.wav"), "-o", str(tmp_path / "out"), "--predictor", "semamba"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "comes with the distribution sips-semamba, which is not installed (pip install sips-semamba)" in line
    assert main(["predictors"]) == 0
    captured = capsys.readouterr()
    assert "pip install sips-semamba" in captured.err
    (row,) = [line for line in captured.out.splitlines() if line.startswith("semamba ")]
    assert row.split()[:5] == ["semamba", "enhance", "16", "kHz", "shipped"]
    assert "not installed: pip install sips-semamba" in row


def test_predictors_lists_task_rate_and_weights_without_importing_adapters():
    """Rows of the built-in adapters come from a table: listing them imports no adapter package."""
    import subprocess

    code = (
        "import sys; from sips.cli import main; main(['predictors']); "
        "print([m for m in sys.modules if m.startswith(('sips_', 'asteroid', 'onnxruntime', 'df'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert lines[-1] == "[]"
    header, *rows = lines[:-1]
    assert header.split() == ["name", "task", "rate", "weights", "distribution", "notes"]
    table = {r.split()[0]: r for r in rows}
    assert "48 kHz" in table["deepfilternet"] and "enhance" in table["deepfilternet"]
    assert "separate" in table["convtasnet"] and "shipped" in table["convtasnet"]
    assert "--checkpoint FILE" in table["flexio"] and "--checkpoint FILE" in table["ncsnpp"]
    assert "--checkpoint FILE" in table["asteroid"] and "none needed" in table["wiener"]


def _in_a_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run ``sips ARGS`` with stderr on a pseudo-terminal; returns (status, terminal text, stdout)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 24 rows, 120 columns
    proc = subprocess.Popen([str(SIPS), *args], stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read().decode()
    os.close(master)
    return proc.wait(timeout=120), seen.decode(errors="replace"), out


def test_progress_on_a_terminal_and_nothing_extra_otherwise(tmp_path, prior_dir):
    """60 s in 10 s windows (7 of them) x 2 steps: a bar to 14 on a terminal. Without a terminal the
    written path and the one summary line are printed, with --quiet only the path (checked on 3 s in
    1 s windows, to be quick)."""
    from sips.method.chunks import window_starts

    write_wav(tmp_path / "long.wav", noisy(speech_like(60.0), 10.0).numpy())
    total = len(window_starts(60 * 16000, 10 * 16000, 16000)) * 2
    code, terminal, out = _in_a_terminal(
        ["refine", str(tmp_path / "long.wav"), "--prior", str(prior_dir), "--steps", "2", "-o", str(tmp_path / "tty")]
    )
    assert code == 0, terminal
    assert f"/{total} " in terminal and "refine:" in terminal and "step" in terminal, terminal
    assert out.strip() == str(tmp_path / "tty" / "long.wav")

    write_wav(tmp_path / "short.wav", noisy(speech_like(3.0), 10.0).numpy())
    short = [
        str(tmp_path / "short.wav"),
        "--prior",
        str(prior_dir),
        "--steps",
        "2",
        "--chunk-seconds",
        "1",
        "--overlap-seconds",
        "0.2",
    ]
    code, terminal, _ = _in_a_terminal(["refine", *short, "-o", str(tmp_path / "quiet"), "--quiet"])
    assert code == 0 and terminal.strip() == "", terminal
    plain = subprocess.run([str(SIPS), "refine", *short, "-o", str(tmp_path / "pipe")], capture_output=True, text=True)
    assert plain.returncode == 0 and plain.stdout.strip() == str(tmp_path / "pipe" / "short.wav")
    (summary,) = plain.stderr.strip().splitlines()
    assert summary.startswith("sips: refined 1 file (3.00 s of audio) with predictor ") and "RTF" in summary
    code, terminal, out = _in_a_terminal(["quality", str(tmp_path / "short.wav"), "--prior", str(prior_dir)])
    assert code == 0 and "quality:" in terminal and "/8 " in terminal, terminal  # 8 levels x 1 probe
    assert str(tmp_path / "short.wav") in out
