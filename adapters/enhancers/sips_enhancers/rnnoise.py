"""RNNoise (``"rnnoise"``): the ``librnnoise.so`` shipped in ``pyrnnoise``, through ctypes.

Source: ``pyrnnoise`` 0.4.5 (wrapper Apache-2.0; RNNoise itself and its built-in model BSD-3-Clause,
Xiph.Org / Jean-Marc Valin). ``import pyrnnoise`` needs the FFmpeg-based ``audiolab``, which this
adapter never uses: the package is located without being imported and only its library is loaded.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from sips.errors import AdapterError

from ._common import FLOAT_ARRAY, DeviceLike, ItemwiseEnhancer, Package, factory_options, load_library, run_delayed

PACKAGE = Package("pyrnnoise", "pyrnnoise", no_deps=True)
LIBRARY = "librnnoise.so"
#: RNNoise works on int16-scaled floats; pyrnnoise scales [-1, 1] by 32767.
SCALE = 32767.0
_SIGNATURES = (
    ("rnnoise_create", ctypes.c_void_p, (ctypes.c_void_p,)),
    ("rnnoise_destroy", None, (ctypes.c_void_p,)),
    ("rnnoise_get_frame_size", ctypes.c_int, ()),
    ("rnnoise_process_frame", ctypes.c_float, (ctypes.c_void_p, FLOAT_ARRAY, FLOAT_ARRAY)),
)


class RNNoisePredictor(ItemwiseEnhancer):
    """RNNoise noise suppression: ``[B, T] -> [B, 1, T]`` at 48 kHz (samples in [-1, 1]).

    Samples are scaled to the int16 range (× 32767, as pyrnnoise does) for the library and back;
    the output is not quantised or clipped. Each item of each call gets a fresh state. The delay,
    :attr:`delay` = 960 samples at 48 kHz (two 480-sample frames; 320 at 16 kHz), is removed: the
    input is padded at the end with 960 zeros and the first 960 output samples are dropped, so the
    output is sample-aligned and has the input's length. Items run in parallel on
    ``torch.get_num_threads()`` threads (read at each call); the library runs on the CPU only (the
    output goes back to the mixture's device).

    Args:
        device: accepted for the adapter interface; the library is CPU-only.
    """

    sample_rate = 48000
    delay = 960
    hop = 480

    def __init__(self, device: DeviceLike = None) -> None:
        self.library_path = PACKAGE.file("rnnoise", LIBRARY)
        self._lib = load_library(self.library_path, _SIGNATURES)
        if self._lib.rnnoise_get_frame_size() != self.hop:
            raise AdapterError(f"{self.library_path} works on frames of {self._lib.rnnoise_get_frame_size()} samples.")
        super().__init__(device)

    def _enhance(self, signal: np.ndarray) -> np.ndarray:
        lib = self._lib
        state = lib.rnnoise_create(None)
        try:
            # rnnoise_process_frame(state, out, in)
            out = run_delayed(
                lambda frame, result: lib.rnnoise_process_frame(state, result, frame),
                signal * np.float32(SCALE),
                self.hop,
                self.delay,
            )
        finally:
            lib.rnnoise_destroy(state)
        return out / np.float32(SCALE)


def load_rnnoise(
    checkpoint: None = None,
    config: dict | str | os.PathLike | None = None,
    n_src: int | None = None,
    device: DeviceLike = None,
) -> RNNoisePredictor:
    """Entry point of the ``"rnnoise"`` adapter: ``sips.load_predictor("rnnoise")``.

    The model is RNNoise's built-in one; a checkpoint or config options are refused.
    """
    factory_options("rnnoise", {}, checkpoint=checkpoint, config=config, n_src=n_src, source="pyrnnoise")
    return RNNoisePredictor(device=device)
