"""``ScorePrior``: the SIPS network with its configuration, saving and loading.

A prior folder holds ``config.json`` (the :class:`PriorConfig` fields plus a ``"library": "sips"``
marker), ``model.safetensors`` (the EMA weights, loaded strictly) and a ``README.md`` model card.
The published MERL checkpoint (``SIPS.pt`` + ``SIPS_config.json``) becomes such a folder with
:func:`convert_official`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_path, write_text
from ..checks import check_device
from ..errors import CorruptPriorError, PriorLoadError, in_command_line, spell
from ..pretrained.hub import CARD_NAME, CONFIG_NAME, LIBRARY, WEIGHTS_NAME
from ..pretrained.weights import load_strict, load_torch_checkpoint
from .nets.edm2 import ScoreNet

# Fields of the configuration that describe the method rather than the network.
_METHOD_FIELDS = ("a", "c", "t_eps", "T", "sample_rate", "label_balance")


@dataclasses.dataclass(frozen=True)
class PriorConfig:
    """Hyper-parameters of a prior; defaults are the published SIPS network (62.5 M parameters).

    Network: ``model_channels * channel_mult[l]`` channels at level ``l``, ``num_blocks`` residual
    blocks per level, self-attention at the frequency resolutions ``attn_resolutions`` (plus the
    lowest decoder level, as in EDM2) with ``channels_per_head`` channels per head, a log-variance
    head on a ``logvar_channels``-wide Fourier embedding of ``t``.
    Method: training noise ``a + gamma(t)``, ``gamma(t) = c sin(pi t)^2``, audio at ``sample_rate``.
    """

    freq_resolution: int = 256
    spec_channels: int = 2
    model_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 2, 2, 2)
    num_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    logvar_channels: int = 128
    channel_mult_noise: int | None = None
    channel_mult_emb: int | None = None
    concat_balance: float = 0.5
    label_balance: float = 0.5
    channels_per_head: int = 64
    dropout: float = 0.0
    res_balance: float = 0.3
    attn_balance: float = 0.3
    clip_act: float | None = 256
    resample_filter: tuple[float, ...] = (1, 1)
    a: float = 0.1
    c: float = 0.5
    t_eps: float = 0.0
    T: float = 1.0
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        for name in ("channel_mult", "attn_resolutions", "resample_filter"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.channel_mult or self.model_channels < 1 or self.num_blocks < 0:
            raise PriorLoadError("A prior needs model_channels >= 1, num_blocks >= 0 and a non-empty channel_mult.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriorConfig:
        """Build from a mapping; keys starting with ``_`` or naming the class are ignored."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if not k.startswith("_") and k not in ("class_name", "library")}
        unknown = sorted(set(kwargs) - fields)
        if unknown:
            raise PriorLoadError(f"Unknown prior configuration field(s): {', '.join(unknown)}.")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    def network_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in _METHOD_FIELDS}

    @property
    def frame_multiple(self) -> int:
        """Frames are padded to a multiple of this (``2 ** len(channel_mult)``)."""
        return 2 ** len(self.channel_mult)


class ScorePrior(ScoreNet):
    """A clean-speech score prior: ``prior(x [B, 2, 256, W], t [B]) -> z_hat [B, 2, 256, W]``.

    ``W`` must be a multiple of ``2 ** (len(channel_mult) - 1)``; :mod:`sips.refine` pads to
    :attr:`PriorConfig.frame_multiple`. With ``return_logvar=True`` the learned log-variance
    ``[B, 1, 1, 1]`` is returned too. The state-dict keys equal the published checkpoint's.
    """

    def __init__(self, config: PriorConfig | None = None, **kwargs: Any) -> None:
        if config is not None and kwargs:
            raise TypeError("Pass either a PriorConfig or keyword arguments, not both.")
        config = config if config is not None else PriorConfig(**kwargs)
        super().__init__(**config.network_kwargs())
        self.config = config
        self.eval()

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(
        self, directory: str | os.PathLike, card: str | None = None, dtype: torch.dtype = torch.float32
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``README.md`` into ``directory``.

        ``dtype=torch.float16`` halves the file (a large prior under the Hub's and the repository's
        file-size limits); loading always fills the float32 network.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"library": LIBRARY, "class_name": type(self).__name__, **self.config.to_dict()}
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        write_text(directory / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_file(state, tmp, metadata={"format": "pt", "library": LIBRARY})
        write_text(directory / CARD_NAME, card if card is not None else model_card(self))
        return directory

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        force_download: bool = False,
        device: str | torch.device | None = None,
    ) -> ScorePrior:
        """Load a prior from a folder, a catalog name or a Hugging Face Hub repo (strict).

        Args:
            name_or_path: a folder written by :meth:`save_pretrained`; a catalog name (see
                :func:`sips.available_priors`), pinned and checked by sha256; or a Hub repo id
                ``"org/name"`` / ``"org/name@revision"``.
            revision: branch, tag or commit hash of a Hub repo.
            cache_dir, local_files_only, token, force_download: as in ``huggingface_hub``;
                ``HF_HUB_OFFLINE``, ``HF_HUB_CACHE``/``HF_HOME`` and ``HF_ENDPOINT`` apply.
            device: where to put the network (default CPU).
        """
        check_device(device)
        path = Path(name_or_path)
        if path.is_dir():
            if revision is not None:
                raise PriorLoadError(f"{spell('revision', revision)} was given, but {path} is a local folder.")
            return cls._from_folder(path, device)
        spec = str(name_or_path)
        if path.is_file():
            raise PriorLoadError(f"{spec} is a file; a prior is a folder with {CONFIG_NAME} and {WEIGHTS_NAME}.")
        from ..pretrained.hub import RepoUnavailableError

        if _path_like(spec):
            raise PriorLoadError(f"Prior folder not found: {spec} does not exist.")
        try:
            return fetch_and_load(
                spec,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                force_download=force_download,
                device=device,
            )[1]
        except RepoUnavailableError as err:
            if "/" not in spec or "@" in spec or revision is not None:  # surely not meant as a folder
                raise
            reason = str(err)
            reason = reason[0].lower() + reason[1:] if reason[1:2].islower() else reason
            raise PriorLoadError(f"No folder {spec} exists here, and as a Hub repo id: {reason}") from None

    @classmethod
    def _from_folder(cls, directory: Path, device: str | torch.device | None, source: str | None = None) -> ScorePrior:
        from ..pretrained.hub import missing_weights_error

        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not config_path.is_file():
            raise PriorLoadError(f"The prior folder {directory} has no {CONFIG_NAME}.")
        config = read_config(config_path)
        if not weights_path.is_file():
            raise missing_weights_error(f"The prior folder {directory}", [p.name for p in directory.iterdir()])
        prior = cls(config)
        load_weights(prior, weights_path, source)
        if device is not None:
            prior.to(device)
        return prior

    def push_to_hub(self, repo_id: str, **kwargs: Any):
        """Save to a temporary folder and upload it with :func:`push_prior` (same keyword arguments)."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            return push_prior(tmp, repo_id, **kwargs)


def _path_like(spec: str) -> bool:
    """Whether a prior name that is no existing folder can only be meant as a path: it starts with
    ``/ . ~``, has a backslash or a trailing slash, is no ``org/name[@revision]``, or its parent
    folder exists (``runs/myprior`` where ``runs/`` does)."""
    from ..pretrained.hub import is_repo_spec

    if "@" in spec and is_repo_spec(spec):
        return False
    if spec.startswith(("/", ".", "~")) or "\\" in spec or spec.endswith("/"):
        return True
    return "/" in spec and (not is_repo_spec(spec) or Path(spec).parent.is_dir())


def download_prior(
    name_or_repo: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
) -> Path:
    """Fetch a catalog or Hub prior into the local Hub cache and return its snapshot folder.

    ``config.json`` is checked before the weights are downloaded, and a catalog prior's weights
    must match the catalog's sha256. Arguments as in :meth:`ScorePrior.from_pretrained`.
    """
    from ..pretrained.hub import fetch_prior, is_repo_spec

    if "/" in name_or_repo and not is_repo_spec(name_or_repo):
        raise PriorLoadError(f"Prior not found: {name_or_repo} is neither a folder nor a Hub repo id (org/name).")
    return fetch_prior(
        name_or_repo,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        force_download=force_download,
        check_config=read_config,
    )


def fetch_and_load(
    spec: str, *, device: str | torch.device | None = None, force_download: bool = False, **hub: Any
) -> tuple[Path, ScorePrior]:
    """``(snapshot folder, prior)`` of a catalog name or Hub repo id (:func:`download_prior`).

    A cached file that cannot be read (truncated, damaged: :class:`CorruptPriorError`) is fetched
    again once when the Hub answers; otherwise, and if that fails too, the error says how to
    fetch it again. ``hub`` holds ``revision``, ``cache_dir``, ``local_files_only`` and ``token``.
    """
    from ..pretrained.hub import _offline, hub_reachable

    try:
        folder = download_prior(spec, force_download=force_download, **hub)
        return folder, ScorePrior._from_folder(folder, device, source=spec)
    except CorruptPriorError as err:
        if force_download or hub.get("local_files_only") or _offline() or not hub_reachable():
            raise _refetch_hint(err, spec) from None
    try:  # a damaged file in the cache: fetch it again
        folder = download_prior(spec, force_download=True, **hub)
        return folder, ScorePrior._from_folder(folder, device, source=spec)
    except CorruptPriorError as err:
        raise _refetch_hint(err, spec) from None


def _refetch_hint(err: CorruptPriorError, spec: str) -> CorruptPriorError:
    text = str(err)
    if "--force-download" in text:
        return err
    command = f"`sips download {spec} --force-download`"
    how = command if in_command_line() else f"{spell('force_download', True)} (or {command})"
    return CorruptPriorError(f"{text.rstrip('.')}; it is in the Hugging Face cache, so fetch it again with {how}.")


def read_config(path: Path) -> PriorConfig:
    """Read and check a prior ``config.json``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptPriorError(f"Cannot read {path} as JSON ({err}).") from None
    if not isinstance(data, dict) or data.get("library") != LIBRARY:
        raise PriorLoadError(f'{path} is not a sips prior configuration (no "library": "sips").')
    return PriorConfig.from_dict(data)


def load_weights(prior: ScoreNet, path: Path, source: str | None = None) -> None:
    """Load safetensors weights into ``prior`` strictly, with a one-sentence error on mismatch."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CorruptPriorError(f"Cannot read {source or path} as safetensors ({err}).") from None
    load_state_dict_strict(prior, state, source or str(path))


def load_state_dict_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with a concise :class:`PriorLoadError` naming what does not fit."""
    load_strict(module, state, source, error=PriorLoadError)


def embedded_prior_path() -> Path:
    """Folder of the default prior shipped inside the package."""
    return Path(str(resources.files("sips") / "default_prior"))


def load_prior(name_or_path: str | os.PathLike | None = None, **kwargs: Any) -> ScorePrior:
    """Load a prior: ``None`` gives the embedded default (offline); otherwise a folder, a catalog
    name or a Hub repo id, with the keyword arguments of :meth:`ScorePrior.from_pretrained`."""
    check_device(kwargs.get("device"))
    if name_or_path is None:
        if kwargs.get("revision") is not None:
            raise PriorLoadError(f"{spell('revision')} needs a Hub repo id; the embedded prior has no revisions.")
        return ScorePrior._from_folder(embedded_prior_path(), kwargs.get("device"))
    return ScorePrior.from_pretrained(name_or_path, **kwargs)


def convert_official(pt_path: str | os.PathLike, config_json: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Convert the published ``SIPS.pt`` (+ ``SIPS_config.json``) into a prior folder.

    Args:
        pt_path: torch checkpoint, either ``{"ema": state_dict, ...}`` or a bare state dict; read
            with ``torch.load(weights_only=True)`` (never unpickled beyond tensors).
        config_json: the official JSON; its ``model_kwargs`` (minus ``class_name``) are the
            constructor arguments, any U-Net/Block argument included.
        out_dir: folder to write (``config.json``, ``model.safetensors``, ``README.md``).

    Returns:
        ``out_dir`` as a ``Path``.
    """
    pt_path, config_json = Path(pt_path), Path(config_json)
    for path in (pt_path, config_json):
        if not path.is_file():
            raise PriorLoadError(f"File not found: {path}.")
    try:
        official = json.loads(config_json.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PriorLoadError(f"Cannot read {config_json} as JSON ({err}).") from None
    kwargs = official.get("model_kwargs", official) if isinstance(official, dict) else None
    if not isinstance(kwargs, dict):
        raise PriorLoadError(f"{config_json} has no model_kwargs object.")
    config = PriorConfig.from_dict(kwargs)
    checkpoint = load_torch_checkpoint(pt_path, "SIPS checkpoint", error=PriorLoadError)
    if isinstance(checkpoint, dict) and "ema" in checkpoint:
        checkpoint = checkpoint["ema"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise PriorLoadError(f"{pt_path} holds neither a state dict nor a {{'ema': state_dict}} snapshot.")
    prior = ScorePrior(config)
    load_state_dict_strict(prior, {k: v.float() for k, v in checkpoint.items()}, str(pt_path))
    return prior.save_pretrained(
        out_dir,
        card=model_card(prior, description="Converted from the published SIPS checkpoint (merlresearch/sips-speech)."),
    )


_ARCH_PREFIX = "EDM2-style magnitude-preserving U-Net"
_TAGS = ("speech-enhancement", "speech-separation", "diffusion", "sips")


def model_card(
    prior: ScorePrior,
    *,
    repo_id: str | None = None,
    description: str = "A clean-speech score prior for sips.",
    license: str = "other",
    datasets: Sequence[str] = (),
    body: str = "",
) -> str:
    """A README.md with Hugging Face Hub front matter, the architecture and a usage snippet.

    Args:
        prior: the network whose config the card describes.
        repo_id: used in the usage snippet (a placeholder if ``None``).
        description: one paragraph under the title.
        license: Hub licence identifier of the weights.
        datasets: Hub dataset ids or names the prior was trained on.
        body: further Markdown sections (``## Training``, ...), appended after the usage.
    """
    from huggingface_hub import ModelCardData

    cfg = prior.config
    meta = ModelCardData(
        library_name=LIBRARY,
        license=license,
        pipeline_tag="audio-to-audio",
        tags=list(_TAGS),
        datasets=list(datasets) or None,
    )
    arch = (
        f"{_ARCH_PREFIX}, {cfg.model_channels} channels x {list(cfg.channel_mult)}, "
        f"{cfg.num_blocks} block(s) per level, attention at {list(cfg.attn_resolutions) or 'the lowest level only'}, "
        f"{prior.num_parameters:,} parameters, {cfg.sample_rate} Hz."
    )
    usage = (
        f'```python\nimport sips\n\nprior = sips.load_prior("{repo_id or "PATH_OR_REPO"}")\n'
        f'out = sips.refine(sips.load_predictor("wiener"), mixture, prior=prior, sample_rate={cfg.sample_rate})\n```'
    )
    card = f"---\n{meta.to_yaml()}\n---\n\n# sips prior\n\n{description}\n\n{arch}\n\n## Usage\n\n{usage}\n"
    return card + (f"\n{body.strip()}\n" if body.strip() else "")


def _card_parts(path: Path) -> tuple[dict[str, Any], str | None, str]:
    """(front matter, description, extra sections) of an existing card, so that a regenerated
    card keeps what a person wrote; the architecture line and the usage are regenerated."""
    if not path.is_file():
        return {}, None, ""
    from huggingface_hub import ModelCard

    card = ModelCard.load(path)
    head, *sections = re.split(r"(?m)^(?=## )", card.text)
    paragraphs = [p.strip() for p in head.split("\n\n") if p.strip() and not p.strip().startswith("#")]
    description = "\n\n".join(p for p in paragraphs if not p.startswith(_ARCH_PREFIX)) or None
    body = "\n\n".join(sec.strip() for sec in sections if not sec.startswith("## Usage"))
    return card.data.to_dict(), description, body


def push_prior(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    license: str | None = None,
    datasets: Sequence[str] | None = None,
    description: str | None = None,
    token: str | bool | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str = "Upload sips prior",
    create_pr: bool = False,
    dry_run: bool = False,
):
    """Publish a prior folder to the Hub with a model card generated from its config.

    The folder is loaded first (strictly), so a broken prior is never uploaded. Licence, datasets,
    description and extra sections of an existing ``README.md`` are kept unless given here.

    Returns:
        huggingface_hub's ``CommitInfo``, or with ``dry_run=True`` the list of
        ``CommitOperationAdd`` that would be committed (nothing is sent).
    """
    from ..pretrained.hub import parse_repo_spec, upload, upload_operations

    folder = Path(folder)
    repo_id, _ = parse_repo_spec(repo_id)
    if not folder.is_dir():
        raise PriorLoadError(f"Prior folder not found: {folder}.")
    prior = ScorePrior._from_folder(folder, None)
    meta, old_description, body = _card_parts(folder / CARD_NAME)
    card = model_card(
        prior,
        repo_id=repo_id,
        description=description or old_description or "A clean-speech score prior for sips.",
        license=license or meta.get("license") or "other",
        datasets=datasets if datasets is not None else meta.get("datasets") or (),
        body=body,
    )
    operations = upload_operations(folder, card)
    if dry_run:
        return operations
    return upload(
        operations,
        repo_id,
        token=token,
        private=private,
        revision=revision,
        commit_message=commit_message,
        create_pr=create_pr,
    )
