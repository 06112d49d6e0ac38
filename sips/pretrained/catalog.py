"""The catalog of named priors: short name -> Hub repo id, pinned revision, sha256 of the weights.

The catalog is ``priors/catalog.json`` in the source tree, shipped inside the package as
``sips/catalog.json``. A name from the catalog always downloads the same bytes: its revision is
a tag or a full commit hash, and the downloaded ``model.safetensors`` must have the listed sha256.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from importlib import resources

from ..errors import PriorLoadError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_BRANCHES = ("main", "master")


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    """One named prior.

    Attributes:
        name: short name users type (``sips.load_prior("sips-cpu-16k")``).
        repo_id: Hugging Face Hub repository, ``org/name``.
        revision: a tag or a full 40-hex commit hash (never a moving branch).
        sha256: hex digest of ``model.safetensors`` at that revision.
        sample_rate: audio rate the prior was trained at, in Hz.
        parameters: number of network parameters.
        size_bytes: size of ``model.safetensors``.
        license: licence identifier of the weights (Hub ``license:`` field).
        description: one line.
        cached: whether the weights are in the local Hub cache; filled by
            :func:`sips.available_priors`, ``None`` where not checked.
    """

    name: str
    repo_id: str
    revision: str
    sha256: str
    sample_rate: int
    parameters: int
    size_bytes: int
    license: str
    description: str
    cached: bool | None = None

    @classmethod
    def from_dict(cls, data: dict) -> CatalogEntry:
        fields = [f.name for f in dataclasses.fields(cls) if f.name != "cached"]
        name = data.get("name", "?") if isinstance(data, dict) else "?"
        if not isinstance(data, dict) or sorted(data) != sorted(fields):
            raise PriorLoadError(f"Catalog entry {name!r} must have exactly the fields {', '.join(fields)}.")
        entry = cls(**data)
        if not _REPO_ID.fullmatch(entry.repo_id):
            raise PriorLoadError(f"Catalog entry {name!r}: {entry.repo_id!r} is not a Hub repo id (org/name).")
        if entry.revision in _BRANCHES or not entry.revision:
            raise PriorLoadError(f"Catalog entry {name!r} must pin a tag or commit hash, not {entry.revision!r}.")
        if not _SHA256.fullmatch(entry.sha256):
            raise PriorLoadError(f"Catalog entry {name!r} has no valid sha256 (64 lowercase hex digits).")
        return entry


def parse_catalog(text: str) -> dict[str, CatalogEntry]:
    """Parse catalog JSON (``{"format": 1, "priors": [entry, ...]}``) into ``{name: entry}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PriorLoadError(f"The prior catalog is not valid JSON ({err}).") from None
    if not isinstance(data, dict) or data.get("format") != 1 or not isinstance(data.get("priors"), list):
        raise PriorLoadError('The prior catalog must be {"format": 1, "priors": [...]}.')
    entries: dict[str, CatalogEntry] = {}
    for item in data["priors"]:
        entry = CatalogEntry.from_dict(item)
        if entry.name in entries or "/" in entry.name:
            raise PriorLoadError(f"Catalog name {entry.name!r} is duplicated or contains '/'.")
        entries[entry.name] = entry
    return entries


@functools.cache
def load_catalog() -> dict[str, CatalogEntry]:
    """The catalog shipped with the package, ``{name: CatalogEntry}``."""
    return parse_catalog((resources.files("sips") / "catalog.json").read_text())


def get_entry(name: str) -> CatalogEntry | None:
    """The catalog entry called ``name``, or ``None``."""
    return load_catalog().get(name)
