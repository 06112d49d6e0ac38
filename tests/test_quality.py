"""The prior as a reference-free quality meter."""

import math

import numpy as np
import pytest
import torch

from sips.errors import AudioError, OptionError, SampleRateError
from sips.evaluation.quality import QualityScore, quality

from conftest import noisy, speech_like

HOP = 128


@pytest.fixture(scope="module")
def clean_and_noisy():
    clean = speech_like(1.5, seed=3)
    return clean, noisy(clean, 0.0, seed=4)


def test_score_is_deterministic_for_a_seed_and_has_one_value_per_frame(clean_and_noisy):
    clean, _ = clean_and_noisy
    a, b = quality(clean, seed=5), quality(clean, seed=5)
    assert isinstance(a, QualityScore) and a.score == b.score and torch.equal(a.frames, b.frames)
    assert a.frames.shape == (1 + len(clean) // HOP,) and a.frame_seconds == HOP / 16000
    assert a.score == pytest.approx(float(a.frames.mean()))
    assert quality(clean, seed=6).score != a.score  # other probes, (slightly) other estimate


def test_embedded_prior_prefers_clean_speech(clean_and_noisy):
    clean, degraded = clean_and_noisy
    scores = [quality(x).score for x in (clean, noisy(clean, 15.0), degraded)]
    assert scores[0] > scores[1] > scores[2]


def test_silence_and_short_inputs_are_finite_or_a_clear_error():
    silent = quality(torch.zeros(16000))
    assert math.isfinite(silent.score) and torch.isfinite(silent.frames).all()
    short = quality(speech_like(0.04))  # 640 samples: 6 frames
    assert math.isfinite(short.score) and short.frames.shape == (6,)
    with pytest.raises(AudioError, match="too short"):
        quality(torch.ones(100))


def test_batches_numpy_and_windows_agree():
    x = torch.stack([speech_like(1.0, seed=1), noisy(speech_like(1.0, seed=2), 5.0)])
    batch = quality(x)
    assert isinstance(batch, list) and len(batch) == 2
    single = quality(x[1].numpy())
    assert single.score == pytest.approx(batch[1].score, abs=1e-5)
    windows = quality(x[0], chunk_seconds=0.3)  # 3 windows and a tail, other probes, frames joined once
    assert windows.frames.shape == batch[0].frames.shape
    assert windows.score == pytest.approx(batch[0].score, abs=0.1)


def test_bad_arguments():
    with pytest.raises(SampleRateError):
        quality(speech_like(0.5), sample_rate=0)
    with pytest.raises(OptionError):
        quality(speech_like(0.5), levels=0)
    with pytest.raises(AudioError):
        quality(np.zeros((2, 3, 100)))


def test_cli_quality_prints_and_writes_csv(tmp_path, capsys):
    from sips.cli import main

    from conftest import write_wav

    write_wav(tmp_path / "clean.wav", speech_like(1.0).numpy())
    write_wav(tmp_path / "noisy.wav", noisy(speech_like(1.0), -5.0).numpy(), rate=8000)
    assert main(["quality", str(tmp_path), "--csv", str(tmp_path / "q.csv")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    scores = {line.split()[0]: float(line.split()[1]) for line in lines[1:]}
    assert scores[str(tmp_path / "clean.wav")] > scores[str(tmp_path / "noisy.wav")]
    rows = (tmp_path / "q.csv").read_text().splitlines()
    assert rows[0] == "file,score,seconds" and len(rows) == 3
    assert main(["quality", str(tmp_path / "none.wav")]) == 2


def test_cli_quality_names_files_by_the_path_as_given(tmp_path, capsys, monkeypatch, small_prior):
    """Two inputs with the same file name are told apart, in the table and in the CSV."""
    from sips.cli import main

    from conftest import write_wav

    monkeypatch.chdir(tmp_path)
    write_wav(tmp_path / "a" / "x.wav", speech_like(0.5).numpy())
    write_wav(tmp_path / "b" / "sub" / "x.wav", noisy(speech_like(0.5), 0.0).numpy())
    prior = small_prior.save_pretrained(tmp_path / "prior")
    assert main(["quality", "a/x.wav", "b", "--csv", "q.csv", "--prior", str(prior)]) == 0
    table = [line.split()[0] for line in capsys.readouterr().out.strip().splitlines()[1:]]
    assert table == ["a/x.wav", "b/sub/x.wav"]
    rows = [row.split(",")[0] for row in (tmp_path / "q.csv").read_text().splitlines()[1:]]
    assert rows == ["a/x.wav", "b/sub/x.wav"]


def test_the_help_says_what_the_score_means_and_its_scale(capsys):
    from sips.cli import main

    assert main(["quality", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "minus the prior's own training loss" in text and "Higher is closer to clean speech" in text
    assert "not a MOS" in text and "clean speech scores about +0.66" in text and "at -5 dB about +0.04" in text
    assert "digital silence scores high" in text and "Compare scores of one prior only" in text
