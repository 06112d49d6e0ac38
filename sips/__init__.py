"""sips — a Stochastic Interpolant Prior for Speech.

A score model trained on clean speech refines the estimate of any enhancement or separation
model::

    import sips
    out = sips.refine(sips.load_predictor("wiener"), mixture, sample_rate=16000)

Submodules that are not imported here (``sips.plot``, ``sips.metrics``, ``sips.files``, ...) load
on first use, so ``sips.plot.uncertainty(...)`` works after a plain ``import sips``.
"""

import importlib

from . import defaults, scaling, spectral
from ._version import __version__
from .errors import (
    AdapterError,
    AudioError,
    ClippingWarning,
    CorruptPriorError,
    HubCacheError,
    HubError,
    LengthMismatchError,
    MissingDependencyError,
    OptionError,
    OutputError,
    PriorLoadError,
    ReportError,
    SampleRateError,
    SipsError,
    SipsWarning,
    TrainingError,
)
from .hub import available_priors
from .predictors import Predictor, as_predictor, available_adapters, load_predictor, register_adapter
from .prior import PriorConfig, ScorePrior, convert_official, load_prior, push_prior
from .quality import QualityScore, quality
from .refine import refine, refine_estimates, refine_stream
from .sampler import sample
from .train import TrainConfig, train

__all__ = [
    "AdapterError",
    "AudioError",
    "ClippingWarning",
    "CorruptPriorError",
    "HubCacheError",
    "HubError",
    "LengthMismatchError",
    "MissingDependencyError",
    "OptionError",
    "OutputError",
    "Predictor",
    "PriorConfig",
    "PriorLoadError",
    "QualityScore",
    "ReportError",
    "SampleRateError",
    "ScorePrior",
    "SipsError",
    "SipsWarning",
    "TrainConfig",
    "TrainingError",
    "__version__",
    "as_predictor",
    "available_priors",
    "available_adapters",
    "convert_official",
    "defaults",
    "load_predictor",
    "load_prior",
    "push_prior",
    "quality",
    "refine",
    "refine_estimates",
    "refine_stream",
    "register_adapter",
    "sample",
    "scaling",
    "spectral",
    "train",
]

# Loaded on first attribute access (they import optional or heavier dependencies, or are rarely needed).
_LAZY_SUBMODULES = frozenset(
    "arrays audio augment catalog checks chunks corpus errors evaluate files fit hub interpolant metrics nets plot "
    "predictors prior provenance report sampler weights wiener".split()
)


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'sips' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY_SUBMODULES)
