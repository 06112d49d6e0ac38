"""sips — a Stochastic Interpolant Prior for Speech.

A score model trained on clean speech refines the estimate of any enhancement or separation
model::

    import sips
    out = sips.refine(sips.load_predictor("wiener"), mixture, sample_rate=16000)

The modules are grouped by concern, and data flows one way through the groups (docs/development.md,
"Layout"; ``tests/test_layers.py`` holds the order). Lowest first:

- the shared leaves, modules beside this one: ``errors``, ``defaults``, ``checks``, ``arrays``,
  ``_atomic``, ``_lazy``, ``_version``;
- ``sips.prediction`` (predictors and their registry) and ``sips.pretrained`` (weights, the Hub);
- ``sips.method`` (spectral, interpolant, sampler, nets, prior, scaling, chunks, refine);
- ``sips.io`` (audio files);
- ``sips.training`` and ``sips.evaluation``;
- this module, the public API, and the command line, ``sips.cli``.

Every module is also reachable by its name alone, loaded on first use (``sips.plot``,
``sips.metrics``, ``sips.files``, ...), so ``sips.plot.uncertainty(...)`` and ``from sips import
metrics`` work after a plain ``import sips``, as does ``sips.evaluation.plot.uncertainty(...)``.
Import statements name the module's own path: ``from sips.evaluation.metrics import si_sdr``.
"""

import importlib

from . import defaults
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
from .evaluation.quality import QualityScore, quality
from .method import scaling, spectral
from .method.prior import PriorConfig, ScorePrior, convert_official, load_prior, push_prior
from .method.refine import refine, refine_estimates, refine_stream
from .method.sampler import sample
from .prediction.predictors import Predictor, as_predictor, available_adapters, load_predictor, register_adapter
from .pretrained.hub import available_priors
from .training.train import TrainConfig, train

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

# Modules by group, each loaded on first attribute access as ``sips.<module>`` (they import optional or
# heavier dependencies, or are rarely needed), and the groups and shared modules as ``sips.<name>``.
_GROUPS = {
    "prediction": "bands configfile predictors wiener",
    "pretrained": "catalog hub weights",
    "method": "chunks interpolant nets prior refine sampler scaling spectral",
    "io": "audio files provenance",
    "training": "augment batches corpus fit train",
    "evaluation": "evaluate metrics plot quality report",
}
_LAZY = {name: f".{group}.{name}" for group, names in _GROUPS.items() for name in names.split()} | {
    name: f".{name}" for name in (*_GROUPS, "arrays", "checks", "cli", "errors")
}


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(_LAZY[name], __name__)
    raise AttributeError(f"module 'sips' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
