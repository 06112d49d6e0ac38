"""Messages name arguments the way the user passes them: ``--checkpoint FILE`` in the ``sips``
command, ``checkpoint=`` in Python (:func:`sips.errors.spell`)."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import sips
from sips.cli import main
from sips.errors import command_line_spelling, named, spell

from conftest import ROOT, noisy, speech_like, write_wav

PYTHON_ARGUMENT = re.compile(r"\b[a-z][a-z0-9_]*=(?!=)")
# Message texts that keep a Python spelling on purpose, by file and a fragment of the text, with why.
KEPT = {
    ("sips/method/refine.py", "declares n_src="): "the adapter's attribute, a fault of the adapter's code",
    ("sips/training/corpus.py", "noise_split="): "sips.corpus is a Python API of the benchmarks, not behind the CLI",
    ("adapters/asteroid/sips_asteroid/predictor.py", "backend="): "backend is a Python-only argument",
    ("adapters/asteroid/sips_asteroid/convert.py", "backend="): "backend is a Python-only argument",
    ("adapters/semamba/sips_semamba/config.py", "n_fft="): "keys of the model's config file, as written there",
    ("adapters/semamba/sips_semamba/config.py", "win_size="): "keys of the model's config file, as written there",
    ("adapters/ncsnpp/sips_ncsnpp/config.py", "fir="): "keys of the model's config file, as written there",
    ("adapters/ncsnpp/sips_ncsnpp/config.py", "input_channels="): "keys of the model's config file, as written there",
}


def _message_texts(path: Path) -> list[tuple[int, str]]:
    """The literal text of every exception or warning built in ``path`` (f-string parts joined)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name.endswith(("Error", "Warning")) or name == "warn":
            parts = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            found.append((node.lineno, "".join(parts)))
    return found


def test_no_message_spells_an_argument_in_python_syntax_by_hand():
    """Every sentence that asks for an argument goes through spell()/named(), so the sips command
    says --checkpoint FILE; the texts left with name= are listed in KEPT with the reason."""
    files = sorted((ROOT / "sips").rglob("*.py")) + sorted((ROOT / "adapters").glob("*/sips_*/**/*.py"))
    offending, kept_seen = [], set()
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        for line, text in _message_texts(path):
            if not PYTHON_ARGUMENT.search(text):
                continue
            keys = [key for key in KEPT if key[0] == rel and key[1] in text]
            if keys:
                kept_seen.update(keys)
            else:
                offending.append(f"{rel}:{line}: {text[:100]}")
    assert offending == [], "spell these arguments with sips.errors.spell:\n" + "\n".join(offending)
    assert kept_seen == set(KEPT), f"stale KEPT entries: {set(KEPT) - kept_seen}"


def test_spell_and_named_follow_the_interface():
    assert (spell("checkpoint"), spell("n_src", 3), spell("allow_clipping", True)) == (
        "checkpoint=",
        "n_src=3",
        "allow_clipping=True",
    )
    with command_line_spelling():
        assert (spell("checkpoint"), spell("n_src", 3), spell("allow_clipping", True)) == (
            "--checkpoint FILE",
            "--n-src 3",
            "--allow-clipping",
        )
        assert (spell("config"), spell("method", "euler"), named("chunk_seconds")) == (
            "--predictor-config FILE",
            "--method euler",
            "--chunk-seconds",
        )
    assert named("checkpoint") == "checkpoint"


@pytest.fixture
def mixture_file(tmp_path):
    return str(write_wav(tmp_path / "in" / "mix.wav", noisy(speech_like(0.5), 5.0).numpy()))


CASES = {
    "flexio without weights": (["--predictor", "flexio"], "--checkpoint FILE"),
    "ncsnpp without weights": (["--predictor", "ncsnpp"], "--checkpoint FILE"),
    "asteroid without a checkpoint": (["--predictor", "asteroid"], "needs --checkpoint FILE"),
    "a checkpoint for wiener": (["--predictor", "wiener", "--checkpoint", "x.pt"], "it takes no --checkpoint."),
    "n-src of an enhancer": (["--predictor", "semamba", "--n-src", "2"], "--n-src 2 cannot be"),
    "n-src of the Conv-TasNet": (["--predictor", "convtasnet", "--n-src", "3"], "but --n-src 3 was asked"),
    "heun with kappa": (["--method", "heun", "--kappa", "0.3"], "use --kappa 0 or --method euler"),
    "float16 on the CPU": (["--dtype", "float16"], "--dtype float16 runs on CUDA only; use --dtype bfloat16"),
    "a window too short": (["--chunk-seconds", "0.01"], "--chunk-seconds 0.01 must exceed"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_cli_messages_use_cli_syntax(case, mixture_file, tmp_path, capsys):
    extra, fragment = CASES[case]
    out = tmp_path / "out"
    assert main(["refine", mixture_file, "-o", str(out), *extra]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert fragment in line, line
    assert not PYTHON_ARGUMENT.search(line.replace(mixture_file, "")), line
    assert not out.exists()


def test_a_clipped_input_asks_for_the_cli_flag(tmp_path, capsys):
    clipped = np.clip(4 * noisy(speech_like(0.5), 5.0).numpy(), -1, 1)
    src = write_wav(tmp_path / "clipped.wav", clipped)
    assert main(["refine", str(src), "-o", str(tmp_path / "out"), "--predictor", "wiener"]) == 2
    err = capsys.readouterr().err
    assert "pass --allow-clipping to refine it anyway" in err and "allow_clipping" not in err
    with pytest.raises(sips.AudioError, match=r"pass allow_clipping=True to refine"):
        sips.files.refine_file(sips.load_predictor("wiener"), src, tmp_path / "py" / "clipped.wav")


def test_python_keeps_python_syntax():
    with pytest.raises(sips.AdapterError, match=r"needs checkpoint= \(a serialize\(\) package"):
        sips.load_predictor("asteroid")
    with pytest.raises(sips.AdapterError, match="it takes no checkpoint"):
        sips.load_predictor("wiener", checkpoint="x.pt")
    with pytest.raises(sips.OptionError, match=r"use kappa=0 or method='euler'"):
        sips.refine(sips.load_predictor("wiener"), speech_like(0.5), method="heun", kappa=0.3)
