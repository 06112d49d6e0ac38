"""Sample rates and bands: the mixture's rate, the predictor's rate and the prior's band.

Three rates meet in a refinement: the recording's ``rate`` (any), the predictor's native
``Predictor.sample_rate`` (16 kHz for most models, 48 kHz for DeepFilterNet3 or RNNoise) and the
prior's ``prior.config.sample_rate`` (16 kHz: it models 0-8 kHz). The pipeline
(:mod:`sips.refine`, :mod:`sips.files`) resamples each signal once:

1. the recording goes to the predictor at the predictor's rate (a 44.1 kHz file straight to a
   48 kHz predictor, never via 16 kHz);
2. the predictor's estimate and the recording go to the prior's rate, where the prior refines;
3. back at the recording's rate, :func:`join` keeps the prior's band and takes the band above it
   from the predictor's estimate (for recordings above the prior's rate).

The crossover of step 3 is complementary by construction: with ``U`` the upsampling from the
prior's rate and ``D`` the downsampling to it,

    out = x_hat + U(refined - D(x_hat)) = (x_hat - U D x_hat) + U refined,

so the low band is ``U refined`` and the high band is ``(1 - U D) x_hat``; ``U D`` is the
resampler's anti-aliasing low-pass (soxr ``VHQ``, linear phase; for a 16 kHz prior, measured
with tones at 48 kHz: 0.0 dB up to 7.3 kHz, -0.65 dB at 7.5 kHz, -3 dB near 7.55 kHz, -24 dB at
7.7 kHz, below -60 dB from 7.8 kHz; checked in ``tests/test_bands.py``). So the crossover
frequency is 7.55 kHz.
When the prior changes nothing (``refined == D(x_hat)``, e.g. ``strength=0``) the output is the
predictor's full-band estimate itself, to float precision. A predictor below the recording's
rate has no band above its own Nyquist frequency: that band of the output stays empty (the
mixture's noisy upper band is not put back).

All resampling is soxr's ``VHQ`` polyphase filter (the same as the file layer's).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import SampleRateError

QUALITY = "VHQ"


def check_rate(rate: object, what: str = "sample_rate") -> int:
    """``rate`` as a positive ``int`` (Hz), or :class:`~sips.errors.SampleRateError` in one sentence."""
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
        if isinstance(rate, float) and rate.is_integer() and rate > 0:
            return int(rate)
        raise SampleRateError(f"{what} must be a positive whole number of Hz, got {rate!r}.")
    return int(rate)


def resample_array(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """soxr ``VHQ`` resampling of ``[..., T]`` float32 audio from ``rate_in`` to ``rate_out`` Hz.

    Returns ``[..., T']`` float32 with ``T' = ceil(T * rate_out / rate_in)`` (soxr's length); the
    input itself when the rates are equal."""
    if rate_in == rate_out:
        return audio
    import soxr

    flat = np.ascontiguousarray(audio.reshape(-1, audio.shape[-1]), dtype=np.float32)
    out = soxr.resample(flat.T, rate_in, rate_out, quality=QUALITY).T  # soxr: [T, channels]
    return np.ascontiguousarray(out.reshape(*audio.shape[:-1], out.shape[-1]), dtype=np.float32)


def resample(x: torch.Tensor, rate_in: int, rate_out: int, length: int | None = None) -> torch.Tensor:
    """:func:`resample_array` for a float tensor ``[..., T]`` on any device (computed on the CPU).

    Args:
        x: ``[..., T]`` samples at ``rate_in`` Hz.
        rate_in, rate_out: rates in Hz.
        length: crop or zero-pad the result to this many samples (``None``: soxr's length).

    Returns:
        ``[..., T']`` float32 on ``x``'s device; ``x`` itself (as float32) when the rates are equal
        and no length is asked for.
    """
    if rate_in != rate_out:
        out = resample_array(x.detach().float().cpu().numpy(), rate_in, rate_out)
        x = torch.from_numpy(out).to(x.device)
    x = x.float()
    if length is not None and x.shape[-1] != length:
        x = x[..., :length] if x.shape[-1] > length else torch.nn.functional.pad(x, (0, length - x.shape[-1]))
    return x


def join(estimate: torch.Tensor, refined_low: torch.Tensor, estimate_low: torch.Tensor, rate: int, low_rate: int):
    """The full-band output: the prior's band from ``refined_low``, the band above from ``estimate``.

    Args:
        estimate: ``[..., T]`` the predictor's estimate at the recording's ``rate``.
        refined_low: ``[..., T_low]`` the refined signal at the prior's ``low_rate``.
        estimate_low: ``[..., T_low]`` exactly the estimate the prior refined (``estimate``
            downsampled to ``low_rate``).
        rate, low_rate: Hz, ``rate >= low_rate``.

    Returns:
        ``[..., T]``: ``estimate + U(refined_low - estimate_low)`` (see the module's docstring).
    """
    correction = resample(refined_low - estimate_low, low_rate, rate, length=estimate.shape[-1])
    return estimate + correction.to(estimate.device)
