"""The predictive NCSN++ spectrogram network (clean-room, from ``reference/specs/ncsnpp.md``).

A U-Net over a complex spectrogram ``[B, 1, F, T]`` (frequency is the image height, time its width)
with BigGAN-style residual blocks, FIR (``[1, 3, 3, 1]``) down- and up-sampling, an input pyramid
added on the way down, one attention block in the middle, and an output pyramid of per-level
heads summed on the way up. It has no time conditioning: the Fourier projection ``W`` and every
``Dense_0`` exist only so that the published checkpoint loads strictly.

Module registration follows the published model, so ``NCSNppNetwork().state_dict()`` has the keys,
shapes and order of ``NCSNpp_VB-DMD.ckpt``'s ``state_dict`` (``dnn.output_layer.*`` first, then
``dnn.all_modules.{i}.*``); the EMA list of a checkpoint is positional in this order.

Numerics: on the CPU in float32 the forward reproduces the reference bit for bit. The recipes that
matter (see the spec's §10): residual sums are divided by ``fl32(sqrt(2))``, FIR resampling is one
4×4 correlation per plane, the position-wise maps are matrix products of channels-last tensors,
and attention is two batched matrix products with a softmax over the last axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sips.errors import AdapterError

from .config import ConfigLike, resolve_config

__all__ = ["NCSNpp", "NCSNppNetwork", "down2", "up2", "ATTENTION_BYTES"]

SQRT2 = math.sqrt(2.0)
#: Attention weights larger than this (bytes, per call) are computed in slices of query rows
#: (bit-identical to one product on the CPUs tested).
ATTENTION_BYTES = 512 << 20


def group_norm(channels: int) -> nn.GroupNorm:
    """``GN(C)``: ``min(C // 4, 32)`` groups, eps 1e-6, per-channel scale and shift."""
    return nn.GroupNorm(min(channels // 4, 32), channels, eps=1e-6)


def conv3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


def _fir(like: torch.Tensor, gain: float) -> torch.Tensor:
    """The 4×4 kernel ``k kᵀ · gain / 64`` with ``k = [1, 3, 3, 1]`` (entries are exact binary fractions)."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=like.dtype, device=like.device)
    return (torch.outer(k, k) * (gain / 64.0)).view(1, 1, 4, 4)


def down2(x: torch.Tensor) -> torch.Tensor:
    """FIR down-sampling by 2 along both axes: ``[B, C, H, W] -> [B, C, H/2, W/2]``.

    Each plane is zero-padded by one and correlated with ``k kᵀ / 64`` at stride 2.
    """
    b, c, h, w = x.shape
    planes = x.reshape(b * c, 1, h, w)
    return F.conv2d(planes, _fir(x, 1.0), stride=2, padding=1).reshape(b, c, h // 2, w // 2)


def up2(x: torch.Tensor) -> torch.Tensor:
    """FIR up-sampling by 2 along both axes: ``[B, C, H, W] -> [B, C, 2H, 2W]``.

    Each plane is zero-stuffed, padded by 2 (top/left) and 1 (bottom/right) and correlated with
    ``k kᵀ / 16``; the border rows and columns get a gain of 3/4 per axis.
    """
    b, c, h, w = x.shape
    stuffed = x.new_zeros(b * c, 1, 2 * h, 2 * w)
    stuffed[:, 0, ::2, ::2] = x.reshape(b * c, h, w)
    return F.conv2d(F.pad(stuffed, (2, 1, 2, 1)), _fir(x, 4.0)).reshape(b, c, 2 * h, 2 * w)


class FourierProjection(nn.Module):
    """The Gaussian Fourier projection's frozen ``W [nf]``; loaded, never used (no time input)."""

    def __init__(self, size: int, scale: float) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(size) * scale, requires_grad=False)


class ResBlock(nn.Module):
    """BigGAN-style residual block ``RB(Ci -> Co, mode)``, mode ``"plain"``, ``"up"`` or ``"down"``."""

    def __init__(self, c_in: int, c_out: int, temb_dim: int, mode: str = "plain", dropout: float = 0.0) -> None:
        super().__init__()
        self.mode = mode
        self.GroupNorm_0 = group_norm(c_in)
        self.Conv_0 = conv3(c_in, c_out)
        self.Dense_0 = nn.Linear(temb_dim, c_out)  # time embedding of the score model: unused here
        self.GroupNorm_1 = group_norm(c_out)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv3(c_out, c_out)
        self.Conv_2 = nn.Conv2d(c_in, c_out, 1) if (c_in != c_out or mode != "plain") else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.GroupNorm_0(x))
        if self.mode == "up":
            h, x = up2(h), up2(x)
        elif self.mode == "down":
            h, x = down2(h), down2(x)
        h = self.Conv_0(h)
        h = self.Dropout_0(F.silu(self.GroupNorm_1(h)))
        h = self.Conv_1(h)
        if self.Conv_2 is not None:
            x = self.Conv_2(x)
        return (x + h) / SQRT2


class Combine(nn.Module):
    """Adds a 1×1 projection of the (down-sampled) input pyramid to the features."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.Conv_0 = nn.Conv2d(c_in, c_out, 1)

    def forward(self, pyramid: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.Conv_0(pyramid) + h


class NIN(nn.Module):
    """Position-wise linear map with an input-major weight ``W [C_in, C_out]``, on channels-last input."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(c_in, c_out) / math.sqrt(c_in))
        self.b = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.W) + self.b


class Attention(nn.Module):
    """Single-head self-attention over all ``F·T`` positions, with a residual ``/ sqrt(2)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.GroupNorm_0 = group_norm(channels)
        self.NIN_0 = NIN(channels, channels)
        self.NIN_1 = NIN(channels, channels)
        self.NIN_2 = NIN(channels, channels)
        self.NIN_3 = NIN(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = self.GroupNorm_0(x).permute(0, 2, 3, 1)  # channels last; positions row-major (f slow, t fast)
        q = self.NIN_0(g).reshape(b, h * w, c)
        k = self.NIN_1(g).reshape(b, h * w, c)
        v = self.NIN_2(g).reshape(b, h * w, c)
        scale = c**-0.5
        # query rows per slice: a multiple of 64, so the products block as they do unsliced
        rows = max(64, ATTENTION_BYTES // (4 * b * h * w) // 64 * 64)
        parts = []
        for start in range(0, h * w, rows):
            weights = torch.softmax(torch.bmm(q[:, start : start + rows], k.transpose(1, 2)) * scale, dim=-1)
            parts.append(torch.bmm(v.transpose(1, 2), weights.transpose(1, 2)))  # v · Aᵀ: [B, C, rows]
        o = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
        o = self.NIN_3(o.transpose(1, 2)).reshape(b, h, w, c).permute(0, 3, 1, 2)
        return (x + o) / SQRT2


class NCSNpp(nn.Module):
    """The backbone: complex ``[B, 1, F, T] -> [B, 1, F, T]`` (``F`` and ``T`` divisible by ``2**(L-1)``).

    Args: the constructor arguments of the published code (see :mod:`sips_ncsnpp.config`);
    ``init_scale`` is not used (PyTorch's default initialisation), ``fourier_scale`` only scales
    the unused ``W``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        cfg = resolve_config(kwargs)
        self.config = cfg
        nf, mult, blocks = cfg["nf"], cfg["ch_mult"], cfg["num_res_blocks"]
        levels = len(mult)
        temb = 4 * nf
        self.attention = [cfg["image_size"] >> level in cfg["attn_resolutions"] for level in range(levels)]
        self.output_layer = nn.Conv2d(2, 2, 1)  # registered first, as in the published state dict
        modules: list[nn.Module] = [FourierProjection(nf, cfg["fourier_scale"]), conv3(2, nf)]
        c, skips = nf, [nf]

        def block(c_in: int, c_out: int, mode: str = "plain") -> ResBlock:
            return ResBlock(c_in, c_out, temb, mode, cfg["dropout"])

        for level in range(levels):
            for _ in range(blocks):
                modules.append(block(c, nf * mult[level]))
                c = nf * mult[level]
                if self.attention[level]:
                    modules.append(Attention(c))
                skips.append(c)
            if level < levels - 1:
                modules += [block(c, c, "down"), Combine(2, c)]
                skips.append(c)
        modules += [block(c, c), Attention(c), block(c, c)]
        for level in reversed(range(levels)):
            for _ in range(blocks + 1):
                modules.append(block(c + skips.pop(), nf * mult[level]))
                c = nf * mult[level]
            if self.attention[level]:
                modules.append(Attention(c))
            modules += [group_norm(c), conv3(c, 2)]
            if level > 0:
                modules.append(block(c, c, "up"))
        self.all_modules = nn.ModuleList(modules)

    @property
    def frame_multiple(self) -> int:
        """``T`` (and ``F``) must be a multiple of this: ``2 ** (len(ch_mult) - 1)``."""
        return 2 ** (len(self.config["ch_mult"]) - 1)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """``spec``: complex ``[B, 1, F, T]`` (compressed spectrogram) -> complex ``[B, 1, F, T]``."""
        x = torch.cat([spec.real, spec.imag], dim=1)
        x = 2 * x - 1  # the published input mapping, as if the data lived in [0, 1]
        modules = iter(self.all_modules)
        next(modules)  # the unused Fourier projection
        levels, blocks = len(self.config["ch_mult"]), self.config["num_res_blocks"]
        pyramid = x
        stack = [next(modules)(x)]
        for level in range(levels):
            for _ in range(blocks):
                h = next(modules)(stack[-1])
                if self.attention[level]:
                    h = next(modules)(h)
                stack.append(h)
            if level < levels - 1:
                h = next(modules)(stack[-1])
                pyramid = down2(pyramid)
                stack.append(next(modules)(pyramid, h))
        h = stack[-1]
        for _ in range(3):  # residual block, attention, residual block
            h = next(modules)(h)
        out = None
        for level in reversed(range(levels)):
            for _ in range(blocks + 1):
                h = next(modules)(torch.cat([h, stack.pop()], dim=1))
            if self.attention[level]:
                h = next(modules)(h)
            norm, conv = next(modules), next(modules)
            head = conv(F.silu(norm(h)))
            out = head if out is None else up2(out) + head
            if level > 0:
                h = next(modules)(h)
        o = self.output_layer(out)
        return torch.complex(o[:, 0], o[:, 1]).unsqueeze(1)


class NCSNppNetwork(nn.Module):
    """The backbone under ``dnn``: the module layout of the published predictor (state-dict keys ``dnn.*``)."""

    def __init__(self, config: ConfigLike = None) -> None:
        super().__init__()
        cfg = resolve_config(config)
        try:
            self.dnn = NCSNpp(**cfg)
        except ValueError as err:  # e.g. a width that the group count does not divide
            raise AdapterError(f"The NCSN++ config cannot be built ({err}).") from None

    @property
    def config(self) -> dict[str, Any]:
        return self.dnn.config

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.dnn(spec)


def parameter_count(config: Mapping[str, Any] | None = None) -> int:
    """Number of parameters of the network built from ``config`` (``None``: the published one)."""
    with torch.device("meta"):
        return sum(p.numel() for p in NCSNppNetwork(config).parameters())
