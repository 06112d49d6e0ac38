"""Prior networks."""

from .edm2 import ScoreNet, UNet

__all__ = ["ScoreNet", "UNet"]
