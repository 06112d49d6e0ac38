"""A weights-free classical enhancer: Wiener filtering with decision-directed SNR estimation.

Registered as the predictor ``"wiener"``. The noise power spectrum is tracked with a simplified
minimum-statistics estimator (the minimum of the smoothed periodogram over a sliding window,
bias-corrected), the a-priori SNR with the decision-directed rule, and the Wiener gain
``xi / (1 + xi)`` is floored to limit musical noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..arrays import accepts_numpy
from .predictors import register_adapter


@register_adapter("wiener")
class WienerFilter:
    """Single-channel Wiener filter; ``[B, T] -> [B, 1, T]`` at ``sample_rate``.

    Args:
        sample_rate: rate of the input (the frame sizes follow it; default 16 kHz).
        frame_ms: STFT window length (hop is a quarter of it).
        smoothing: time constant of the periodogram smoothing (per frame).
        window_s: length of the minimum-tracking window in seconds.
        bias: multiplicative correction of the tracked minimum.
        alpha: decision-directed smoothing factor.
        gain_floor_db: lowest gain applied.
        device: where to run.
    """

    n_src = 1

    def __init__(
        self,
        sample_rate: int = 16000,
        frame_ms: float = 32.0,
        smoothing: float = 0.85,
        window_s: float = 1.5,
        bias: float = 1.5,
        alpha: float = 0.98,
        gain_floor_db: float = -15.0,
        device: str | torch.device | None = None,
    ) -> None:
        self.sample_rate = int(sample_rate)
        self.n_fft = int(round(sample_rate * frame_ms / 1000))
        self.hop = self.n_fft // 4
        self.smoothing = smoothing
        self.window_frames = max(int(window_s * sample_rate / self.hop), 1)
        self.bias = bias
        self.alpha = alpha
        self.gain_floor = 10 ** (gain_floor_db / 20)
        self.device = torch.device(device) if device is not None else None

    def to(self, device: str | torch.device) -> WienerFilter:
        self.device = torch.device(device)
        return self

    def noise_psd(self, power: torch.Tensor) -> torch.Tensor:
        """Noise power ``[B, F, N]`` from the periodogram ``[B, F, N]``."""
        smooth = torch.empty_like(power)
        state = power[..., :5].mean(-1)
        for n in range(power.shape[-1]):
            state = self.smoothing * state + (1 - self.smoothing) * power[..., n]
            smooth[..., n] = state
        # Sliding minimum over a centred window: -max_pool(-x).
        w = min(self.window_frames, power.shape[-1])
        b, f, n = smooth.shape
        padded = F.pad(smooth.reshape(b * f, 1, n), (w // 2, w - 1 - w // 2), mode="replicate")
        minimum = -F.max_pool1d(-padded, kernel_size=w, stride=1)
        return (self.bias * minimum).reshape(b, f, n).clamp_min(1e-12)

    @accepts_numpy
    def __call__(self, mixture: torch.Tensor) -> torch.Tensor:
        """Enhance ``[B, T]`` (or ``[T]``) -> ``[B, 1, T]`` (numpy in, numpy out)."""
        if mixture.dim() == 1:
            mixture = mixture.unsqueeze(0)
        device = self.device or mixture.device
        x = mixture.to(device=device, dtype=torch.float32)
        window = torch.hann_window(self.n_fft, periodic=True, device=device)
        with torch.inference_mode():
            spec = torch.stft(x, self.n_fft, self.hop, window=window, center=True, return_complex=True)
            power = spec.abs().square()
            noise = self.noise_psd(power)
            post = power / noise  # a-posteriori SNR
            gains = torch.empty_like(power)
            prev = torch.ones_like(power[..., 0])  # |S_hat|^2 / noise of the previous frame
            for n in range(power.shape[-1]):
                prio = self.alpha * prev + (1 - self.alpha) * (post[..., n] - 1).clamp_min(0)
                g = (prio / (1 + prio)).clamp_min(self.gain_floor)
                gains[..., n] = g
                prev = g.square() * post[..., n]
            out = torch.istft(spec * gains, self.n_fft, self.hop, window=window, center=True, length=x.shape[-1])
        return out.unsqueeze(1)
