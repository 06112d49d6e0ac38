"""FlexIO (multi-channel TUSS with TF-Locoformer) as a ``sips`` predictor adapter named ``"flexio"``.

>>> import sips
>>> pred = sips.load_predictor("flexio", checkpoint="flexio_avg.ckpt", n_src=2)  # doctest: +SKIP
>>> estimates = pred(mixture)  # [B, T] -> [B, 2, T]                               # doctest: +SKIP
"""

from __future__ import annotations

from .checkpoint import read_state_dict, unwrap_state_dict
from .config import PUBLISHED_HPARAMS, resolve_hparams
from .model import SeparationModel, StftCodec, build_model
from .net import MultiTussModel
from .predictor import FlexIOPredictor, default_weights_dir, load
from .rope import RotaryEmbedding

__all__ = [
    "PUBLISHED_HPARAMS",
    "FlexIOPredictor",
    "MultiTussModel",
    "RotaryEmbedding",
    "SeparationModel",
    "StftCodec",
    "build_model",
    "default_weights_dir",
    "load",
    "read_state_dict",
    "resolve_hparams",
    "unwrap_state_dict",
]
