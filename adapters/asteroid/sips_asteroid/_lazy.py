"""Lazy access to asteroid (slow to import, and noisy: torchmetrics 0.11 imports pkg_resources)."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

from sips.errors import MissingDependencyError


def import_asteroid(module: str = "asteroid.models") -> ModuleType:
    """Import ``module`` of asteroid, silencing only the pkg_resources deprecation warning.

    Raises:
        MissingDependencyError: asteroid is not installed.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated", category=UserWarning)
            warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated", category=DeprecationWarning)
            return importlib.import_module(module)
    except ImportError as err:
        missing = err.name or "asteroid"
        raise MissingDependencyError(
            f"asteroid is needed for this model but cannot be imported (module {missing!r} is missing); "
            "install it with `pip install sips-asteroid` (or `pip install asteroid`)."
        ) from None
