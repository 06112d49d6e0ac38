"""sips.weights.load_torch_checkpoint: the one reader of foreign .pt/.pth/.ckpt files.

A file holding Python objects besides tensors is refused in one sentence that names the objects'
types and says how to re-save the weights alone, never advising to unpickle; the same sentence
comes from every adapter, from `sips convert` and from the CLI (exit 2, nothing written).
"""

import argparse
import fractions
from pathlib import Path

import numpy as np
import pytest
import torch

from sips.cli import main
from sips.errors import AdapterError, PriorLoadError, SipsError
from sips.pretrained.weights import load_torch_checkpoint

from conftest import noisy, speech_like, write_wav


def _one_sentence_naming(message: str, kind: str) -> None:
    assert "\n" not in message and "\x1b" not in message, message  # not torch's coloured paragraph
    assert f"({kind})" in message and "re-save only the weights" in message and "state_dict()" in message
    assert "weights_only=False" not in message and "safe_globals" not in message  # never advise unpickling


def _generator_with_namespace(path: Path) -> Path:
    """The issue's smallest input: a SEMamba-style checkpoint that also pickled its argparse options."""
    torch.save({"generator": {"w": torch.zeros(2)}, "args": argparse.Namespace(lr=1e-3)}, path)
    return path


def test_plain_weights_load_and_extra_objects_are_named(tmp_path):
    torch.save({"generator": {"w": torch.ones(2)}, "epoch": 3, "names": ["a"]}, tmp_path / "ok.pth")
    loaded = load_torch_checkpoint(tmp_path / "ok.pth")
    assert torch.equal(loaded["generator"]["w"], torch.ones(2)) and loaded["epoch"] == 3
    with pytest.raises(AdapterError) as caught:
        load_torch_checkpoint(_generator_with_namespace(tmp_path / "g.pth"), "SEMamba checkpoint", error=AdapterError)
    message = str(caught.value)
    assert message.startswith(f"The SEMamba checkpoint {tmp_path / 'g.pth'} holds Python objects")
    _one_sentence_naming(message, "argparse.Namespace")


def test_sibling_objects_and_the_legacy_format(tmp_path):
    torch.save({"w": torch.zeros(1), "step": fractions.Fraction(1, 3)}, tmp_path / "f.pt")
    with pytest.raises(SipsError) as caught:
        load_torch_checkpoint(tmp_path / "f.pt")
    _one_sentence_naming(str(caught.value), "fractions.Fraction")
    torch.save({"w": torch.zeros(1), "a": np.zeros(2)}, tmp_path / "np.ckpt")
    with pytest.raises(SipsError, match=r"\(numpy\.[\w.]+, numpy\.dtype, numpy\.ndarray\)"):
        load_torch_checkpoint(tmp_path / "np.ckpt")
    old = tmp_path / "old.pth"  # torch < 1.6 wrote no zip archive
    torch.save({"args": argparse.Namespace()}, old, _use_new_zipfile_serialization=False)
    with pytest.raises(SipsError) as caught:
        load_torch_checkpoint(old)
    _one_sentence_naming(str(caught.value), "argparse.Namespace")


def test_allowed_globals_are_read_and_nothing_else(tmp_path):
    from torch.torch_version import TorchVersion

    torch.save({"version": TorchVersion("2.1.0"), "w": torch.zeros(1)}, tmp_path / "v.pth")
    with pytest.raises(SipsError, match="TorchVersion"):
        load_torch_checkpoint(tmp_path / "v.pth")
    assert load_torch_checkpoint(tmp_path / "v.pth", allowed_globals=[TorchVersion])["version"] == "2.1.0"
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"version": TorchVersion("2.1.0"), "x": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(SipsError, match=r"\((builtins|io)\.open\)"):
        load_torch_checkpoint(tmp_path / "evil.pth", allowed_globals=[TorchVersion])
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"not a checkpoint at all", "cannot be read as a torch checkpoint"),
        (None, "does not exist"),
        ("folder", "is a folder"),
        ("truncated", "cannot be read as a torch checkpoint"),
    ],
    ids=["garbage", "missing", "folder", "truncated"],
)
def test_unreadable_files_are_one_sentence(tmp_path, content, fragment):
    path = tmp_path / "x.pth"
    if content == "folder":
        path.mkdir()
    elif content == "truncated":
        torch.save({"w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(PriorLoadError) as caught:
        load_torch_checkpoint(path, "prior checkpoint", error=PriorLoadError)
    message = str(caught.value)
    assert fragment in message and "\n" not in message and "weights_only" not in message, message


# --- every reader of foreign checkpoints goes through the helper: the CLI says the same sentence


def _cli(args: list[str], capsys) -> tuple[int, list[str]]:
    code = main(args)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    ("predictor", "name", "what"),
    [
        ("semamba", "g.pth", "SEMamba checkpoint"),
        ("flexio", "flexio_avg.ckpt", "FlexIO checkpoint"),
        ("convtasnet", "Conv-TasNet.pt", "checkpoint"),
        ("asteroid", "model.pth", "checkpoint"),
    ],
)
def test_every_adapter_refuses_extra_objects_in_one_sentence(tmp_path, capsys, predictor, name, what):
    write_wav(tmp_path / "in" / "x.wav", noisy(speech_like(0.5), 5.0).numpy())
    path = _generator_with_namespace(tmp_path / name)
    args = ["refine", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--predictor", predictor]
    code, lines = _cli([*args, "--checkpoint", str(path), "--steps", "2"], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"sips: error: The {what} {path} holds Python objects")
    _one_sentence_naming(lines[0], "argparse.Namespace")
    assert not (tmp_path / "out").exists()


def test_convert_and_nisqa_refuse_extra_objects_in_one_sentence(tmp_path, capsys, monkeypatch):
    path = tmp_path / "SIPS.pt"
    torch.save({"ema": {"w": torch.zeros(1)}, "args": argparse.Namespace()}, path)
    (tmp_path / "SIPS_config.json").write_text("{}")
    code, lines = _cli(["convert", str(path), str(tmp_path / "SIPS_config.json"), "-o", str(tmp_path / "p")], capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"sips: error: The SIPS checkpoint {path}"), lines
    _one_sentence_naming(lines[0], "argparse.Namespace")
    assert not (tmp_path / "p").exists()
    from sips.evaluation import metrics

    with pytest.raises(SipsError) as caught:
        metrics._nisqa_model(str(_generator_with_namespace(tmp_path / "nisqa.tar")))
    _one_sentence_naming(str(caught.value), "argparse.Namespace")
