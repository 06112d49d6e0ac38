"""sips-asteroid: asteroid models and Conv-TasNet checkpoints as ``sips`` predictors.

Registers two adapters (entry-point group ``sips.adapters``)::

    sips.load_predictor("asteroid", checkpoint="model.pth")          # any asteroid BaseModel
    sips.load_predictor("convtasnet", checkpoint="Conv-TasNet.pt")   # asteroid or kaituoxu (SIPS) Conv-TasNet

asteroid itself is imported lazily, only when an asteroid model is built.
"""

from __future__ import annotations

from .checkpoints import save_default
from .convert import to_asteroid
from .kaituoxu import KaituoxuConfig, KaituoxuConvTasNet
from .predictor import AsteroidPredictor, ConvTasNetPredictor, load, load_convtasnet

__version__ = "0.1.0"

__all__ = [
    "AsteroidPredictor",
    "ConvTasNetPredictor",
    "KaituoxuConfig",
    "KaituoxuConvTasNet",
    "load",
    "load_convtasnet",
    "save_default",
    "to_asteroid",
]
