import numpy as np
import pytest
import torch

import sips
from sips.errors import AdapterError, AudioError, LengthMismatchError, SampleRateError

from conftest import noisy, speech_like


def test_refine_with_wiener_keeps_length_and_shape(small_prior, signal_pair):
    _, mixture = signal_pair
    out = sips.refine(sips.load_predictor("wiener"), mixture, prior=small_prior, steps=4)
    assert isinstance(out, torch.Tensor) and out.shape == (1, mixture.shape[-1]) and torch.isfinite(out).all()
    batch = torch.stack([mixture, mixture * 0.5])
    out_b = sips.refine(sips.load_predictor("wiener"), batch, prior=small_prior, steps=4)
    assert out_b.shape == (2, 1, mixture.shape[-1])
    torch.testing.assert_close(out_b[0], out, atol=1e-4, rtol=1e-4)


def test_numpy_in_numpy_out(small_prior, signal_pair):
    _, mixture = signal_pair
    out = sips.refine(sips.load_predictor("wiener"), mixture.numpy(), prior=small_prior, steps=3)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (1, mixture.shape[-1])


def test_zero_prior_returns_the_estimate(zero_prior, signal_pair):
    clean, mixture = signal_pair
    out = sips.refine(lambda x: x * 0.7, mixture, prior=zero_prior, steps=5)
    # Exactly the estimate, its DC bin included (what the encoder drops is kept from the estimate).
    torch.testing.assert_close(out[0], 0.7 * mixture, atol=1e-5, rtol=1e-4)


def test_the_estimates_dc_is_kept(zero_prior, small_prior, signal_pair):
    """An estimate with a DC offset keeps it: the prior never models the DC bin (issue 26)."""
    _, mixture = signal_pair
    offset = sips.refine(lambda x: 0.7 * x + 0.05, mixture, prior=zero_prior, steps=4)
    torch.testing.assert_close(offset[0], 0.7 * mixture + 0.05, atol=1e-5, rtol=1e-4)
    # Heun with 2 steps calls the prior only at t = 0.5, where gamma_dot = 0: the estimate itself
    two = sips.refine(lambda x: 0.7 * x + 0.05, mixture, prior=small_prior, steps=2, method="heun")
    torch.testing.assert_close(two[0], 0.7 * mixture + 0.05, atol=1e-5, rtol=1e-4)
    moved = sips.refine(lambda x: 0.7 * x + 0.05, mixture, prior=small_prior, steps=4)
    assert abs(float(moved.mean()) - float((0.7 * mixture + 0.05).mean())) < 1e-3


def test_same_seed_is_bit_identical_and_kappa_depends_on_seed(small_prior, signal_pair):
    _, mixture = signal_pair
    pred = sips.load_predictor("wiener")
    a = sips.refine(pred, mixture, prior=small_prior, steps=4, seed=0)
    assert torch.equal(a, sips.refine(pred, mixture, prior=small_prior, steps=4, seed=0))
    s1 = sips.refine(pred, mixture, prior=small_prior, steps=4, kappa=0.5, seed=1)
    assert torch.equal(s1, sips.refine(pred, mixture, prior=small_prior, steps=4, kappa=0.5, seed=1))
    s2 = sips.refine(pred, mixture, prior=small_prior, steps=4, kappa=0.5, seed=2)
    assert not torch.equal(s1, s2)


def test_separation_batches_sources_like_separate_runs(small_prior):
    a, b = speech_like(1.0, seed=1), speech_like(1.0, seed=2) * 0.5
    mixture = a + b
    estimates = torch.stack([a, b])
    together = sips.refine_estimates(estimates, mixture, prior=small_prior, steps=3)
    assert together.shape == (2, mixture.shape[-1])
    alone = sips.refine_estimates(b, mixture, prior=small_prior, steps=3)
    torch.testing.assert_close(together[1:], alone, atol=1e-4, rtol=1e-4)
    via_predictor = sips.refine(
        lambda x: torch.stack([x * 0 + a, x * 0 + b], dim=1), mixture, prior=small_prior, steps=3
    )
    torch.testing.assert_close(via_predictor, together, atol=1e-5, rtol=1e-5)


def test_heun_method_runs(small_prior, signal_pair):
    _, mixture = signal_pair
    out = sips.refine(lambda x: x, mixture, prior=small_prior, steps=3, method="heun")
    assert out.shape == (1, mixture.shape[-1])


def test_length_tolerance(small_prior, signal_pair):
    _, mixture = signal_pair
    ok = sips.refine_estimates(mixture[:-512], mixture, prior=small_prior, steps=2)
    assert ok.shape == (1, mixture.shape[-1])
    ok = sips.refine_estimates(torch.cat([mixture, torch.zeros(300)]), mixture, prior=small_prior, steps=2)
    assert ok.shape == (1, mixture.shape[-1])
    with pytest.raises(LengthMismatchError, match="at most 512"):
        sips.refine_estimates(mixture[:-513], mixture, prior=small_prior, steps=2)


def test_other_rates_are_resampled_not_refused(small_prior, signal_pair):
    """A mixture at 8 kHz and a predictor at 8 kHz are resampled (sips.bands); tests/test_bands.py
    checks every pairing of rates. Only a rate that is no rate is an error."""
    _, mixture = signal_pair
    out = sips.refine(lambda x: x, mixture, prior=small_prior, sample_rate=8000, steps=2)
    assert out.shape == (1, mixture.shape[-1])
    at8k = sips.as_predictor(lambda x: x, sample_rate=8000)
    out = sips.refine(at8k, mixture, prior=small_prior, sample_rate=16000, steps=2)
    assert out.shape == (1, mixture.shape[-1])
    with pytest.raises(SampleRateError, match="rate cannot be assumed"):  # 8 or 16 kHz? not guessed
        sips.refine(at8k, mixture, prior=small_prior, steps=2)
    with pytest.raises(SampleRateError, match="positive whole number of Hz"):
        sips.refine(lambda x: x, mixture, prior=small_prior, sample_rate=-1)


def test_silence_is_guarded(small_prior):
    out = sips.refine_estimates(torch.zeros(2000), torch.zeros(2000), prior=small_prior, steps=3)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("mixture", "error", "message"),
    [
        (torch.zeros(2, 3, 4000), AudioError, r"\[T\] or \[B, T\]"),
        (torch.zeros(100), AudioError, "too short"),
        (torch.full((4000,), float("nan")), AudioError, "NaN"),
        ([0.0] * 4000, AudioError, "torch tensor or a numpy array"),
    ],
    ids=["3d", "short", "nan", "list"],
)
def test_bad_mixtures(small_prior, mixture, error, message):
    with pytest.raises(error, match=message):
        sips.refine(lambda x: x, mixture, prior=small_prior)


def test_bad_predictor_outputs(small_prior, signal_pair):
    _, mixture = signal_pair
    with pytest.raises(AdapterError, match="NaN"):
        sips.refine(lambda x: x * float("nan"), mixture, prior=small_prior)
    with pytest.raises(AdapterError, match="expected"):
        sips.refine(lambda x: x.sum(), mixture, prior=small_prior)


def test_output_follows_the_input_device_and_dtype(small_prior, signal_pair):
    _, mixture = signal_pair
    out = sips.refine(lambda x: x, mixture.double(), prior=small_prior, steps=2)
    assert out.dtype == torch.float64 and out.device == mixture.device


def test_embedded_prior_refines_wiener_and_stays_close(signal_pair):
    clean, mixture = signal_pair
    mixture = noisy(clean, 10.0)
    out = sips.refine(sips.load_predictor("wiener"), mixture, steps=15)
    wiener = sips.load_predictor("wiener")(mixture.unsqueeze(0))[0]
    assert out.shape == (1, mixture.shape[-1])
    # The prior changes the estimate but stays near it (a few dB of SNR between them at most).
    diff_db = 10 * torch.log10(wiener.pow(2).sum() / (out - wiener).pow(2).sum())
    assert 0 < (out - wiener).abs().max() and diff_db > 5
