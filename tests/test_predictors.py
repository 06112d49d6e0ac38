import subprocess
import sys
import textwrap

import pytest
import torch

import sips
from sips.errors import AdapterError
from sips.prediction.predictors import unregister_adapter


def test_decorator_registration_is_found():
    @sips.register_adapter("unit-halver")
    class Halver:
        sample_rate = 16000
        n_src = 1

        def __init__(self, factor=0.5):
            self.factor = factor

        def __call__(self, mixture):
            return (mixture * self.factor).unsqueeze(1)

    try:
        assert "unit-halver" in sips.available_adapters()
        pred = sips.load_predictor("unit-halver", factor=0.25)
        assert isinstance(pred, Halver) and pred.factor == 0.25
        assert torch.equal(pred(torch.ones(2, 10)), torch.full((2, 1, 10), 0.25))
    finally:
        unregister_adapter("unit-halver")


def test_duplicate_name_is_an_error():
    @sips.register_adapter("unit-dup")
    def first():
        return None

    try:
        with pytest.raises(AdapterError, match="already registered"):

            @sips.register_adapter("unit-dup")
            def second():
                return None
    finally:
        unregister_adapter("unit-dup")


def test_unknown_name_lists_what_exists():
    with pytest.raises(AdapterError, match=r"Unknown predictor 'nope'.*wiener"):
        sips.load_predictor("nope")


def test_bad_factory_arguments_are_clear():
    with pytest.raises(AdapterError, match="Bad arguments for the predictor 'wiener'"):
        sips.load_predictor("wiener", not_an_option=1)


def test_builtin_wiener_comes_through_the_entry_point():
    from importlib.metadata import entry_points

    assert any(ep.name == "wiener" for ep in entry_points(group="sips.adapters"))
    pred = sips.load_predictor("wiener")
    assert isinstance(pred, sips.Predictor) and pred.sample_rate == 16000 and pred.n_src == 1


TINY_DIST = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "sips-tiny-test-adapter"
        version = "0.0.1"

        [project.entry-points."sips.adapters"]
        tiny-gain = "sips_tiny_adapter:TinyGain"
    """,
    "sips_tiny_adapter.py": """
        import torch

        class TinyGain:
            sample_rate = 16000
            n_src = 2

            def __call__(self, mixture):
                return torch.stack([mixture * 0.5, mixture * 0.25], dim=1)
    """,
}


def test_entry_point_of_an_installed_distribution(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for name, text in TINY_DIST.items():
        (src / name).write_text(textwrap.dedent(text))
    target = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    monkeypatch.syspath_prepend(str(target))
    assert "tiny-gain" in sips.available_adapters()
    pred = sips.load_predictor("tiny-gain")
    assert pred.n_src == 2
    out = sips.refine(pred, torch.randn(3200) * 0.1, steps=2)
    assert out.shape == (2, 3200)
    unregister_adapter("tiny-gain")


def test_plain_callable_and_module_are_wrapped():
    wrapped = sips.as_predictor(lambda x: x * 0.5)
    assert wrapped.sample_rate == 16000
    assert wrapped(torch.ones(2, 8)).shape == (2, 1, 8) and wrapped.n_src == 1

    module = torch.nn.Conv1d(1, 2, 3, padding=1)
    pred = sips.as_predictor(lambda x: module(x.unsqueeze(1)), sample_rate=8000)
    assert pred.sample_rate == 8000 and pred(torch.ones(1, 8)).shape == (1, 2, 8) and pred.n_src == 2

    net = torch.nn.Identity()
    assert sips.as_predictor(net)(torch.ones(1, 8)).shape == (1, 1, 8)


def test_wrapped_callable_with_wrong_output_is_an_error():
    with pytest.raises(AdapterError, match="expected"):
        sips.as_predictor(lambda x: x[0])(torch.ones(2, 8))
    with pytest.raises(AdapterError, match="callable"):
        sips.as_predictor(42)


def test_default_predictor_is_the_best_installed(monkeypatch, capsys):
    """`sips refine` without --predictor: the first installed of sips.defaults.PREDICTORS (ranked by
    measurement), wiener when no enhancer distribution is installed; `sips predictors` marks it."""
    from sips.cli import main
    from sips.defaults import PREDICTORS
    from sips.prediction import predictors

    monkeypatch.setattr(predictors, "available_adapters", lambda: ["convtasnet", "gtcrn", "rnnoise", "wiener"])
    assert predictors.default_predictor_name() == "gtcrn"
    monkeypatch.setattr(predictors, "available_adapters", lambda: ["semamba", "wiener"])
    assert predictors.default_predictor_name() == "wiener" == PREDICTORS[-1]
    monkeypatch.undo()
    assert main(["predictors"]) == 0
    marked = [line for line in capsys.readouterr().out.splitlines() if "(default of sips refine)" in line]
    assert len(marked) == 1 and marked[0].split()[0] == predictors.default_predictor_name()
