"""Native Conv-TasNet in the layout of the kaituoxu implementation bundled with SIPS.

Written from the architecture specification (encoder with ReLU, a temporal convolutional
separator of ``R`` repeats of ``X`` residual blocks, a linear decoder with overlap-add). The
module tree mirrors the published checkpoints, so their ``state_dict`` loads without renaming::

    encoder.conv1d_U.weight                         [N, 1, L]
    separator.network.0.{gamma,beta}                [1, N, 1]   (always channel-wise LN)
    separator.network.1.weight                      [B, N, 1]
    separator.network.2.{r}.{x}.net.*               temporal blocks
    separator.network.3.weight                      [C*N, B, 1]
    decoder.basis_signals.weight                    [L, N]

Every norm type (``"gLN"``, ``"cLN"``, anything else: BatchNorm), causal or not, and both mask
nonlinearities (``"relu"``, ``"softmax"``) are supported. Norms follow the reference evaluation
order (mean of means for gLN, gain applied before dividing by the deviation) so that outputs
are reproduced bit for bit on CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sips.errors import AdapterError

EPS = 1e-8

#: Keys of a kaituoxu package that hold hyper-parameters (the rest: state_dict, optim_dict, epoch, ...).
HPARAM_KEYS = ("N", "L", "B", "H", "P", "X", "R", "C", "norm_type", "causal", "mask_nonlinear")


@dataclass(frozen=True)
class KaituoxuConfig:
    """Hyper-parameters of a kaituoxu Conv-TasNet (the names used in its packages).

    Attributes:
        N: encoder filters (latent channels).
        L: filter length in samples; the hop is ``L // 2``.
        B: bottleneck channels.
        H: hidden channels of each temporal block.
        P: depthwise kernel size.
        X: blocks per repeat (dilations ``1 .. 2**(X-1)``).
        R: repeats.
        C: sources (masks).
        norm_type: ``"gLN"``, ``"cLN"``; any other value means BatchNorm (as in the reference).
        causal: left-only padding of the depthwise convolutions.
        mask_nonlinear: ``"relu"`` or ``"softmax"`` (over sources).
    """

    N: int
    L: int
    B: int
    H: int
    P: int
    X: int
    R: int
    C: int
    norm_type: str = "gLN"
    causal: bool = False
    mask_nonlinear: str = "relu"

    def __post_init__(self) -> None:
        for name in ("N", "L", "B", "H", "P", "X", "R", "C"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AdapterError(f"Conv-TasNet hyper-parameter {name} must be a positive integer, got {value!r}.")
        if self.L < 2:
            raise AdapterError(f"Conv-TasNet filter length L must be at least 2, got {self.L}.")
        if not self.causal and self.P % 2 == 0:
            raise AdapterError(
                f"A non-causal Conv-TasNet needs an odd kernel size P (even P breaks the residual add), got {self.P}."
            )
        if self.mask_nonlinear not in ("relu", "softmax"):
            raise AdapterError(
                f"Unsupported Conv-TasNet mask_nonlinear {self.mask_nonlinear!r}; expected 'relu' or 'softmax'."
            )

    @property
    def norm(self) -> str:
        """Canonical norm name: ``"gLN"``, ``"cLN"`` or ``"BN"``."""
        return self.norm_type if self.norm_type in ("gLN", "cLN") else "BN"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str) -> KaituoxuConfig:
        """Read the hyper-parameters from a package or config mapping (other keys are ignored)."""
        missing = [k for k in ("N", "L", "B", "H", "P", "X", "R", "C") if k not in values]
        if missing:
            raise AdapterError(f"{source} lacks the Conv-TasNet hyper-parameters {', '.join(missing)}.")
        kwargs = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        for name in ("N", "L", "B", "H", "P", "X", "R", "C"):
            value = kwargs[name]
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            kwargs[name] = value
        kwargs["causal"] = bool(kwargs.get("causal", False))
        for name in ("norm_type", "mask_nonlinear"):
            if name in kwargs and not isinstance(kwargs[name], str):
                raise AdapterError(f"{source}: Conv-TasNet {name} must be a string, got {kwargs[name]!r}.")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChannelwiseLayerNorm(nn.Module):
    """Layer norm over channels at each time step; ``[M, Ch, K] -> [M, Ch, K]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        mean = y.mean(dim=1, keepdim=True)
        var = torch.var(y, dim=1, keepdim=True, unbiased=False)  # population variance
        return self.gamma * (y - mean) / torch.pow(var + EPS, 0.5) + self.beta


class GlobalLayerNorm(nn.Module):
    """Layer norm over channels and time of each item (mean of per-frame means); ``[M, Ch, K]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        mean = y.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
        var = ((y - mean) ** 2).mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
        return self.gamma * (y - mean) / torch.pow(var + EPS, 0.5) + self.beta


def make_norm(norm: str, channels: int) -> nn.Module:
    """``"gLN"`` / ``"cLN"`` / ``"BN"`` (``BatchNorm1d``) over ``channels``."""
    if norm == "gLN":
        return GlobalLayerNorm(channels)
    if norm == "cLN":
        return ChannelwiseLayerNorm(channels)
    return nn.BatchNorm1d(channels)


class Chomp1d(nn.Module):
    """Drops the last ``size`` time steps (turns symmetric padding into causal padding)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : -self.size].contiguous() if self.size > 0 else x


class DepthwiseSeparableConv(nn.Module):
    """Dilated depthwise conv, PReLU, norm, pointwise conv ``H -> B``; ``[M, H, K] -> [M, B, K]``."""

    def __init__(self, cfg: KaituoxuConfig, dilation: int) -> None:
        super().__init__()
        pad = (cfg.P - 1) * dilation if cfg.causal else (cfg.P - 1) * dilation // 2
        layers: list[nn.Module] = [
            nn.Conv1d(cfg.H, cfg.H, cfg.P, padding=pad, dilation=dilation, groups=cfg.H, bias=False)
        ]
        if cfg.causal:
            layers.append(Chomp1d(pad))
        layers += [nn.PReLU(), make_norm(cfg.norm, cfg.H), nn.Conv1d(cfg.H, cfg.B, 1, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TemporalBlock(nn.Module):
    """Residual block ``y + net(y)``: 1x1 conv ``B -> H``, PReLU, norm, depthwise separable conv."""

    def __init__(self, cfg: KaituoxuConfig, dilation: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(cfg.B, cfg.H, 1, bias=False),
            nn.PReLU(),
            make_norm(cfg.norm, cfg.H),
            DepthwiseSeparableConv(cfg, dilation),
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y) + y


class Encoder(nn.Module):
    """``[M, T] -> [M, N, K]``: strided conv (hop ``L // 2``, no bias) followed by ReLU."""

    def __init__(self, cfg: KaituoxuConfig) -> None:
        super().__init__()
        self.conv1d_U = nn.Conv1d(1, cfg.N, cfg.L, stride=cfg.L // 2, bias=False)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv1d_U(mixture.unsqueeze(1)))


class Separator(nn.Module):
    """Temporal convolutional network: ``[M, N, K] -> masks [M, C, N, K]``."""

    def __init__(self, cfg: KaituoxuConfig) -> None:
        super().__init__()
        self.C, self.N, self.mask_nonlinear = cfg.C, cfg.N, cfg.mask_nonlinear
        repeats = [nn.Sequential(*[TemporalBlock(cfg, dilation=2**x) for x in range(cfg.X)]) for _ in range(cfg.R)]
        self.network = nn.Sequential(
            ChannelwiseLayerNorm(cfg.N),
            nn.Conv1d(cfg.N, cfg.B, 1, bias=False),
            nn.Sequential(*repeats),
            nn.Conv1d(cfg.B, cfg.C * cfg.N, 1, bias=False),
        )

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        score = self.network(w)
        score = score.view(w.shape[0], self.C, self.N, w.shape[-1])
        if self.mask_nonlinear == "softmax":
            return F.softmax(score, dim=1)
        return F.relu(score)


class Decoder(nn.Module):
    """Masked representation ``[M, C, N, K]`` -> waveforms ``[M, C, (K-1)*(L//2) + L]``."""

    def __init__(self, cfg: KaituoxuConfig) -> None:
        super().__init__()
        self.L = cfg.L
        self.basis_signals = nn.Linear(cfg.N, cfg.L, bias=False)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        frames = self.basis_signals(s.transpose(2, 3))  # [M, C, K, L]
        return overlap_add(frames, self.L // 2)


def overlap_add(frames: torch.Tensor, step: int) -> torch.Tensor:
    """Overlap-add ``[..., K, L]`` with hop ``step`` into ``[..., (K-1)*step + L]``.

    Each output sample sums its contributions in frame order (earliest frame first).
    """
    *lead, n_frames, length = frames.shape
    n_chunks = -(-length // step)
    frames = F.pad(frames, (0, n_chunks * step - length))
    chunks = frames.reshape(*lead, n_frames, n_chunks, step)
    out = frames.new_zeros(*lead, n_frames + n_chunks - 1, step)
    # Chunk j of frame k lands in segment k + j; descending j adds the earliest frame first.
    for j in reversed(range(n_chunks)):
        out[..., j : j + n_frames, :] += chunks[..., :, j, :]
    return out.reshape(*lead, -1)[..., : (n_frames - 1) * step + length]


class KaituoxuConvTasNet(nn.Module):
    """Conv-TasNet ``[M, T] -> [M, C, T]`` with the kaituoxu module layout.

    Args:
        cfg: hyper-parameters (see :class:`KaituoxuConfig`).
    """

    def __init__(self, cfg: KaituoxuConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.separator = Separator(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """``[M, T] -> [M, C, T]`` (decoder output right-padded with zeros, or cropped, to ``T``)."""
        if mixture.shape[-1] < self.config.L:
            raise AdapterError(f"Conv-TasNet needs at least L={self.config.L} samples, got {mixture.shape[-1]}.")
        w = self.encoder(mixture)
        masks = self.separator(w)
        out = self.decoder(w.unsqueeze(1) * masks)
        return F.pad(out, (0, mixture.shape[-1] - out.shape[-1]))
