"""NCSN++ configuration: the constructor arguments of the backbone (``constructor_kwargs``).

Missing keys take the values of the published ``NCSNpp_VB-DMD.ckpt`` network; unknown keys and
values this implementation cannot build are an error, so that a typo never builds another network.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

from sips.errors import AdapterError
from sips.prediction.configfile import read_config_file

#: The published configuration (StoRM "NCSN++M" predictive model, VoiceBank-DEMAND).
PUBLISHED_CONFIG: dict[str, Any] = {
    "nf": 128,
    "ch_mult": [1, 2, 2, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [0],
    "fir": True,
    "fir_kernel": [1, 3, 3, 1],
    "init_scale": 0.0,
    "fourier_scale": 16,
    "image_size": 256,
    "input_channels": 2,
    "spatial_channels": 1,
    "dropout": 0.0,
}

#: Frequency bins are halved at each level but the last: 256 bins allow at most 9 levels.
MAX_LEVELS = 9
#: The only FIR kernel whose padding the published layers define.
FIR_KERNEL = [1, 3, 3, 1]

ConfigLike = Mapping[str, Any] | str | os.PathLike | None


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AdapterError(f"The NCSN++ config value {name} must be a positive integer, got {value!r}.")
    return value


def _int_list(name: str, value: Any, *, positive: bool) -> list[int]:
    if not isinstance(value, list | tuple) or not value:
        raise AdapterError(f"The NCSN++ config value {name} must be a non-empty list of integers, got {value!r}.")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if positive else 0):
            raise AdapterError(f"The NCSN++ config value {name} must hold integers >= {int(positive)}, got {value!r}.")
    return list(value)


def resolve_config(config: ConfigLike = None) -> dict[str, Any]:
    """A complete, checked dict of constructor arguments.

    Args:
        config: ``None`` (the published network), a dict of constructor arguments (missing keys
            take the published values; a dict holding them under ``"constructor_kwargs"``, as the
            reference ``ncsnpp_config.json`` does, works too), or the path of a JSON/YAML file
            holding such a dict.
    """
    if config is None:
        return copy.deepcopy(PUBLISHED_CONFIG)
    if isinstance(config, str | os.PathLike):
        config = read_config_file(config, "NCSN++ config")
    if not isinstance(config, Mapping):
        raise AdapterError(f"An NCSN++ config must be a dict or a JSON/YAML path, got {type(config).__name__}.")
    if isinstance(config.get("constructor_kwargs"), Mapping):
        config = config["constructor_kwargs"]
    unknown = sorted(set(config) - set(PUBLISHED_CONFIG))
    if unknown:
        raise AdapterError(f"Unknown NCSN++ config key {unknown[0]!r}; the keys are {', '.join(PUBLISHED_CONFIG)}.")
    out = copy.deepcopy(PUBLISHED_CONFIG)
    out.update(copy.deepcopy(dict(config)))
    for name in ("nf", "num_res_blocks", "image_size"):
        _positive_int(name, out[name])
    if out["nf"] < 4:
        raise AdapterError(f"The NCSN++ config value nf must be at least 4 (group normalisation), got {out['nf']}.")
    out["ch_mult"] = _int_list("ch_mult", out["ch_mult"], positive=True)
    if len(out["ch_mult"]) > MAX_LEVELS:
        raise AdapterError(
            f"The NCSN++ config value ch_mult may have at most {MAX_LEVELS} levels (256 frequency bins halved "
            f"at each), got {len(out['ch_mult'])}."
        )
    out["attn_resolutions"] = _int_list("attn_resolutions", out["attn_resolutions"], positive=False)
    if out["fir"] is not True or list(out["fir_kernel"]) != FIR_KERNEL:
        raise AdapterError(
            f"Only FIR resampling with the kernel {FIR_KERNEL} is implemented (fir=True), got "
            f"fir={out['fir']!r}, fir_kernel={out['fir_kernel']!r}."
        )
    out["fir_kernel"] = list(FIR_KERNEL)
    if out["input_channels"] != 2 or out["spatial_channels"] != 1:
        raise AdapterError(
            "Only single-channel complex spectrograms are implemented (input_channels=2, spatial_channels=1), "
            f"got input_channels={out['input_channels']!r}, spatial_channels={out['spatial_channels']!r}."
        )
    for name in ("init_scale", "fourier_scale", "dropout"):
        if isinstance(out[name], bool) or not isinstance(out[name], int | float):
            raise AdapterError(f"The NCSN++ config value {name} must be a number, got {out[name]!r}.")
    if not 0 <= out["dropout"] < 1:
        raise AdapterError(f"The NCSN++ config value dropout must lie in [0, 1), got {out['dropout']!r}.")
    return out
