"""Voice-widening augmentation of clean training crops: speed/pitch, spectral tilt and one EQ band.

A corpus with a handful of voices teaches a prior those voices. Perturbing each training crop
moves it toward voices the corpus lacks:

- **speed/pitch**: the crop is read ``factor`` times faster (``factor`` in ``speed``), which
  raises pitch and formants together, as in Kaldi-style speed perturbation (Ko et al., "Audio
  augmentation for speech recognition", Interspeech 2015, used factors 0.9/1.0/1.1). It is a
  band-limited resampling in the frequency domain: a segment of ``round(factor * L)`` samples is
  transformed, cut (or zero-extended) to the bins of ``L`` samples and transformed back, so
  nothing above the new Nyquist frequency aliases;
- **tilt**: a gain that changes by ``tilt`` dB per octave around 1 kHz (microphone and
  vocal-effort differences);
- **EQ band**: one Gaussian-in-log-frequency bell of ``eq_db`` gain, centre log-uniform in
  ``eq_hz``, width ``eq_octaves`` (room and microphone colouration).

Each crop keeps the peak it had before the augmentation, so the gain augmentation of the
caller still sets the level. All draws come from the caller's ``torch.Generator``, so a training
step's batch is a function of its seed.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ..errors import OptionError
from ..method import spectral


@dataclasses.dataclass(frozen=True)
class VoiceAugment:
    """Ranges of the random perturbations (uniform draws; the identity lies inside each range)."""

    speed: tuple[float, float] = (0.88, 1.12)
    tilt_db_per_octave: tuple[float, float] = (-2.0, 2.0)
    eq_db: tuple[float, float] = (-6.0, 6.0)
    eq_hz: tuple[float, float] = (150.0, 6000.0)
    eq_octaves: tuple[float, float] = (0.3, 1.5)
    sample_rate: int = spectral.SAMPLE_RATE

    @property
    def max_speed(self) -> float:
        return max(self.speed)

    def source_length(self, length: int) -> int:
        """Samples a crop must have so that the fastest speed still yields ``length`` samples."""
        return math.ceil(length * self.max_speed) + 1

    def __call__(self, crops: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
        """Augment ``crops [n, >= source_length(length)]`` into ``[n, length]``."""
        n = crops.shape[0]
        if crops.shape[-1] < self.source_length(length):
            raise ValueError(f"crops need {self.source_length(length)} samples, got {crops.shape[-1]}")

        def draw(low_high: tuple[float, float]) -> torch.Tensor:
            lo, hi = low_high
            return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)

        factor, tilt, eq_db = draw(self.speed), draw(self.tilt_db_per_octave), draw(self.eq_db)
        log_lo, log_hi = math.log2(self.eq_hz[0]), math.log2(self.eq_hz[1])
        centre = 2 ** (log_lo + (log_hi - log_lo) * torch.rand(n, generator=generator, dtype=torch.float64))
        width = draw(self.eq_octaves)

        bins = length // 2 + 1
        freq = torch.arange(bins, dtype=torch.float64) * self.sample_rate / length
        octaves = torch.log2(freq.clamp(min=50.0) / 1000.0)
        out = torch.empty(n, length, dtype=crops.dtype)
        for i in range(n):
            source = crops[i, : max(round(float(factor[i]) * length), 2)].to(torch.float64)
            spec = torch.fft.rfft(source)
            resized = torch.zeros(bins, dtype=spec.dtype)
            keep = min(bins, spec.shape[-1])
            resized[:keep] = spec[:keep] * (length / source.shape[-1])
            bell = eq_db[i] * torch.exp(-0.5 * (torch.log2(freq.clamp(min=1.0) / centre[i]) / width[i]) ** 2)
            gain_db = tilt[i] * octaves + bell
            wav = torch.fft.irfft(resized * 10 ** (gain_db / 20), n=length)
            peak_before = source.abs().max()
            wav = wav * (peak_before / wav.abs().max().clamp(min=1e-12))
            out[i] = wav.to(crops.dtype)
        return out


AUGMENTATIONS = {"none": None, "voice": VoiceAugment()}


def augmentation(name: str) -> VoiceAugment | None:
    """The augmentation called ``name`` in :data:`AUGMENTATIONS` (``None`` for ``"none"``), or
    :class:`~sips.errors.OptionError`."""
    if name not in AUGMENTATIONS:
        raise OptionError(f"Unknown augmentation {name!r}; choose one of {', '.join(AUGMENTATIONS)}.")
    return AUGMENTATIONS[name]
