"""The SEMamba generator: dense convolutional encoder, TF-Mamba blocks, magnitude-mask and phase decoders.

Written from the architecture specification (``specs/semamba.md``); module and parameter names
reproduce the published ``SEMamba_advanced.pth`` state dict (``dense_encoder.*``, ``TSMamba.{i}.*``,
``mask_decoder.*``, ``phase_decoder.*``). Internal image layout ``[B, C, T, F]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sips.errors import AdapterError

from .config import ConfigLike, derived, resolve_config
from .mamba import BiMamba, MambaMixer
from .scan import check_method


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel: tuple[int, int],
    *,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
) -> nn.Sequential:
    """Conv2d -> InstanceNorm2d(affine) -> PReLU(per channel); keys ``0.*``, ``1.*``, ``2.weight``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, dilation=dilation),
        nn.InstanceNorm2d(out_channels, affine=True),
        nn.PReLU(out_channels),
    )


class DenseBlock(nn.Module):
    """Four densely connected 3x3 units, dilated 1, 2, 4, 8 along time; ``[B, h, T, F] -> [B, h, T, F]``.

    Unit ``i`` sees ``[out_{i-1}, ..., out_0, input]`` (newest first) on the channel axis.
    """

    def __init__(self, channels: int, depth: int = 4) -> None:
        super().__init__()
        self.dense_block = nn.ModuleList(
            conv_norm_act(channels * (i + 1), channels, (3, 3), dilation=(2**i, 1), padding=(2**i, 1))
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stack = x
        for unit in self.dense_block:
            x = unit(stack)
            stack = torch.cat([x, stack], dim=1)
        return x


class DenseEncoder(nn.Module):
    """``[B, 2, T, F] -> [B, h, T, (F - 3) // 2 + 1]``."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.dense_conv_1 = conv_norm_act(in_channels, channels, (1, 1))
        self.dense_block = DenseBlock(channels)
        self.dense_conv_2 = conv_norm_act(channels, channels, (1, 3), stride=(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_conv_2(self.dense_block(self.dense_conv_1(x)))


class LearnableSigmoid(nn.Module):
    """``beta * sigmoid(slope[f] * x[b, f, t])`` with one learnable slope per frequency bin."""

    def __init__(self, freq_bins: int, beta: float = 2.0) -> None:
        super().__init__()
        self.beta = beta
        self.slope = nn.Parameter(torch.ones(freq_bins, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, F, T] -> [B, F, T]`` in ``(0, beta)``."""
        return self.beta * torch.sigmoid(self.slope * x)


class MagDecoder(nn.Module):
    """Magnitude mask: ``[B, h, T, F'] -> [B, 1, T, F]`` in ``(0, beta)``."""

    def __init__(self, channels: int, out_channels: int, freq_bins: int, beta: float) -> None:
        super().__init__()
        self.dense_block = DenseBlock(channels)
        self.mask_conv = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, (1, 3), stride=(1, 2)),
            nn.Conv2d(channels, out_channels, (1, 1)),
            nn.InstanceNorm2d(out_channels, affine=True),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, (1, 1)),
        )
        self.lsigmoid = LearnableSigmoid(freq_bins, beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mask_conv(self.dense_block(x))  # [B, 1, T, F]
        mask = self.lsigmoid(x.permute(0, 3, 2, 1).squeeze(-1))  # [B, F, T]
        return mask.permute(0, 2, 1).unsqueeze(1)


class PhaseDecoder(nn.Module):
    """Phase: ``[B, h, T, F'] -> [B, 1, T, F]`` in ``(-pi, pi]`` (atan2 of two 1x1 projections)."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.dense_block = DenseBlock(channels)
        self.phase_conv = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, (1, 3), stride=(1, 2)),
            nn.InstanceNorm2d(channels, affine=True),
            nn.PReLU(channels),
        )
        self.phase_conv_r = nn.Conv2d(channels, out_channels, (1, 1))
        self.phase_conv_i = nn.Conv2d(channels, out_channels, (1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.phase_conv(self.dense_block(x))
        return torch.atan2(self.phase_conv_i(x), self.phase_conv_r(x))


class TFMambaBlock(nn.Module):
    """Bidirectional Mamba along time, then along frequency, each with a residual; ``[B, h, T, F']`` in and out."""

    def __init__(self, channels: int, d_state: int, d_conv: int, expand: int, eps: float) -> None:
        super().__init__()
        self.time_mamba = BiMamba(channels, d_state, d_conv, expand, eps)
        self.freq_mamba = BiMamba(channels, d_state, d_conv, expand, eps)
        # 1x1 transposed convolutions 2h -> h (weights [2h, h, 1]); applied channels-first.
        self.tlinear = nn.ConvTranspose1d(2 * channels, channels, 1, stride=1)
        self.flinear = nn.ConvTranspose1d(2 * channels, channels, 1, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, f = x.shape
        x = x.permute(0, 3, 2, 1).contiguous().view(b * f, t, c)  # sequences over time
        x = self.tlinear(self.time_mamba(x).permute(0, 2, 1)).permute(0, 2, 1) + x
        x = x.reshape(b, f, t, c).permute(0, 2, 1, 3).contiguous().view(b * t, f, c)  # sequences over frequency
        x = self.flinear(self.freq_mamba(x).permute(0, 2, 1)).permute(0, 2, 1) + x
        return x.reshape(b, t, f, c).permute(0, 3, 1, 2)


class SEMamba(nn.Module):
    """SEMamba generator: compressed magnitude and phase in, enhanced magnitude, phase and complex spectrum out.

    Args:
        config: the ``{"model_cfg": ..., "stft_cfg": ...}`` dict or a SEMamba YAML/JSON path; ``None``
            is the published ``SEMamba_advanced`` configuration (hid 64, 4 TF-Mamba blocks, d_state 16,
            d_conv 4, expand 4, n_fft 400).
        scan: selective-scan implementation of every Mamba mixer: ``"auto"`` (mamba-ssm's CUDA kernel
            on CUDA tensors when installed, else the parallel PyTorch scan), ``"parallel"``, ``"loop"``
            (per-step reference) or ``"cuda"``. Not part of the config; can be changed later (``model.scan = ...``).

    Forward: ``(mag [B, F, T], pha [B, F, T]) -> (amp [B, F, T], pha [B, F, T], com [B, F, T, 2])`` with
    ``F = n_fft // 2 + 1``; ``mag`` is the compressed magnitude ``|X| ** compress_factor``, ``com`` is
    ``(amp cos pha, amp sin pha)`` on the last axis. Differentiable.
    """

    def __init__(self, config: ConfigLike = None, *, scan: str = "auto") -> None:
        super().__init__()
        self.config: dict[str, dict[str, Any]] = resolve_config(config)
        m = self.config["model_cfg"]
        sizes = derived(self.config)
        self.freq_bins = sizes["freq_bins"]
        h = m["hid_feature"]
        self.dense_encoder = DenseEncoder(m["input_channel"], h)
        self.TSMamba = nn.ModuleList(
            TFMambaBlock(h, m["d_state"], m["d_conv"], m["expand"], m["norm_epsilon"]) for _ in range(m["num_tfmamba"])
        )
        self.mask_decoder = MagDecoder(h, m["output_channel"], self.freq_bins, m["beta"])
        self.phase_decoder = PhaseDecoder(h, m["output_channel"])
        self.scan = scan

    @property
    def scan(self) -> str:
        """The selective-scan method of every mixer."""
        return self._scan

    @scan.setter
    def scan(self, method: str) -> None:
        self._scan = check_method(method)
        for module in self.modules():
            if isinstance(module, MambaMixer):
                module.scan = method

    def forward(
        self, noisy_mag: torch.Tensor, noisy_pha: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, F, T], [B, F, T] -> amp [B, F, T], pha [B, F, T], com [B, F, T, 2]``."""
        if noisy_mag.dim() != 3 or noisy_mag.shape != noisy_pha.shape or noisy_mag.shape[1] != self.freq_bins:
            raise AdapterError(
                f"SEMamba expects magnitude and phase of shape [B, {self.freq_bins}, T], "
                f"got {list(noisy_mag.shape)} and {list(noisy_pha.shape)}."
            )
        mag = noisy_mag.permute(0, 2, 1).unsqueeze(1)  # [B, 1, T, F]
        pha = noisy_pha.permute(0, 2, 1).unsqueeze(1)
        x = self.dense_encoder(torch.cat([mag, pha], dim=1))
        for block in self.TSMamba:
            x = block(x)
        amp = (mag * self.mask_decoder(x)).permute(0, 3, 2, 1).squeeze(-1)
        pha = self.phase_decoder(x).permute(0, 3, 2, 1).squeeze(-1)
        com = torch.stack([amp * torch.cos(pha), amp * torch.sin(pha)], dim=-1)
        return amp, pha, com

    def extra_repr(self) -> str:
        return f"scan={self.scan!r}"


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in module.parameters())


def config_of(model: nn.Module | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The resolved config of a :class:`SEMamba` (or of a config-like mapping)."""
    if isinstance(model, SEMamba):
        return resolve_config(model.config)
    return resolve_config(model)
