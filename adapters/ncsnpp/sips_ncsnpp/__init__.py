"""The predictive NCSN++ of the published SIPS pipeline as a ``sips`` predictor adapter named ``"ncsnpp"``.

>>> import sips
>>> pred = sips.load_predictor("ncsnpp", checkpoint="NCSNpp_VB-DMD.ckpt")  # doctest: +SKIP
>>> estimate = pred(mixture)  # [B, T] -> [B, 1, T] at 16 kHz                # doctest: +SKIP
"""

from __future__ import annotations

from .checkpoint import ALLOWED_GLOBALS, SpecsDataModule, inference_state, load_torch_checkpoint, read_checkpoint
from .config import PUBLISHED_CONFIG, resolve_config
from .net import NCSNpp, NCSNppNetwork, parameter_count
from .predictor import NCSNppPredictor, load

__all__ = [
    "ALLOWED_GLOBALS",
    "PUBLISHED_CONFIG",
    "NCSNpp",
    "NCSNppNetwork",
    "NCSNppPredictor",
    "SpecsDataModule",
    "inference_state",
    "load",
    "load_torch_checkpoint",
    "parameter_count",
    "read_checkpoint",
    "resolve_config",
]
