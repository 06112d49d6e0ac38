"""Predictors wrapping asteroid models and Conv-TasNet checkpoints, and their loaders.

* ``"asteroid"`` (:func:`load`): any asteroid ``BaseModel`` from a package written by its
  ``serialize()`` (``{model_name, model_args, state_dict, infos}``, saved with ``torch.save``), a
  Hub id / zoo name / URL (fetched by asteroid's ``cached_download``), or a folder with
  ``config.json`` + ``model.safetensors``.
* ``"convtasnet"`` (:func:`load_convtasnet`): asteroid ``ConvTasNet`` packages as above, and the
  kaituoxu Conv-TasNet packages used by SIPS (``{N, L, B, H, P, X, R, C, norm_type, causal,
  mask_nonlinear, state_dict, optim_dict, epoch, ...}``). Kaituoxu models run in asteroid where
  its ``ConvTasNet`` constructor expresses them exactly (cLN models), otherwise in the native
  re-implementation :class:`~sips_asteroid.kaituoxu.KaituoxuConvTasNet`.

With ``checkpoint=None``, ``"convtasnet"`` loads the default weights shipped in
``sips_asteroid/default/``; ``"asteroid"`` needs a checkpoint (it is not an alias of ``"convtasnet"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sips.arrays import accepts_numpy
from sips.errors import AdapterError, spell

from . import checkpoints
from ._lazy import import_asteroid
from .convert import constructor_exact, to_asteroid
from .kaituoxu import HPARAM_KEYS, KaituoxuConfig, KaituoxuConvTasNet

#: Rate assumed for kaituoxu checkpoints, which do not record one (SIPS runs its Conv-TasNet at 16 kHz).
KAITUOXU_SAMPLE_RATE = 16000
BACKENDS = ("auto", "asteroid", "native")

Checkpoint = str | os.PathLike | None
Config = Mapping[str, Any] | str | os.PathLike | None


class AsteroidPredictor:
    """An asteroid model as a predictor: ``[B, T] -> [B, n_src, T]`` at ``sample_rate``.

    Args:
        model: an asteroid ``BaseModel`` (or any waveform-to-waveform ``nn.Module``).
        sample_rate: the model's rate; ``None`` reads ``model.sample_rate``.
        n_src: number of sources; ``None`` is taken from the first output.
        device: where to move the model (default: where it is).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        sample_rate: float | None = None,
        n_src: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        rate = sample_rate if sample_rate is not None else getattr(model, "sample_rate", None)
        if rate is None:
            raise AdapterError(
                f"The {type(model).__name__} model does not record its sample rate; give sample_rate in "
                f"{spell('config')}."
            )
        self.model = model.eval()
        self.sample_rate = int(round(float(rate)))
        self._n_src = int(n_src) if n_src is not None else None
        self.min_length = 1
        if device is not None:
            self.model.to(device)

    @classmethod
    def from_checkpoint(
        cls,
        path_or_hub_id: str | os.PathLike,
        *,
        config: Config = None,
        n_src: int | None = None,
        device: str | torch.device | None = None,
    ) -> AsteroidPredictor:
        """Load an asteroid package file, model folder or Hub id (see :func:`load`)."""
        return load(path_or_hub_id, config=config, n_src=n_src, device=device)

    @property
    def n_src(self) -> int:
        """Number of sources (found by one forward pass on silence if the model does not say)."""
        if self._n_src is None:
            self(torch.zeros(1, self.sample_rate))
        return self._n_src  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        """Device of the model's weights."""
        for tensor in (*self.model.parameters(), *self.model.buffers()):
            return tensor.device
        return torch.device("cpu")

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> AsteroidPredictor:
        """Move (and optionally cast) the model; returns ``self``."""
        self.model.to(device=device, dtype=dtype)
        return self

    def _forward(self, wav: torch.Tensor) -> torch.Tensor:
        forward = getattr(self.model, "forward_wav", None) or self.model
        return forward(wav)

    @accepts_numpy
    def __call__(self, mixture: torch.Tensor) -> torch.Tensor:
        """Separate/enhance ``[B, T]`` (or ``[T]``) -> ``[B, n_src, T]`` float32 on the model's device (a
        numpy mixture gives a numpy array)."""
        if not isinstance(mixture, torch.Tensor):
            mixture = torch.as_tensor(mixture)
        if mixture.dim() == 1:
            mixture = mixture.unsqueeze(0)
        if mixture.dim() != 2:
            raise AdapterError(f"The predictor expects a mixture [B, T], got shape {list(mixture.shape)}.")
        length = mixture.shape[-1]
        if length < self.min_length:
            raise AdapterError(f"This model needs at least {self.min_length} samples, got {length}.")
        weight = next(iter((*self.model.parameters(), *self.model.buffers())), None)
        dtype = weight.dtype if weight is not None and weight.is_floating_point() else torch.float32
        wav = mixture.to(device=self.device, dtype=dtype)
        self.model.eval()
        with torch.inference_mode():
            out = self._forward(wav)
        if not isinstance(out, torch.Tensor):
            raise AdapterError(f"{type(self.model).__name__} returned {type(out).__name__}, not a tensor.")
        if out.dim() == 2:
            out = out.unsqueeze(1)
        if out.dim() != 3 or out.shape[0] != wav.shape[0]:
            raise AdapterError(
                f"{type(self.model).__name__} returned shape {list(out.shape)} for input {list(wav.shape)}; "
                "expected [B, n_src, T]."
            )
        if self._n_src is None:
            self._n_src = out.shape[1]
        elif out.shape[1] != self._n_src:
            raise AdapterError(f"{type(self.model).__name__} returned {out.shape[1]} sources, expected {self._n_src}.")
        return F.pad(out, (0, length - out.shape[-1])).float()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({type(self.model).__name__}, sample_rate={self.sample_rate}, n_src={self._n_src})"
        )


class ConvTasNetPredictor(AsteroidPredictor):
    """A Conv-TasNet (asteroid ``ConvTasNet`` or native kaituoxu) as a predictor.

    Attributes:
        backend: ``"asteroid"`` (``model`` is an asteroid ``ConvTasNet``) or ``"native"``
            (``model`` is a :class:`~sips_asteroid.kaituoxu.KaituoxuConvTasNet` whose state-dict keys
            are those of the kaituoxu checkpoint).
        min_length: shortest input (the encoder filter length).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        sample_rate: float | None = None,
        n_src: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if isinstance(model, KaituoxuConvTasNet):
            self.backend = "native"
            min_length, model_n_src = model.config.L, model.config.C
            sample_rate = sample_rate if sample_rate is not None else KAITUOXU_SAMPLE_RATE
        else:
            self.backend = "asteroid"
            min_length, model_n_src = model.encoder.filterbank.kernel_size, model.masker.n_src
        if n_src is not None and int(n_src) != model_n_src:
            raise AdapterError(
                f"This Conv-TasNet separates {model_n_src} sources, but {spell('n_src', n_src)} was asked."
            )
        super().__init__(model, sample_rate=sample_rate, n_src=model_n_src, device=device)
        self.min_length = int(min_length)

    @classmethod
    def from_checkpoint(
        cls,
        path_or_hub_id: str | os.PathLike,
        *,
        config: Config = None,
        n_src: int | None = None,
        device: str | torch.device | None = None,
        backend: str = "auto",
    ) -> ConvTasNetPredictor:
        """Load an asteroid or kaituoxu Conv-TasNet checkpoint (see :func:`load_convtasnet`)."""
        return load_convtasnet(path_or_hub_id, config=config, n_src=n_src, device=device, backend=backend)

    def _forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.model(wav)


def load(
    checkpoint: Checkpoint = None,
    config: Config = None,
    n_src: int | None = None,
    device: str | torch.device | None = None,
) -> AsteroidPredictor:
    """The ``"asteroid"`` adapter: any asteroid ``BaseModel`` as a predictor.

    Args:
        checkpoint: a ``.pth`` written with ``torch.save(model.serialize(), path)`` (asteroid's
            package), a folder with ``config.json`` + ``model.safetensors``, a ``.safetensors``
            state dict (with ``config``), or a Hub id / asteroid zoo name / URL
            (``"owner/name[@revision]"``, downloaded by asteroid). Required: this adapter runs the
            model you name; the shipped Conv-TasNet is the ``"convtasnet"`` adapter.
        config: mapping or JSON/YAML file of constructor arguments overriding the package's
            ``model_args`` (e.g. ``{"sample_rate": 16000}``); required for bare state dicts, with an
            optional ``model_name`` (default ``"ConvTasNet"``).
        n_src: expected number of sources (checked against the model).
        device: where to run.

    Returns:
        An :class:`AsteroidPredictor` (a :class:`ConvTasNetPredictor` for ConvTasNet models).

    Raises:
        AdapterError: no ``checkpoint`` (one sentence pointing to ``"convtasnet"`` for the shipped
            weights), or one that cannot be read or does not fit.
    """
    if checkpoint is None:
        raise AdapterError(
            f"The asteroid predictor runs an asteroid model you name, so it needs {spell('checkpoint')} (a "
            "serialize() package, a folder or a Hub id); the shipped Conv-TasNet is the predictor convtasnet."
        )
    kind, obj, cfg, source, name = _open(checkpoint, config)
    if kind in ("kaituoxu", "kaituoxu_state"):
        raise AdapterError(f"{source} is a kaituoxu Conv-TasNet checkpoint; load it with the 'convtasnet' adapter.")
    model_name, model = _asteroid_model(kind, obj, cfg, source, name)
    if model_name.lower() == "convtasnet":
        return ConvTasNetPredictor(model, n_src=n_src, device=device)
    model_n_src = _model_n_src(model)
    if n_src is not None and model_n_src is not None and int(n_src) != model_n_src:
        raise AdapterError(f"{source} separates {model_n_src} sources, but {spell('n_src', n_src)} was asked.")
    return AsteroidPredictor(model, n_src=model_n_src if model_n_src is not None else n_src, device=device)


def load_convtasnet(
    checkpoint: Checkpoint = None,
    config: Config = None,
    n_src: int | None = None,
    device: str | torch.device | None = None,
    *,
    backend: str = "auto",
) -> ConvTasNetPredictor:
    """The ``"convtasnet"`` adapter: asteroid or kaituoxu (SIPS) Conv-TasNet checkpoints.

    Args:
        checkpoint: an asteroid ``ConvTasNet`` package / folder / Hub id as for :func:`load`; a
            kaituoxu package (``torch.save`` of ``{N, L, B, H, P, X, R, C, norm_type, causal,
            mask_nonlinear, state_dict, optim_dict, epoch, ...}``); or a bare kaituoxu state dict
            (``.pth`` / ``.safetensors``) with the hyper-parameters in ``config``. ``None``: the
            default weights shipped in ``sips_asteroid/default/``.
        config: for kaituoxu checkpoints ``sample_rate`` (default 16000, not recorded in the
            package) and, for bare state dicts, ``N, L, B, H, P, X, R, C`` (+ ``norm_type``,
            ``causal``, ``mask_nonlinear``); for asteroid packages, overrides of ``model_args``.
        n_src: expected number of sources (checked).
        device: where to run.
        backend: for kaituoxu checkpoints: ``"auto"`` runs cLN models as an asteroid ``ConvTasNet``
            (its constructor expresses them exactly) and every other model natively;
            ``"asteroid"`` also converts non-causal gLN / BN models (first norm replaced by
            ``ChanLN``; causal gLN / BN are impossible in asteroid); ``"native"`` always runs the
            re-implementation, whose state-dict keys equal the checkpoint's.
    """
    if backend not in BACKENDS:
        raise AdapterError(f"Unknown Conv-TasNet backend {backend!r}; expected one of {', '.join(BACKENDS)}.")
    kind, obj, cfg, source, name = _open(checkpoint, config)
    if kind in ("asteroid", "asteroid_state"):
        if backend == "native":
            raise AdapterError(
                f"{source} is an asteroid package, which runs in asteroid; backend='native' is for kaituoxu checkpoints."
            )
        model_name, model = _asteroid_model(kind, obj, cfg, source, name, only="ConvTasNet")
        return ConvTasNetPredictor(model, n_src=n_src, device=device)
    hparams, rate, state = _kaituoxu_parts(kind, obj, cfg, source)
    native = KaituoxuConvTasNet(hparams)
    checkpoints.check_state(native, state, source)
    native.load_state_dict(state, strict=True)
    if backend == "asteroid" or (backend == "auto" and constructor_exact(hparams)):
        model = to_asteroid(hparams, native.state_dict(), sample_rate=rate)
        return ConvTasNetPredictor(model, sample_rate=rate, n_src=n_src, device=device)
    return ConvTasNetPredictor(native, sample_rate=rate, n_src=n_src, device=device)


def _open(checkpoint: Checkpoint, config: Config) -> tuple[str, Any, dict[str, Any], str, str | None]:
    """``(kind, object, config, source description, hub name or None)`` of a checkpoint."""
    cfg = checkpoints.read_config(config)
    hub_name = None
    if checkpoint is None:
        folder = checkpoints.default_folder()
        if not folder.is_dir():
            raise AdapterError(
                f"No default weights are shipped with sips-asteroid yet; pass {spell('checkpoint')} (a file, folder "
                "or Hub id)."
            )
        path, source = folder, f"the default weights ({folder})"
    else:
        path, source = checkpoints.resolve(checkpoint), str(checkpoint)
        if not Path(os.path.expanduser(os.fspath(checkpoint))).exists():
            hub_name = str(checkpoint)
    if path.is_dir():
        file_cfg, obj = checkpoints.read_folder(path)
        cfg = {**file_cfg, **cfg}
    elif path.suffix.lower() == ".safetensors":
        obj = checkpoints.read_safetensors(path)
    else:
        obj = checkpoints.safe_torch_load(path)
    return checkpoints.classify(obj, source), obj, cfg, source, hub_name


def _asteroid_model(
    kind: str, obj: Any, cfg: dict[str, Any], source: str, hub_name: str | None, only: str | None = None
) -> tuple[str, torch.nn.Module]:
    """Build and strictly load the asteroid model of a package or a bare state dict + config."""
    if kind == "asteroid":
        model_name, state = obj["model_name"], obj["state_dict"]
        args = dict(obj["model_args"])
        args.update({k: v for k, v in cfg.items() if k != "model_name"})
        if "sample_rate" not in args and hub_name is not None:
            rate = checkpoints.hub_sample_rate(hub_name)
            if rate is not None:
                args["sample_rate"] = rate
    else:
        if not cfg:
            raise AdapterError(
                f"{source} is a bare state dict; pass {spell('config')} with the model's constructor arguments "
                "(and model_name if it is not a ConvTasNet)."
            )
        args = dict(cfg)
        model_name, state = args.pop("model_name", "ConvTasNet"), obj
    if not isinstance(model_name, str) or not isinstance(state, Mapping):
        raise AdapterError(f"{source} is not a valid asteroid package (model_name or state_dict malformed).")
    if only is not None and model_name.lower() != only.lower():
        raise AdapterError(
            f"{source} holds an asteroid {model_name}, not a {only}; load it with the 'asteroid' adapter."
        )
    models = import_asteroid("asteroid.models")
    try:
        model_cls = models.get(model_name)
    except ValueError:
        raise AdapterError(
            f"{source} holds an asteroid model {model_name!r} that asteroid does not know "
            "(register custom models with asteroid.models.register_model first)."
        ) from None
    try:
        model = model_cls(**args)
    except (TypeError, ValueError, AssertionError, KeyError) as err:
        raise AdapterError(f"{source}: asteroid's {model_name} rejects its arguments ({err}).") from None
    checkpoints.check_state(model, state, source)
    model.load_state_dict(state, strict=True)
    return model_name, model


def _model_n_src(model: torch.nn.Module) -> int | None:
    getter = getattr(model, "get_model_args", None)
    try:
        args = getter() if getter is not None else {}
    except (NotImplementedError, AttributeError, AssertionError):
        args = {}
    value = args.get("n_src", getattr(getattr(model, "masker", None), "n_src", None))
    return int(value) if isinstance(value, int) else None


def _strip_module_prefix(state: Mapping[str, Any]) -> Mapping[str, Any]:
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def _kaituoxu_parts(
    kind: str, obj: Any, cfg: dict[str, Any], source: str
) -> tuple[KaituoxuConfig, float, Mapping[str, Any]]:
    """Hyper-parameters, sample rate and state dict of a kaituoxu package or bare state dict."""
    cfg = dict(cfg)
    rate = cfg.pop("sample_rate", KAITUOXU_SAMPLE_RATE)
    unknown = sorted(set(cfg) - set(HPARAM_KEYS))
    if unknown:
        raise AdapterError(
            f"Unknown config keys {', '.join(unknown)} for a kaituoxu Conv-TasNet; "
            f"expected sample_rate and {', '.join(HPARAM_KEYS)}."
        )
    if kind == "kaituoxu":
        hparams = KaituoxuConfig.from_mapping(obj, source)
        if cfg and KaituoxuConfig.from_mapping({**obj, **cfg}, "config") != hparams:
            raise AdapterError(f"config disagrees with the hyper-parameters stored in {source}.")
        state = obj["state_dict"]
        if not isinstance(state, Mapping):
            raise AdapterError(f"{source}: 'state_dict' is a {type(state).__name__}, not a mapping of tensors.")
    else:
        if not cfg:
            raise AdapterError(
                f"{source} is a bare Conv-TasNet state dict; pass {spell('config')} with its hyper-parameters "
                "N, L, B, H, P, X, R, C (and norm_type, causal, mask_nonlinear)."
            )
        hparams = KaituoxuConfig.from_mapping(cfg, f"the config for {source}")
        state = obj
    return hparams, rate, _strip_module_prefix(state)
