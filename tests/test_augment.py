"""Voice-widening augmentation of prior training crops (sips.augment)."""

import math

import pytest
import torch

from sips.training.augment import VoiceAugment

RATE = 16000


def _tone(freq: float, samples: int) -> torch.Tensor:
    return torch.sin(2 * math.pi * freq * torch.arange(samples) / RATE)[None]


def test_identity_ranges_return_the_crop():
    aug = VoiceAugment(speed=(1.0, 1.0), tilt_db_per_octave=(0.0, 0.0), eq_db=(0.0, 0.0))
    x = torch.randn(3, aug.source_length(RATE), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(aug(x, RATE, torch.Generator().manual_seed(1)), x[:, :RATE], atol=1e-5, rtol=0)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_moves_a_tone_by_the_factor(factor):
    aug = VoiceAugment(speed=(factor, factor), tilt_db_per_octave=(0.0, 0.0), eq_db=(0.0, 0.0))
    out = aug(_tone(500.0, aug.source_length(RATE)), RATE, torch.Generator().manual_seed(0))
    peak_hz = int(torch.fft.rfft(out[0]).abs().argmax())  # 1 Hz bins for one second
    assert abs(peak_hz - 500 * factor) <= 1


def test_tilt_and_eq_change_the_balance_and_keep_the_peak():
    aug = VoiceAugment(speed=(1.0, 1.0), tilt_db_per_octave=(3.0, 3.0), eq_db=(0.0, 0.0))
    x = _tone(250.0, aug.source_length(RATE)) + _tone(4000.0, aug.source_length(RATE))
    out = aug(x, RATE, torch.Generator().manual_seed(0))[0]
    spec = torch.fft.rfft(out).abs()
    # +3 dB per octave: 4 octaves from 250 Hz to 4 kHz is 12 dB
    assert 20 * math.log10(spec[4000] / spec[250]) == pytest.approx(12.0, abs=0.2)
    assert float(out.abs().max()) == pytest.approx(float(x[0].abs().max()), rel=1e-5)


def test_draws_follow_the_generator_and_crops_must_be_long_enough():
    aug = VoiceAugment()
    x = torch.randn(4, aug.source_length(RATE), generator=torch.Generator().manual_seed(0))
    a = aug(x, RATE, torch.Generator().manual_seed(5))
    assert torch.equal(a, aug(x, RATE, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, aug(x, RATE, torch.Generator().manual_seed(6)))
    with pytest.raises(ValueError, match="crops need"):
        aug(x[:, :RATE], RATE, torch.Generator())
