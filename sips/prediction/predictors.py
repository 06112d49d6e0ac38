"""Predictors: the ``Predictor`` protocol, the adapter registry and wrapping of plain models.

A predictor maps mixtures ``[B, T]`` to estimates ``[B, n_src, T']`` at its ``sample_rate``, on its
own device, without gradients. Everything about the foreign model stays inside its adapter.

Adapters are found in two ways, both lazily:

* ``@sips.register_adapter("name")`` on a class or factory function (in code that is imported);
* the entry-point group ``sips.adapters`` of any installed distribution
  (``[project.entry-points."sips.adapters"] name = "package.module:Factory"``), loaded only
  when ``load_predictor("name")`` asks for it.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from ..arrays import accepts_numpy
from ..errors import AdapterError, named

ENTRY_POINT_GROUP = "sips.adapters"
DEFAULT_SAMPLE_RATE = 16000


@dataclass(frozen=True)
class AdapterInfo:
    """What a built-in adapter is, known without importing it (``sips predictors``).

    Attributes:
        distribution: the distribution that installs it.
        task: ``"enhance"``, ``"separate"``, ``"enhance/separate"`` (chosen per call with
            ``n_src``) or ``"the model's"`` (whatever the checkpoint holds).
        sample_rate: its native rate in Hz; ``None`` where the checkpoint decides.
        weights: ``"none"`` (no network), ``"shipped"`` (runs without a checkpoint) or
            ``"checkpoint"`` (``checkpoint=`` / ``--checkpoint FILE`` is required).
        note: a few words more.
    """

    distribution: str
    task: str
    sample_rate: int | None
    weights: str
    note: str = ""


# The built-in adapters: what each is, and the distribution named when one is missing. A test holds
# each installed one to this table (tests/adapters/test_contract.py).
BUILTIN_INFO = {
    "deepfilternet": AdapterInfo("sips-enhancers", "enhance", 48000, "shipped", "DeepFilterNet3"),
    "gtcrn": AdapterInfo("sips-enhancers", "enhance", 16000, "shipped", "GTCRN"),
    "nsnet2": AdapterInfo("sips-enhancers", "enhance", 16000, "shipped", "NSNet2; its model 48k runs at 48 kHz"),
    "rnnoise": AdapterInfo("sips-enhancers", "enhance", 48000, "shipped", "RNNoise"),
    "wiener": AdapterInfo("sips-prior", "enhance", 16000, "none", "classical Wiener filter"),
    "semamba": AdapterInfo("sips-semamba", "enhance", 16000, "shipped", "small SEMamba; or SEMamba_advanced.pth"),
    "convtasnet": AdapterInfo("sips-asteroid", "separate", 16000, "shipped", "small 2-speaker; or Conv-TasNet.pt"),
    "asteroid": AdapterInfo("sips-asteroid", "the model's", None, "checkpoint", "any asteroid model"),
    "flexio": AdapterInfo("sips-flexio", "enhance/separate", 16000, "checkpoint", "e.g. flexio_avg.ckpt"),
    "ncsnpp": AdapterInfo("sips-ncsnpp", "enhance", 16000, "checkpoint", "e.g. NCSNpp_VB-DMD.ckpt"),
}
BUILTIN_ADAPTERS = {name: info.distribution for name, info in BUILTIN_INFO.items()}


@runtime_checkable
class Predictor(Protocol):
    """Something that enhances or separates: ``[B, T] -> [B, n_src, T']`` at ``sample_rate``.

    The built-in adapters also take a numpy ``[B, T]`` and then return a float32 numpy array, as
    :func:`sips.refine` does (:func:`sips.arrays.accepts_numpy` gives any adapter that rule)."""

    sample_rate: int
    n_src: int

    def __call__(self, mixture: torch.Tensor) -> torch.Tensor: ...


AdapterFactory = Callable[..., Predictor]
_registry: dict[str, AdapterFactory] = {}


def register_adapter(name: str) -> Callable[[AdapterFactory], AdapterFactory]:
    """Class/function decorator registering a predictor factory under ``name``.

    Registering a different object under a name that is taken raises :class:`AdapterError`.
    """
    key = _key(name)

    def decorate(factory: AdapterFactory) -> AdapterFactory:
        existing = _registry.get(key)
        if existing is not None and existing is not factory and _qualname(existing) != _qualname(factory):
            raise AdapterError(f"A predictor adapter named {name!r} is already registered ({_qualname(existing)}).")
        _registry[key] = factory
        return factory

    return decorate


def unregister_adapter(name: str) -> None:
    """Remove a decorator-registered adapter (entry points stay discoverable)."""
    _registry.pop(_key(name), None)


def _entry_points() -> dict[str, list[importlib.metadata.EntryPoint]]:
    found: dict[str, list[importlib.metadata.EntryPoint]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        bucket = found.setdefault(_key(ep.name), [])
        if all(other.value != ep.value for other in bucket):
            bucket.append(ep)
    return found


def available_adapters() -> list[str]:
    """Names of every registered or installed adapter, sorted (nothing is imported)."""
    return sorted(set(_registry) | set(_entry_points()))


def adapter_distributions() -> dict[str, str | None]:
    """Every available adapter name and the distribution that registers it (``None`` for one
    registered in code with :func:`register_adapter`); nothing is imported."""
    found: dict[str, str | None] = dict.fromkeys(_registry)
    for key, points in _entry_points().items():
        dist = getattr(points[0], "dist", None)
        found[key] = dist.name if dist is not None else None
    return dict(sorted(found.items()))


def default_predictor_name() -> str:
    """The predictor ``sips refine`` uses without ``--predictor``: the first of
    :data:`sips.defaults.PREDICTORS` (ranked by measurement) that is installed."""
    from ..defaults import PREDICTORS

    installed = set(available_adapters())
    return next((name for name in PREDICTORS if name in installed), PREDICTORS[-1])


def get_adapter(name: str) -> AdapterFactory:
    """The factory registered under ``name`` (loading its entry point if needed)."""
    key = _key(name)
    if key in _registry:
        return _registry[key]
    points = _entry_points().get(key, [])
    if len(points) > 1:
        values = ", ".join(ep.value for ep in points)
        raise AdapterError(f"Several installed distributions register the adapter {name!r} ({values}).")
    if not points:
        known = ", ".join(available_adapters()) or "none"
        if key in BUILTIN_ADAPTERS:
            dist = BUILTIN_ADAPTERS[key]
            raise AdapterError(
                f"The predictor {name!r} comes with the distribution {dist}, which is not installed "
                f"(pip install {dist}); installed adapters: {known}."
            )
        raise AdapterError(f"Unknown predictor {name!r}; available adapters: {known} (`sips predictors` lists them).")
    try:
        factory = points[0].load()
    except ImportError as err:
        raise AdapterError(
            f"The adapter {name!r} cannot be imported ({err}); is its package installed completely?"
        ) from None
    return register_adapter(key)(factory)


def load_predictor(name: str, **kwargs: Any) -> Predictor:
    """Build the predictor registered as ``name``; keyword arguments go to its factory.

    Example:
        ``sips.load_predictor("wiener")``.
    """
    if not isinstance(name, str):
        raise AdapterError(
            f"load_predictor expects an adapter name, got {type(name).__name__}; use sips.as_predictor for models."
        )
    factory = get_adapter(name)
    try:
        predictor = factory(**kwargs)
    except TypeError as err:
        unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        reason = str(err).rstrip(".")
        if unexpected:  # named as the user gave it: --checkpoint in the sips command, checkpoint= in Python
            reason = f"it takes no {named(unexpected[1])}"
        raise AdapterError(f"Bad arguments for the predictor {name!r}: {reason}.") from None
    return as_predictor(predictor)


def as_predictor(model: Any, *, sample_rate: int | None = None, n_src: int | None = None) -> Predictor:
    """Return ``model`` as a :class:`Predictor`.

    Objects that already have ``sample_rate``, ``n_src`` and ``__call__`` are returned as they are.
    A plain callable or ``nn.Module`` (``[B, T] -> [B, T]`` or ``[B, n_src, T]``) is wrapped; its
    sample rate is ``sample_rate`` if given, else 16 kHz, the rate of the prior.
    """
    if isinstance(model, Predictor) and sample_rate is None and n_src is None:
        return model
    if not callable(model):
        raise AdapterError(f"A predictor must be callable, got {type(model).__name__}.")
    return CallablePredictor(
        model, sample_rate=sample_rate or getattr(model, "sample_rate", DEFAULT_SAMPLE_RATE), n_src=n_src
    )


class CallablePredictor:
    """Wraps a function or ``nn.Module`` into the predictor contract.

    Args:
        fn: ``[B, T] -> [B, T]`` (one source) or ``[B, n_src, T']``.
        sample_rate: the rate ``fn`` works at.
        n_src: number of sources; ``None`` infers it from the first output.
    """

    def __init__(
        self, fn: Callable[[torch.Tensor], torch.Tensor], *, sample_rate: int, n_src: int | None = None
    ) -> None:
        self.fn = fn
        self.sample_rate = int(sample_rate)
        self._n_src = n_src
        self._inferred = False  # n_src taken from the first output
        if isinstance(fn, torch.nn.Module):
            fn.eval()

    @property
    def n_src(self) -> int:
        return self._n_src if self._n_src is not None else 1

    @property
    def device(self) -> torch.device | None:
        if isinstance(self.fn, torch.nn.Module):
            param = next(self.fn.parameters(), None)
            return param.device if param is not None else None
        return None

    @accepts_numpy
    def __call__(self, mixture: torch.Tensor) -> torch.Tensor:
        """``[B, T] -> [B, n_src, T']`` (numpy in, numpy out)."""
        device = self.device
        if device is not None:
            mixture = mixture.to(device)
        with torch.inference_mode():
            out = self.fn(mixture)
        if not isinstance(out, torch.Tensor):
            raise AdapterError(f"The predictor returned {type(out).__name__}, not a tensor.")
        if out.dim() == 2:
            out = out.unsqueeze(1)
        if out.dim() != 3 or out.shape[0] != mixture.shape[0]:
            raise AdapterError(
                f"The predictor returned shape {list(out.shape)} for input {list(mixture.shape)}; expected [B, n_src, T]."
            )
        if self._n_src is None:
            self._n_src, self._inferred = out.shape[1], True
        elif self._inferred and out.shape[1] != self._n_src:
            raise AdapterError(
                f"The predictor returned {out.shape[1]} sources for one window and {self._n_src} for another."
            )
        return out


def _key(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise AdapterError(f"An adapter name must be a non-empty string, got {name!r}.")
    return name.strip().lower()


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
