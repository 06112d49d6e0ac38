"""SEMamba configuration: the ``{"model_cfg": ..., "stft_cfg": ...}`` dict of the SEMamba recipes.

Only these two sections of a SEMamba YAML are read (the training/data sections are ignored). Missing
keys take the values of the published recipe ``SEMamba_advanced.yaml``; unknown keys are an error so
that a typo cannot silently build another network.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sips.errors import AdapterError
from sips.prediction.configfile import read_config_file

#: The published configuration (``recipes/SEMamba_advanced/SEMamba_advanced.yaml``).
PUBLISHED_CONFIG: dict[str, dict[str, Any]] = {
    "model_cfg": {
        "hid_feature": 64,
        "compress_factor": 0.3,
        "num_tfmamba": 4,
        "d_state": 16,
        "d_conv": 4,
        "expand": 4,
        "norm_epsilon": 1e-5,
        "beta": 2.0,
        "input_channel": 2,
        "output_channel": 1,
    },
    "stft_cfg": {"sampling_rate": 16000, "n_fft": 400, "hop_size": 100, "win_size": 400},
}

_INT_KEYS = {
    "hid_feature",
    "num_tfmamba",
    "d_state",
    "d_conv",
    "expand",
    "input_channel",
    "output_channel",
    "sampling_rate",
    "n_fft",
    "hop_size",
    "win_size",
}

ConfigLike = Mapping[str, Any] | str | os.PathLike | None


def published_config() -> dict[str, dict[str, Any]]:
    """A fresh copy of the published configuration."""
    return copy.deepcopy(PUBLISHED_CONFIG)


def resolve_config(config: ConfigLike = None) -> dict[str, dict[str, Any]]:
    """Normalise ``config`` into a complete ``{"model_cfg": {...}, "stft_cfg": {...}}`` dict.

    Args:
        config: ``None`` (the published configuration), a dict with ``model_cfg`` and/or ``stft_cfg``
            (other top-level keys are ignored), or the path of a SEMamba YAML or JSON file.

    Returns:
        A new dict with every key present, integers as ``int`` and floats as ``float``.
    """
    if config is None:
        return published_config()
    if isinstance(config, str | os.PathLike):
        config = _read_file(Path(config))
    if not isinstance(config, Mapping):
        raise AdapterError(f"A SEMamba config must be a dict or a YAML/JSON path, got {type(config).__name__}.")
    if "model_cfg" not in config and "stft_cfg" not in config:
        raise AdapterError("A SEMamba config needs a 'model_cfg' and/or 'stft_cfg' section.")
    out = published_config()
    for section in ("model_cfg", "stft_cfg"):
        given = config.get(section) or {}
        if not isinstance(given, Mapping):
            raise AdapterError(f"The SEMamba config section {section!r} must be a mapping.")
        unknown = sorted(set(given) - set(out[section]))
        if unknown:
            raise AdapterError(f"Unknown key(s) {unknown} in the SEMamba config section {section!r}.")
        for key, value in given.items():
            if value is None and key == "num_tfmamba":
                value = 4  # the reference treats None as 4
            out[section][key] = _coerce(section, key, value)
    _validate(out)
    return out


def _coerce(section: str, key: str, value: Any) -> int | float:
    want = int if key in _INT_KEYS else float
    if isinstance(value, bool) or not isinstance(value, int | float) or (want is int and value != int(value)):
        raise AdapterError(f"The SEMamba config value {section}.{key} must be {want.__name__}, got {value!r}.")
    return want(value)


def _validate(cfg: dict[str, dict[str, Any]]) -> None:
    m, s = cfg["model_cfg"], cfg["stft_cfg"]
    for key in ("hid_feature", "num_tfmamba", "d_state", "d_conv", "expand", "input_channel", "output_channel"):
        if m[key] < 1:
            raise AdapterError(f"The SEMamba config value model_cfg.{key} must be positive, got {m[key]}.")
    for key in ("sampling_rate", "n_fft", "hop_size", "win_size"):
        if s[key] < 1:
            raise AdapterError(f"The SEMamba config value stft_cfg.{key} must be positive, got {s[key]}.")
    if m["input_channel"] != 2:
        raise AdapterError("SEMamba takes magnitude and phase, so model_cfg.input_channel must be 2.")
    if m["output_channel"] != 1:
        raise AdapterError("SEMamba predicts one magnitude mask, so model_cfg.output_channel must be 1.")
    freq_bins = s["n_fft"] // 2 + 1
    if freq_bins < 3 or freq_bins % 2 == 0:
        raise AdapterError(
            f"stft_cfg.n_fft={s['n_fft']} gives {freq_bins} frequency bins; SEMamba needs an odd number >= 3 "
            "(n_fft // 2 even, e.g. 400 or 512)."
        )
    if s["win_size"] > s["n_fft"]:
        raise AdapterError(f"stft_cfg.win_size={s['win_size']} exceeds n_fft={s['n_fft']}.")
    if m["compress_factor"] <= 0 or m["norm_epsilon"] <= 0:
        raise AdapterError("model_cfg.compress_factor and model_cfg.norm_epsilon must be positive.")


def _read_file(path: Path) -> Mapping[str, Any]:
    return read_config_file(path, "SEMamba config")


def derived(cfg: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Sizes that follow from a resolved config: ``freq_bins``, ``encoded_freq_bins``, ``d_inner``, ``dt_rank``."""
    m, s = cfg["model_cfg"], cfg["stft_cfg"]
    freq_bins = s["n_fft"] // 2 + 1
    return {
        "freq_bins": freq_bins,
        "encoded_freq_bins": (freq_bins - 3) // 2 + 1,
        "d_inner": m["expand"] * m["hid_feature"],
        "dt_rank": -(-m["hid_feature"] // 16),
    }
