"""Modules of a package loaded on first attribute access, so that ``sips.evaluation.metrics.si_sdr``
works after a plain ``import sips``, as ``sips.metrics.si_sdr`` does, while the package's ``__init__``
imports none of its modules."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterable
from typing import Any


def lazy_modules(package: str, path: Iterable[str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package ``package`` whose folders are ``path``: a name of one of
    its modules imports that module."""

    def names() -> set[str]:
        return {info.name for info in pkgutil.iter_modules(path)}

    def __getattr__(name: str) -> Any:
        if name in names():
            return importlib.import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | names())

    return __getattr__, __dir__
