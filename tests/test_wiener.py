import torch

import sips

from conftest import noisy, speech_like


def _snr(ref, est):
    return 10 * torch.log10(ref.pow(2).sum() / (ref - est).pow(2).sum())


def test_wiener_improves_snr_on_stationary_noise():
    clean = speech_like(2.0)
    mixture = noisy(clean, 0.0)
    out = sips.load_predictor("wiener")(mixture.unsqueeze(0))
    assert out.shape == (1, 1, clean.shape[-1])
    assert _snr(clean, out[0, 0]) > _snr(clean, mixture) + 3


def test_wiener_is_batched_and_deterministic():
    pred = sips.load_predictor("wiener")
    x = torch.stack([noisy(speech_like(1.0, seed=s), 5.0, seed=s) for s in range(3)])
    out = pred(x)
    assert out.shape == (3, 1, x.shape[-1])
    torch.testing.assert_close(out[1], pred(x[1:2])[0], atol=1e-5, rtol=1e-4)
    assert torch.equal(out, pred(x))


def test_wiener_leaves_silence_silent_and_finite():
    out = sips.load_predictor("wiener")(torch.zeros(1, 4000))
    assert torch.isfinite(out).all() and out.abs().max() < 1e-6
