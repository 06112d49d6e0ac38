"""Expressing a kaituoxu Conv-TasNet as asteroid's ``ConvTasNet``.

Asteroid's model computes the same function as the kaituoxu one when it is built with
``skip_chan=0``, ``encoder_activation="relu"``, ``stride=L//2``, ``mask_act=mask_nonlinear`` and
all added biases set to zero (the extra PReLU before its mask convolution gets slope 1, an exact
identity). Two structural differences remain:

* the kaituoxu separator always starts with a channel-wise LN, while asteroid uses the block norm
  there. For cLN models the constructor alone is therefore exact (up to float32 rounding of a
  different evaluation order); gLN / BN models need that first norm replaced by asteroid's
  ``ChanLN`` after construction, which asteroid's own ``serialize`` cannot record.
* asteroid forces cLN in causal models, so causal gLN / BN models cannot be expressed at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from sips.errors import AdapterError

from ._lazy import import_asteroid
from .kaituoxu import KaituoxuConfig


def constructor_exact(cfg: KaituoxuConfig) -> bool:
    """Whether asteroid's ``ConvTasNet`` constructor alone expresses ``cfg`` (cLN models)."""
    return cfg.norm == "cLN"


def expressible(cfg: KaituoxuConfig) -> bool:
    """Whether ``cfg`` can run as an asteroid ``ConvTasNet`` at all (possibly with the first norm replaced)."""
    return cfg.norm == "cLN" or not cfg.causal


def asteroid_kwargs(cfg: KaituoxuConfig, sample_rate: float) -> dict[str, Any]:
    """Constructor arguments of asteroid's ``ConvTasNet`` matching ``cfg``."""
    return {
        "n_src": cfg.C,
        "out_chan": None,
        "n_blocks": cfg.X,
        "n_repeats": cfg.R,
        "bn_chan": cfg.B,
        "hid_chan": cfg.H,
        "skip_chan": 0,
        "conv_kernel_size": cfg.P,
        "norm_type": {"gLN": "gLN", "cLN": "cLN", "BN": "bN"}[cfg.norm],
        "mask_act": cfg.mask_nonlinear,
        "causal": cfg.causal,
        "fb_name": "free",
        "kernel_size": cfg.L,
        "n_filters": cfg.N,
        "stride": cfg.L // 2,
        "encoder_activation": "relu",
        "sample_rate": sample_rate,
    }


def convert_state_dict(cfg: KaituoxuConfig, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename/reshape a kaituoxu state dict into asteroid ``ConvTasNet`` keys (zero biases, PReLU 1).

    ``state`` must already be complete (checked against :class:`KaituoxuConvTasNet`).
    """
    ref = state["encoder.conv1d_U.weight"]

    def zeros(n: int) -> torch.Tensor:
        return torch.zeros(n, dtype=ref.dtype, device=ref.device)

    out: dict[str, torch.Tensor] = {"encoder.filterbank._filters": state["encoder.conv1d_U.weight"]}
    out["masker.bottleneck.0.gamma"] = state["separator.network.0.gamma"].reshape(cfg.N)
    out["masker.bottleneck.0.beta"] = state["separator.network.0.beta"].reshape(cfg.N)
    out["masker.bottleneck.1.weight"] = state["separator.network.1.weight"]
    out["masker.bottleneck.1.bias"] = zeros(cfg.B)

    def copy_norm(src: str, dst: str) -> None:
        if cfg.norm == "BN":
            for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                out[dst + name] = state[src + name]
        else:
            out[dst + "gamma"] = state[src + "gamma"].reshape(cfg.H)
            out[dst + "beta"] = state[src + "beta"].reshape(cfg.H)

    shift = 1 if cfg.causal else 0  # the causal Chomp1d shifts the indices after the depthwise conv
    for r in range(cfg.R):
        for x in range(cfg.X):
            src = f"separator.network.2.{r}.{x}.net."
            dst = f"masker.TCN.{r * cfg.X + x}."
            out[dst + "shared_block.0.weight"] = state[src + "0.weight"]
            out[dst + "shared_block.0.bias"] = zeros(cfg.H)
            out[dst + "shared_block.1.weight"] = state[src + "1.weight"]
            copy_norm(src + "2.", dst + "shared_block.2.")
            depthwise = dst + ("shared_block.3.0." if cfg.causal else "shared_block.3.")
            out[depthwise + "weight"] = state[src + "3.net.0.weight"]
            out[depthwise + "bias"] = zeros(cfg.H)
            out[dst + "shared_block.4.weight"] = state[src + f"3.net.{1 + shift}.weight"]
            copy_norm(src + f"3.net.{2 + shift}.", dst + "shared_block.5.")
            out[dst + "res_conv.weight"] = state[src + f"3.net.{3 + shift}.weight"]
            out[dst + "res_conv.bias"] = zeros(cfg.B)
    out["masker.mask_net.0.weight"] = torch.ones(1, dtype=ref.dtype, device=ref.device)
    out["masker.mask_net.1.weight"] = state["separator.network.3.weight"]
    out["masker.mask_net.1.bias"] = zeros(cfg.C * cfg.N)
    out["decoder.filterbank._filters"] = state["decoder.basis_signals.weight"].t().unsqueeze(1)
    return {k: v.contiguous() for k, v in out.items()}


def to_asteroid(cfg: KaituoxuConfig, state: Mapping[str, torch.Tensor], sample_rate: float = 16000) -> torch.nn.Module:
    """Build an asteroid ``ConvTasNet`` computing the kaituoxu model ``cfg`` with weights ``state``.

    gLN / BN models get their first separator norm replaced by asteroid's ``ChanLN`` (such a model
    cannot go through asteroid's ``serialize`` / ``from_pretrained``).

    Raises:
        AdapterError: causal gLN / BN models (asteroid forces cLN in causal models).
    """
    if not expressible(cfg):
        raise AdapterError(
            f"A causal Conv-TasNet with norm {cfg.norm} cannot run in asteroid (it forces cLN when causal); "
            "use backend='native'."
        )
    models = import_asteroid("asteroid.models")
    norms = import_asteroid("asteroid.masknn.norms")
    model = models.ConvTasNet(**asteroid_kwargs(cfg, sample_rate))
    if not constructor_exact(cfg):
        model.masker.bottleneck[0] = norms.ChanLN(cfg.N)
    model.load_state_dict(convert_state_dict(cfg, state), strict=True)
    return model
