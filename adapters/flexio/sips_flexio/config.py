"""FlexIO hyper-parameters: the published configuration and reading/validating user configurations.

A configuration ("hparams") has the structure of the published ``flexio_hparams.yaml``::

    encoder_name: stft        encoder_conf: {fft_size, window_length, hop_length, window_type, normalize}
    decoder_name: stft        decoder_conf: {...same keys...}
    model_name: mctuss        model_conf: {ref_channel, cross_prompt_module_name, prompts,
                                           nblocks_cross_prompt_module, conf_cross_prompt_module,
                                           nblocks_cond_tse_module, conf_cond_tse_module, ...}

Other top-level keys (training settings of the original recipe) are ignored. A dict wrapping the
hparams under the key ``"hparams"`` (as in a saved ``config.json``) is accepted too.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from sips.errors import AdapterError
from sips.prediction import configfile

__all__ = ["PUBLISHED_HPARAMS", "resolve_hparams", "read_config_file", "sample_rate_of"]


def _swiglu(dim_inner: int, kernel: int) -> dict[str, Any]:
    return {"ffn_type": "swiglu_conv1d", "conf": {"dim_inner": dim_inner, "conv1d_kernel": kernel, "conv1d_shift": 1}}


_STFT_CONF: dict[str, Any] = {
    "fft_size": 512,
    "window_length": 512,
    "hop_length": 256,
    "window_type": "sqrt_hann",
    "normalize": None,
}

#: Hyper-parameters of the published checkpoint ``flexio_avg.ckpt`` (``checkpoints/flexio_hparams.yaml``).
PUBLISHED_HPARAMS: dict[str, Any] = {
    "encoder_name": "stft",
    "encoder_conf": dict(_STFT_CONF),
    "decoder_name": "stft",
    "decoder_conf": dict(_STFT_CONF),
    "model_name": "mctuss",
    "model_conf": {
        "ref_channel": 0,
        "cross_prompt_module_name": "coatt",
        "prompts": ["speech"],
        "nblocks_cross_prompt_module": 4,
        "conf_cross_prompt_module": {
            "emb_dim": 96,
            "num_groups": 8,
            "tf_order": "ft",
            "n_heads": 4,
            "flash_attention": False,
            "attention_dim": 128,
            "freq_ffn_config": [_swiglu(384, 4), _swiglu(384, 4)],
            "frame_ffn_config": [_swiglu(384, 1), _swiglu(384, 1)],
        },
        "nblocks_cond_tse_module": 2,
        "conf_cond_tse_module": {
            "emb_dim": 96,
            "num_groups": 8,
            "tf_order": "ft",
            "n_heads": 4,
            "flash_attention": False,
            "attention_dim": 96,
            "freq_ffn_config": [_swiglu(256, 4), _swiglu(256, 4)],
            "frame_ffn_config": [_swiglu(256, 4), _swiglu(256, 4)],
        },
    },
}

_MODEL_KEYS = ("encoder_name", "encoder_conf", "decoder_name", "decoder_conf", "model_name", "model_conf")
_OPTIONAL_KEYS = ("variance_normalization", "sample_rate")


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON file into a dict."""
    return configfile.read_config_file(path, "FlexIO configuration")


def resolve_hparams(config: dict[str, Any] | str | os.PathLike | None = None) -> dict[str, Any]:
    """Return a validated copy of the model hyper-parameters.

    Args:
        config: ``None`` (the published configuration), a dict, or a YAML/JSON file path. A dict
            holding the hyper-parameters under ``"hparams"`` is unwrapped.

    Returns:
        A new dict with the keys ``encoder_name, encoder_conf, decoder_name, decoder_conf,
        model_name, model_conf`` (and ``variance_normalization`` / ``sample_rate`` if given).
    """
    if config is None:
        return copy.deepcopy(PUBLISHED_HPARAMS)
    if isinstance(config, str | os.PathLike):
        config = read_config_file(config)
    if not isinstance(config, dict):
        raise AdapterError(f"A FlexIO config must be a dict or a YAML/JSON file path, got {type(config).__name__}.")
    if "hparams" in config and isinstance(config["hparams"], dict):
        config = config["hparams"]
    # Accept the constructor's own names (separator_name/separator_conf) as aliases.
    config = dict(config)
    for alias, key in (("separator_name", "model_name"), ("separator_conf", "model_conf")):
        if alias in config and key not in config:
            config[key] = config[alias]
    missing = [k for k in _MODEL_KEYS if k not in config]
    if missing:
        raise AdapterError(f"The FlexIO configuration lacks the key(s) {', '.join(missing)}.")
    out = {k: copy.deepcopy(config[k]) for k in _MODEL_KEYS + _OPTIONAL_KEYS if k in config}
    for key in ("encoder_conf", "decoder_conf", "model_conf"):
        if not isinstance(out[key], dict):
            raise AdapterError(f"The FlexIO configuration entry {key!r} must be a mapping.")
    return out


def sample_rate_of(hparams: dict[str, Any]) -> int:
    """Sample rate the model works at: ``model_conf.sample_rate`` (or top-level ``sample_rate``), else 16 kHz."""
    rate = hparams.get("model_conf", {}).get("sample_rate", hparams.get("sample_rate", 16000))
    return int(rate)
