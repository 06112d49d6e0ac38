"""`sips refine --predictor semamba|convtasnet` with the shipped default weights, and CLI errors."""

import soundfile as sf

import sips.prediction.predictors
from sips.cli import main

from conftest import noisy, speech_like, write_wav


def _input(tmp_path):
    return write_wav(tmp_path / "in" / "mix.wav", noisy(speech_like(0.5), 5.0).numpy())


def test_refine_with_semamba(tmp_path):
    src = _input(tmp_path)
    assert main(["refine", str(src), "-o", str(tmp_path / "out"), "--predictor", "semamba", "--steps", "2"]) == 0
    out, rate = sf.read(tmp_path / "out" / "mix.wav")
    assert rate == 16000 and out.shape == (8000,)


def test_refine_with_convtasnet_writes_two_sources(tmp_path):
    src = _input(tmp_path)
    assert main(["refine", str(src), "-o", str(tmp_path / "out"), "--predictor", "convtasnet", "--steps", "2"]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["mix_s1.wav", "mix_s2.wav"]
    assert all(sf.info(tmp_path / "out" / name).frames == 8000 for name in written)


def test_published_layout_and_postprocess_with_a_separator(tmp_path, capsys):
    src = _input(tmp_path)
    args = ["refine", str(src), "--predictor", "convtasnet", "--steps", "2"]
    assert main([*args, "-o", str(tmp_path / "out"), "--layout", "published"]) == 0
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.wav"))
    assert written == ["s1/mix.wav", "s2/mix.wav"]
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "post"), "--postprocess"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "enhancement predictors only" in err
    assert not (tmp_path / "post").exists()


def test_predictor_options_errors_exit_2(tmp_path, capsys):
    src = _input(tmp_path)
    out = tmp_path / "out"
    assert main(["refine", str(src), "-o", str(out), "--checkpoint", "x.pt"]) == 2
    err = capsys.readouterr().err  # the default predictor (the best installed enhancer) takes no checkpoint
    assert sips.prediction.predictors.default_predictor_name() in err and err.count("\n") == 1
    assert main(["refine", str(src), "-o", str(out), "--predictor", "wiener", "--checkpoint", "x.pt"]) == 2
    assert "Bad arguments for the predictor 'wiener'" in capsys.readouterr().err
    assert (
        main(["refine", str(src), "-o", str(out), "--predictor", "semamba", "--checkpoint", str(tmp_path / "no.pth")])
        == 2
    )
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["refine", str(src), "-o", str(out), "--estimates", str(tmp_path), "--n-src", "2"]) == 2
    assert "apply to --predictor" in capsys.readouterr().err
    assert not out.exists()
