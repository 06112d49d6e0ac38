"""Predictors at their own rate and full-band output (sips.bands, refine across rates).

A predictor at 48 kHz gets the recording at 48 kHz (a 44.1 kHz file resampled once, not via
16 kHz); the prior refines 0-8 kHz; above 16 kHz the band above 8 kHz is the predictor's own. With
the prior switched off (``strength=0``) the output is the predictor's full-band estimate.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import sips
from sips.errors import SampleRateError
from sips.prediction import bands

from conftest import noisy, speech_like, write_wav

RATES = (8000, 16000, 22050, 44100, 48000)


class RecordingPredictor:
    """A linear "enhancer" at ``sample_rate`` (0.7 x the input, plus a 12 kHz tone where its rate
    allows, to mark its upper band) that records the length of every input it gets."""

    n_src = 1

    def __init__(self, sample_rate: int, tone_hz: float = 12000.0):
        self.sample_rate, self.tone_hz, self.lengths = sample_rate, tone_hz, []

    def __call__(self, mixture: torch.Tensor) -> torch.Tensor:
        self.lengths.append(mixture.shape[-1])
        out = 0.7 * mixture
        if self.tone_hz < self.sample_rate / 2:
            t = torch.arange(mixture.shape[-1]) / self.sample_rate
            out = out + 0.05 * torch.sin(2 * torch.pi * self.tone_hz * t)
        return out.unsqueeze(1)


def band_energy_db(x: np.ndarray, rate: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2  # windowed: no leakage from the ends
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(10 * np.log10(spec[(freqs >= lo) & (freqs < hi)].sum() + 1e-20))


def mixture_at(rate: int, seconds: float = 0.6) -> torch.Tensor:
    clean16 = speech_like(seconds)
    return bands.resample(noisy(clean16, 10.0), 16000, rate)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("native", [16000, 48000])
def test_any_rate_any_predictor_rate(small_prior, rate, native):
    """Every pairing keeps the input's length; the predictor sees its own rate's length."""
    mixture = mixture_at(rate)
    pred = RecordingPredictor(native)
    out = sips.refine(pred, mixture, sample_rate=rate, prior=small_prior, steps=3)
    assert out.shape == (1, mixture.shape[-1])
    assert torch.isfinite(out).all()
    expected = int(np.ceil(mixture.shape[-1] * native / rate))
    assert abs(pred.lengths[0] - expected) <= 1  # resampled once, straight to the predictor's rate


@pytest.mark.parametrize("rate", [44100, 48000])
def test_prior_off_returns_the_full_band_estimate(small_prior, rate):
    """strength=0: the output is the 48 kHz predictor's estimate (at the file's rate) exactly."""
    mixture = mixture_at(rate)
    pred = RecordingPredictor(48000)
    out = sips.refine(pred, mixture, sample_rate=rate, prior=small_prior, strength=0)
    estimate = bands.resample(pred(bands.resample(mixture[None], rate, 48000))[:, 0], 48000, rate, mixture.shape[-1])
    torch.testing.assert_close(out[0], estimate[0], rtol=0, atol=1e-6)


def test_prior_off_estimates_at_48k(small_prior):
    """refine_estimates at 48 kHz with strength 0 gives the estimates back; with the prior on,
    only the prior's band changes (the band above 8.5 kHz stays the estimate's)."""
    mixture = mixture_at(48000)
    estimate = RecordingPredictor(48000)(mixture[None])[0]
    off = sips.refine_estimates(estimate, mixture, sample_rate=48000, prior=small_prior, strength=0)
    torch.testing.assert_close(off, estimate, rtol=0, atol=1e-6)
    on = sips.refine_estimates(estimate, mixture, sample_rate=48000, prior=small_prior, steps=3)
    diff = (on - estimate)[0].numpy()
    assert band_energy_db(diff, 48000, 100, 7000) > band_energy_db(diff, 48000, 8500, 24000) + 40


def test_crossover_is_the_resampling_low_pass():
    """U D (16 kHz and back) passes 0-7.3 kHz within 0.1 dB, is near -3 dB at 7.55 kHz and blocks
    from 7.8 kHz by 60 dB: the crossover sips.bands and the README give."""
    rate = 48000
    t = torch.arange(rate) / rate
    cases = [(1000, -0.1, 0.1), (7300, -0.1, 0.1), (7550, -4.5, -1.5), (7800, -400, -60), (12000, -400, -60)]
    for hz, lo, hi in cases:
        tone = torch.sin(2 * torch.pi * hz * t)
        back = bands.resample(bands.resample(tone, rate, 16000), 16000, rate, length=rate)
        mid = slice(rate // 4, 3 * rate // 4)
        gain = 20 * np.log10(float(back[mid].norm() / tone[mid].norm()) + 1e-30)
        assert lo <= gain <= hi, (hz, gain)


def test_predictor_below_the_file_rate_leaves_the_upper_band_empty(small_prior):
    """A 16 kHz predictor on a 48 kHz recording: nothing above 8 kHz (the mixture's noise is not put back)."""
    mixture = mixture_at(48000) + 0.05 * torch.randn(
        mixture_at(48000).shape, generator=torch.Generator().manual_seed(3)
    )
    out = sips.refine(RecordingPredictor(16000), mixture, sample_rate=48000, prior=small_prior, steps=3)[0].numpy()
    assert band_energy_db(mixture.numpy(), 48000, 9000, 24000) - band_energy_db(out, 48000, 9000, 24000) > 60


def test_upper_band_kept_by_a_48k_predictor(small_prior):
    """The estimate's 12 kHz tone survives refinement at 48 kHz (9-13 kHz energy within 0.1 dB)."""
    mixture = mixture_at(48000)
    pred = RecordingPredictor(48000)
    out = sips.refine(pred, mixture, sample_rate=48000, prior=small_prior, steps=3)[0].numpy()
    est = pred(mixture[None])[0, 0].numpy()
    assert abs(band_energy_db(out, 48000, 9000, 13000) - band_energy_db(est, 48000, 9000, 13000)) < 0.1


def test_sixteen_khz_predictor_on_other_rates_matches_manual_resampling(small_prior):
    """A 16 kHz predictor on a 22.05 kHz mixture: the same as resampling to 16 kHz, refining, and back."""
    mixture = mixture_at(22050)
    pred = RecordingPredictor(16000)
    out = sips.refine(pred, mixture, sample_rate=22050, prior=small_prior, steps=3)
    at16 = sips.refine(pred, bands.resample(mixture, 22050, 16000), prior=small_prior, steps=3)
    torch.testing.assert_close(out, bands.resample(at16, 16000, 22050, mixture.shape[-1]))


def test_no_rate_is_the_shared_rate_or_refused(small_prior):
    """The documented policy: sample_rate=None means 16 kHz where predictor and prior both work at
    16 kHz (the same result as sample_rate=16000); with a predictor at another rate it is refused in
    one sentence naming both rates, for tensors and numpy alike, before the predictor runs."""
    mixture = mixture_at(16000)
    pred16 = RecordingPredictor(16000)
    torch.testing.assert_close(
        sips.refine(pred16, mixture, prior=small_prior, steps=2),
        sips.refine(pred16, mixture, sample_rate=16000, prior=small_prior, steps=2),
        rtol=0,
        atol=0,
    )
    pred48 = RecordingPredictor(48000)
    for data in (mixture, mixture.numpy()):
        with pytest.raises(SampleRateError) as info:
            sips.refine(pred48, data, prior=small_prior, steps=2)
        text = str(info.value)
        assert "48000 Hz" in text and "16000 Hz" in text and "sample_rate=48000" in text and "\n" not in text
    assert pred48.lengths == []  # refused before the predictor ran
    # refine_estimates has no predictor: None is the prior's rate, as documented
    assert sips.refine_estimates(0.5 * mixture, mixture, prior=small_prior, steps=2).shape == (1, mixture.shape[-1])


def test_bad_rates_are_one_sentence(small_prior):
    for bad in (0, -16000, 16000.5, "16k", True):
        with pytest.raises(SampleRateError, match="positive whole number"):
            sips.refine(RecordingPredictor(16000), mixture_at(16000), sample_rate=bad, prior=small_prior)


def test_separator_at_48k_keeps_sources_and_gains(small_prior):
    """Two sources from a 48 kHz separator with a wrong sign and scale: rescaled once (stage one),
    and with the prior off the output is the rescaled estimate."""
    rate = 48000
    a, b = mixture_at(rate), bands.resample(speech_like(0.6, seed=5), 16000, rate)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    sep = sips.as_predictor(
        lambda x: -0.1 * torch.stack([a, b])[None].expand(x.shape[0], 2, n), sample_rate=rate, n_src=2
    )
    out = sips.refine(sep, a + b, sample_rate=rate, prior=small_prior, strength=0)
    torch.testing.assert_close(out, torch.stack([a, b]), rtol=0, atol=1e-4)


@pytest.mark.parametrize("rate", [22050, 44100, 48000])
def test_file_layer_agrees_with_the_tensor_api(tmp_path, small_prior, rate):
    """refine_file and the CLI's path give what sips.refine gives, within 24-bit PCM precision."""
    mixture = mixture_at(rate, 0.5)
    path = write_wav(tmp_path / "in.wav", mixture.numpy(), rate=rate, subtype="FLOAT")
    pred = RecordingPredictor(48000)
    sips.files.refine_file(pred, path, tmp_path / "out.wav", prior=small_prior, steps=3)
    got, got_rate = sf.read(tmp_path / "out.wav", dtype="float32")
    want = sips.refine(pred, mixture, sample_rate=rate, prior=small_prior, steps=3)[0].numpy()
    assert got_rate == rate and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_file_layer_prior_off_is_the_estimate(tmp_path, small_prior):
    rate = 48000
    mixture = mixture_at(rate, 0.5)
    path = write_wav(tmp_path / "in.wav", mixture.numpy(), rate=rate, subtype="FLOAT")
    pred = RecordingPredictor(48000)
    sips.files.refine_file(pred, path, tmp_path / "out.wav", prior=small_prior, strength=0)
    got, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    np.testing.assert_allclose(got, pred(mixture[None])[0, 0].numpy(), atol=1e-6)


def test_estimate_files_at_48k_keep_their_upper_band(tmp_path, small_prior):
    rate = 48000
    mixture = mixture_at(rate, 0.5)
    estimate = RecordingPredictor(rate)(mixture[None])[0, 0]
    mix_path = write_wav(tmp_path / "in.wav", mixture.numpy(), rate=rate, subtype="FLOAT")
    est_path = write_wav(tmp_path / "est.wav", estimate.numpy(), rate=rate, subtype="FLOAT")
    sips.files.refine_estimate_files([est_path], mix_path, tmp_path / "out.wav", prior=small_prior, steps=3)
    got, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    want = sips.refine_estimates(estimate, mixture, sample_rate=rate, prior=small_prior, steps=3)[0].numpy()
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert abs(band_energy_db(got, rate, 9000, 13000) - band_energy_db(estimate.numpy(), rate, 9000, 13000)) < 0.1


def test_long_input_is_windowed_at_the_predictor_rate(small_prior):
    """Chunked (windows of 0.25 s): the predictor's windows are 0.25 s at 48 kHz, and with the
    prior off the output is the cross-faded estimate, i.e. the linear predictor's output."""
    mixture = mixture_at(48000, 1.0)
    pred = RecordingPredictor(48000, tone_hz=float("inf"))  # time-invariant: windows cross-fade to 0.7 x
    out = sips.refine(
        pred, mixture, sample_rate=48000, prior=small_prior, strength=0, chunk_seconds=0.25, overlap_seconds=0.05
    )
    assert max(pred.lengths) == 12000
    torch.testing.assert_close(out[0], 0.7 * mixture, rtol=0, atol=1e-6)


def test_postprocess_at_the_predictor_rate(small_prior):
    mixture = mixture_at(44100)
    pred = RecordingPredictor(48000)
    out = sips.refine(pred, mixture, sample_rate=44100, prior=small_prior, steps=3, postprocess=True)
    assert out.shape == (1, mixture.shape[-1]) and torch.isfinite(out).all()
    assert len(pred.lengths) == 2  # the predictor ran again on the output


def test_uncertainty_frames_at_other_rates(small_prior):
    mixture = mixture_at(48000)
    out, spread = sips.refine(
        RecordingPredictor(48000),
        mixture,
        sample_rate=48000,
        prior=small_prior,
        kappa=0.5,
        ensemble=2,
        seed=0,
        return_uncertainty=True,
    )
    t16 = int(np.ceil(mixture.shape[-1] / 3))
    assert out.shape == (1, mixture.shape[-1]) and spread.shape == (1, 1 + t16 // 128)
    assert (spread > 0).any()


def test_quality_resamples(small_prior):
    x16 = speech_like(0.5)
    x8 = bands.resample(x16, 16000, 8000)
    got = sips.quality(x8, sample_rate=8000, prior=small_prior, seed=0, levels=2, probes=1)
    want = sips.quality(bands.resample(x8, 8000, 16000), prior=small_prior, seed=0, levels=2, probes=1)
    assert got.score == pytest.approx(want.score)
