"""Estimates brought to the mixture's scale and sign before refinement (sips.scaling, rescale=)."""

import pytest
import torch

import sips
from sips.errors import OptionError
from sips.method import scaling

from conftest import speech_like


def _two_speakers(seconds: float = 1.0):
    a, b = speech_like(seconds, seed=3), 0.6 * speech_like(seconds, seed=4).roll(2000)
    return torch.stack([a, b]), a + b


class _Separator:
    """Returns the true sources times ``gain`` (a separator trained with a scale-free loss)."""

    sample_rate, n_src = 16000, 2

    def __init__(self, sources: torch.Tensor, gain: float) -> None:
        self.sources, self.gain = sources, gain

    def __call__(self, mixture: torch.Tensor) -> torch.Tensor:
        return self.gain * self.sources[None, :, : mixture.shape[-1]].expand(mixture.shape[0], -1, -1)


def test_gains_restore_scaled_and_inverted_sources():
    sources, mixture = _two_speakers()
    est = sources * torch.tensor([[-0.1], [0.02]])
    fixed = scaling.rescale(est, mixture, "gain")
    torch.testing.assert_close(fixed, sources, atol=1e-5, rtol=1e-4)
    assert scaling.rescale(est, mixture, "none") is est


def test_one_source_gets_the_projection_gain():
    clean = speech_like(1.0)
    noise = 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    mixture = clean + noise
    gain = scaling.mixture_gains((-0.05 * clean)[None], mixture)
    expected = torch.dot(-0.05 * clean, mixture) / torch.dot(-0.05 * clean, -0.05 * clean)
    torch.testing.assert_close(gain[0], expected, rtol=1e-4, atol=0)


def test_silent_source_gets_gain_zero_and_batches_are_independent():
    sources, mixture = _two_speakers()
    est = torch.stack([sources[0], torch.zeros_like(sources[0])])
    gains = scaling.mixture_gains(torch.stack([est, -3 * sources]), torch.stack([mixture, mixture]))
    assert torch.isfinite(gains).all() and gains[0, 1] == 0
    torch.testing.assert_close(gains[1], torch.full((2,), -1 / 3), rtol=1e-4, atol=1e-6)


def test_separator_scale_and_sign_do_not_change_the_refined_result(small_prior):
    sources, mixture = _two_speakers()
    plain = sips.refine(_Separator(sources, 1.0), mixture, prior=small_prior, steps=4)
    flipped = sips.refine(_Separator(sources, -0.1), mixture, prior=small_prior, steps=4)
    torch.testing.assert_close(flipped, plain, atol=1e-4, rtol=1e-4)
    # without rescaling the quiet inverted estimate gives another result
    raw = sips.refine(_Separator(sources, -0.1), mixture, prior=small_prior, steps=4, rescale="none")
    assert (raw - plain).abs().max() > 0.1


def test_refine_estimates_and_long_inputs_rescale_too(small_prior):
    sources, mixture = _two_speakers(2.0)
    kwargs = dict(prior=small_prior, steps=3, chunk_seconds=0.8, overlap_seconds=0.2)
    plain = sips.refine_estimates(sources, mixture, **kwargs)
    flipped = sips.refine_estimates(-0.1 * sources, mixture, **kwargs)
    torch.testing.assert_close(flipped, plain, atol=1e-4, rtol=1e-4)


def test_default_is_documented_and_resolves_by_source_count():
    assert sips.defaults.RESCALE == "auto"
    assert scaling.resolve("auto", 2) == "gain"
    assert scaling.resolve("auto", 1) == scaling.AUTO_ENHANCEMENT
    assert "rescale" in sips.refine.__doc__ and '``"auto"``' in sips.refine.__doc__


@pytest.mark.parametrize("bad", ["lsq", "", "GAIN"])
def test_unknown_mode_is_an_option_error(small_prior, bad):
    with pytest.raises(OptionError, match="rescale must be one of"):
        sips.refine(sips.load_predictor("wiener"), speech_like(0.5), prior=small_prior, steps=2, rescale=bad)
