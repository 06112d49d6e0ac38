"""Priors on the Hugging Face Hub: resolve a name or repo id to a cached folder, and upload.

Everything goes through ``huggingface_hub`` (``hf_hub_download``, ``HfApi``), so the usual
environment applies: ``HF_ENDPOINT``, ``HF_HOME`` / ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``,
``HF_TOKEN``. Requests carry ``library_name="sips"`` and the sips version in the user agent.
This module moves files; reading them into a network is :mod:`sips.prior`'s job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from .._version import __version__
from ..errors import CorruptPriorError, HubCacheError, HubError, PriorLoadError, SipsError, spell
from .catalog import CatalogEntry, get_entry, load_catalog

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
LIBRARY = "sips"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")

# Seconds to wait for any answer from the Hub before calling it unreachable (huggingface_hub
# itself retries a failed connection for about half a minute).
HUB_TIMEOUT = 5.0

_COMMIT = re.compile(r"[0-9a-f]{40}")


class RepoUnavailableError(PriorLoadError):
    """The repo was not found, or the Hub could not be asked: a name meant as a folder ends here too."""


_REPO_SPEC = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<rev>.+))?")


def parse_repo_spec(spec: str, revision: str | None = None) -> tuple[str, str | None]:
    """Split ``"org/name@revision"`` into ``(repo_id, revision)``.

    A ``revision`` argument and an ``@revision`` suffix must agree if both are given.
    """
    match = _REPO_SPEC.fullmatch(spec)
    if match is None:
        raise PriorLoadError(f"{spec!r} is not a Hub repo id (expected org/name or org/name@revision).")
    repo_id, suffix = match["repo"], match["rev"]
    if suffix is not None and revision is not None and suffix != revision:
        raise PriorLoadError(f"Two revisions given for {repo_id}: @{suffix} and {spell('revision', revision)}.")
    return repo_id, suffix if suffix is not None else revision


def is_repo_spec(spec: str) -> bool:
    """Whether ``spec`` has the form of a Hub repo id (``org/name[@revision]``)."""
    return _REPO_SPEC.fullmatch(spec) is not None


def resolve_spec(spec: str, revision: str | None = None) -> tuple[str, str | None, CatalogEntry | None]:
    """``(repo_id, revision, catalog entry or None)`` for a catalog name or a repo id."""
    if "/" not in spec:
        entry = get_entry(spec)
        if entry is None:
            names = ", ".join(sorted(load_catalog())) or "none"
            raise PriorLoadError(
                f"Unknown prior {spec!r}: not a folder, a catalog name ({names}) or a Hub repo id (org/name)."
            )
        if revision is not None and revision != entry.revision:
            raise PriorLoadError(
                f"The catalog prior {spec!r} is pinned to {entry.revision}; to load another revision, "
                f"use its repo id {entry.repo_id!r} with {spell('revision', revision)}."
            )
        return entry.repo_id, entry.revision, entry
    repo_id, revision = parse_repo_spec(spec, revision)
    return repo_id, revision, None


def _api(token: str | bool | None = None):
    from huggingface_hub import HfApi

    return HfApi(token=token, library_name=LIBRARY, library_version=__version__)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_prior(
    spec: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
    check_config: Callable[[Path], object] | None = None,
) -> Path:
    """Download (or find in the cache) a prior's ``config.json`` and ``model.safetensors``.

    Args:
        spec: a catalog name (``"sips-cpu-16k"``) or a repo id (``"org/name"``, ``"org/name@v1"``).
        revision: branch, tag or commit hash; a catalog name is pinned and takes none.
        cache_dir, local_files_only, token, force_download: passed to ``hf_hub_download``.
        check_config: called on the downloaded ``config.json`` before the weights are fetched,
            to refuse a repo of another library early.

    Returns:
        The cache snapshot folder holding both files (one commit).

    Raises:
        PriorLoadError: with one sentence for a missing repo, revision or file, offline mode with
            nothing cached, or pickle-only weights; :class:`~sips.errors.CorruptPriorError` for
            weights whose sha256 differs from the catalog; :class:`~sips.errors.HubCacheError`
            when the cache cannot be written (read-only, no permission, no space left).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, revision, entry = resolve_spec(spec, revision)
    offline = local_files_only or _offline()
    reachable = offline or hub_reachable()
    if not reachable and force_download:
        raise unreachable_error(f"the prior {spec!r} cannot be fetched again")

    def download(filename: str) -> Path:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only or not reachable,  # unreachable: the cache answers at once
                token=token,
                force_download=force_download,
                library_name=LIBRARY,
                library_version=__version__,
            )
        )

    try:
        config_path = download(CONFIG_NAME)
        if check_config is not None:
            check_config(config_path)
        weights_path = download(WEIGHTS_NAME)
    except LocalEntryNotFoundError:
        if not reachable:
            raise unreachable_error(f"the prior {spec!r} is not in the local cache") from None
        raise _not_cached(spec, local_files_only) from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as err:
        raise _diagnose(repo_id, revision, token, err) from None
    except HfHubHTTPError as err:
        raise PriorLoadError(
            f"The Hub at {_endpoint()} refused {repo_id}@{revision or 'main'} ({_reason(err)})."
        ) from None
    except OSError as err:
        if not err.errno:  # a transport error, not the file system's
            raise
        raise cache_error(cache_dir, err) from None
    if entry is not None:
        digest = file_sha256(weights_path)
        if digest != entry.sha256:
            raise CorruptPriorError(
                f"The downloaded {WEIGHTS_NAME} of {entry.name!r} has sha256 {digest[:12]}..., not the catalog's "
                f"{entry.sha256[:12]}...; it was not used (fetch it again with `sips download {entry.name} --force-download`)."
            )
    return weights_path.parent


def cache_error(cache_dir: str | os.PathLike | None, err: OSError) -> HubCacheError:
    """The one sentence for a Hub cache that cannot be written, naming the setting that chose it."""
    from huggingface_hub import constants

    from .._atomic import failure_cause

    if cache_dir is not None:
        folder, setting = cache_dir, f"pass another {spell('cache_dir')}"
    else:
        folder = constants.HF_HUB_CACHE
        variable = "HF_HUB_CACHE" if os.environ.get("HF_HUB_CACHE") else "HF_HOME"
        setting = f"set {variable} to a writable folder (or pass {spell('cache_dir')})"
    return HubCacheError(f"The Hugging Face cache {folder} cannot be written ({failure_cause(err)}); {setting}.")


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode()


def hub_reachable(timeout: float = HUB_TIMEOUT) -> bool:
    """Whether the Hub endpoint (``HF_ENDPOINT``) answers at all within ``timeout`` seconds: one
    request through huggingface_hub's own HTTP session (proxies apply), no retries; any HTTP
    status counts as an answer."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(_endpoint(), timeout=timeout)
    except Exception:  # noqa: BLE001 - any transport failure of the HTTP library the Hub client uses
        return False
    return True


def unreachable_error(consequence: str, error: type[SipsError] = RepoUnavailableError) -> SipsError:
    """The one sentence for a Hub that does not answer: ``consequence`` says what that means here."""
    return error(
        f"The Hugging Face Hub at {_endpoint()} cannot be reached (no answer within {HUB_TIMEOUT:g} s), so "
        f"{consequence}; check the network connection or HF_ENDPOINT."
    )


def _reason(err: Exception) -> str:
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"HTTP {status}" if status is not None else first


def _not_cached(spec: str, local_files_only: bool) -> RepoUnavailableError:
    from huggingface_hub import constants

    if local_files_only or constants.is_offline_mode():
        why = "local_files_only is set" if local_files_only else "HF_HUB_OFFLINE is set"
        return RepoUnavailableError(
            f"The prior {spec!r} is not in the local Hub cache and downloads are off ({why}); "
            f"pre-fetch it while online with `sips download {spec}`."
        )
    return RepoUnavailableError(
        f"The Hub at {constants.ENDPOINT} stopped answering and the prior {spec!r} is not in the local cache; "
        "check the network connection or HF_ENDPOINT."
    )


def _diagnose(repo_id: str, revision: str | None, token: str | bool | None, err: Exception) -> PriorLoadError:
    """Turn a not-found answer into the precise reason (servers differ in which error they send)."""
    from huggingface_hub.errors import HfHubHTTPError

    api, rev = _api(token), revision or "main"
    try:
        refs = api.list_repo_refs(repo_id)
    except HfHubHTTPError:
        return RepoUnavailableError(
            f"The Hub repo {repo_id} was not found at {_endpoint()} (a private repo needs a token: HF_TOKEN or "
            f"{spell('token')})."
        )
    names = [r.name for r in (*refs.branches, *refs.tags)]
    if rev not in names and not _COMMIT.fullmatch(rev):
        return PriorLoadError(f"Revision {rev!r} not found in {repo_id} (it has {', '.join(names) or 'no refs'}).")
    try:
        files = api.list_repo_files(repo_id, revision=rev)
    except HfHubHTTPError:
        return PriorLoadError(f"Revision {rev!r} not found in {repo_id}.")
    if CONFIG_NAME not in files:
        return PriorLoadError(f"{repo_id}@{rev} has no {CONFIG_NAME}, so it is not a sips prior.")
    if WEIGHTS_NAME not in files:
        return missing_weights_error(f"{repo_id}@{rev}", files)
    return PriorLoadError(f"Cannot download {repo_id}@{rev} from {_endpoint()} ({_reason(err)}).")


def missing_weights_error(where: str, files: Sequence[str]) -> PriorLoadError:
    """The error for a prior without ``model.safetensors``; names a pickle file if there is one."""
    pickles = sorted(f for f in files if f.endswith(PICKLE_SUFFIXES))
    if pickles:
        return PriorLoadError(
            f"{where} has {pickles[0]} but no {WEIGHTS_NAME}; sips only loads safetensors and never unpickles "
            f"weights, so convert the published checkpoint with `sips convert` and load that folder."
        )
    return PriorLoadError(f"{where} has no {WEIGHTS_NAME}.")


def is_cached(repo_id: str, revision: str | None = None, cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether config and weights of ``repo_id`` at ``revision`` are in the local Hub cache."""
    from huggingface_hub import try_to_load_from_cache

    return all(
        isinstance(try_to_load_from_cache(repo_id, name, cache_dir=cache_dir, revision=revision), str)
        for name in (CONFIG_NAME, WEIGHTS_NAME)
    )


def available_priors(cache_dir: str | os.PathLike | None = None) -> list[CatalogEntry]:
    """The catalog's priors, each with ``cached`` telling whether it is in the local Hub cache."""
    return [dataclasses.replace(e, cached=is_cached(e.repo_id, e.revision, cache_dir)) for e in load_catalog().values()]


def upload_operations(folder: str | os.PathLike, card: str) -> list:
    """The ``CommitOperationAdd`` list that publishes a prior folder with the given model card."""
    from huggingface_hub import CommitOperationAdd

    folder = Path(folder)
    return [
        CommitOperationAdd(path_in_repo=CONFIG_NAME, path_or_fileobj=str(folder / CONFIG_NAME)),
        CommitOperationAdd(path_in_repo=WEIGHTS_NAME, path_or_fileobj=str(folder / WEIGHTS_NAME)),
        CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=card.encode()),
    ]


def upload(
    operations: list,
    repo_id: str,
    *,
    token: str | bool | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str = "Upload sips prior",
    create_pr: bool = False,
):
    """Create ``repo_id`` if needed and commit ``operations``; returns huggingface_hub's ``CommitInfo``."""
    from huggingface_hub.errors import HfHubHTTPError

    repo_id, _ = parse_repo_spec(repo_id)
    if not hub_reachable():
        raise unreachable_error(f"nothing was uploaded to {repo_id}", HubError)
    api = _api(token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.create_commit(
            repo_id, operations, commit_message=commit_message, revision=revision, create_pr=create_pr
        )
    except HfHubHTTPError as err:
        raise HubError(f"The Hub at {_endpoint()} refused the upload to {repo_id} ({_reason(err)}).") from None
