"""Rotary position embedding compatible with the state dict of ``rotary-embedding-torch`` 0.9.1 defaults.

Only what FlexIO uses: language-model frequencies ``f_i = 1 / 10000**(2i/d)``, positions ``0..L-1``,
the whole head dimension rotated, interleaved adjacent pairs ``(x_2i, x_2i+1)``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RotaryEmbedding", "rope_frequencies"]


def rope_frequencies(dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Frequencies ``1 / theta**(2i/dim)``, ``i = 0..dim/2-1``, float32 ``[dim // 2]``."""
    exponents = torch.arange(0, dim, 2)[: dim // 2].float() / dim
    return 1.0 / (theta**exponents)


class RotaryEmbedding(nn.Module):
    """Rotary embedding over the head dimension ``dim`` (even).

    The frequencies are an ``nn.Parameter`` with ``requires_grad=False`` named ``freqs`` (so they
    appear in the state dict); one instance is meant to be shared by several attention layers.
    """

    def __init__(self, dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"rotary embedding needs an even head dimension, got {dim}")
        self.dim = dim
        self.freqs = nn.Parameter(rope_frequencies(dim, theta), requires_grad=False)

    def angles(self, length: int, device: torch.device) -> torch.Tensor:
        """Rotation angles ``[L, dim]``: ``p * f_i`` (float32) with each frequency repeated for a pair."""
        freqs = self.freqs.detach().to(device=device, dtype=torch.float32)
        positions = torch.arange(length, device=device, dtype=torch.float32)
        theta = positions[:, None] * freqs[None, :]
        return theta.repeat_interleave(2, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x [..., L, dim]`` along the sequence axis ``-2`` (positions ``0..L-1``)."""
        theta = self.angles(x.shape[-2], x.device)
        cos, sin = theta.cos().to(x.dtype), theta.sin().to(x.dtype)
        pairs = x.unflatten(-1, (-1, 2))
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return x * cos + rotated * sin
