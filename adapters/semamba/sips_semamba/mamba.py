"""The Mamba (S6) mixer, its pre-norm residual block and the bidirectional wrapper used by SEMamba.

Parameter names follow ``mamba_ssm`` (``mixer.A_log``, ``mixer.in_proj.weight``, ..., ``norm.weight``)
so that published state dicts load by name; the mixer is registered before the norm as in
mamba-ssm 1.x (2.x registers ``norm`` first; the names, and so loading, are the same).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .scan import check_method, selective_scan


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last axis (no bias, no mean removal).

    Args:
        dim: size of the last axis.
        eps: added to the mean square.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., dim] -> [..., dim]``."""
        x = x.to(self.weight.dtype)
        inv_rms = 1.0 / torch.sqrt(x.square().mean(dim=-1, keepdim=True) + self.eps)
        return (x * inv_rms) * self.weight


class MambaMixer(nn.Module):
    """Selective state-space mixer (Mamba-1) on ``[Bt, L, d_model]`` sequences.

    Args:
        d_model: model width.
        d_state: state size ``N`` per inner channel.
        d_conv: kernel of the causal depthwise convolution.
        expand: inner width factor, ``d_inner = expand * d_model``.
        scan: selective-scan implementation (see :func:`sips_semamba.scan.selective_scan`).
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, scan: str = "auto") -> None:
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.scan = scan
        # Direct parameters first, then sub-modules: the order of the published state dicts.
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(self.d_inner, 1))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        self._init_dt()

    @torch.no_grad()
    def _init_dt(self, dt_min: float = 1e-3, dt_max: float = 1e-1, dt_floor: float = 1e-4) -> None:
        """Mamba's time-step initialisation: ``softplus(bias)`` log-uniform in ``[dt_min, dt_max]``."""
        bound = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -bound, bound)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp_min(dt_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    @property
    def scan(self) -> str:
        return self._scan

    @scan.setter
    def scan(self, method: str) -> None:
        self._scan = check_method(method)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[Bt, L, d_model] -> [Bt, L, d_model]``."""
        batch, length, _ = hidden.shape
        # Input projection as one matmul [2D, h] @ [h, Bt*L], then [Bt, 2D, L].
        xz = self.in_proj.weight @ hidden.permute(2, 0, 1).reshape(self.d_model, batch * length)
        xz = xz.reshape(2 * self.d_inner, batch, length).permute(1, 0, 2)
        x, z = xz.chunk(2, dim=1)
        # Causal depthwise convolution: pad both sides, keep the first L outputs.
        x = F.silu(self.conv1d(x)[..., :length])
        x_dbl = self.x_proj(x.permute(0, 2, 1).reshape(batch * length, self.d_inner))
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (self.dt_proj.weight @ dt.t()).reshape(self.d_inner, batch, length).permute(1, 0, 2)
        B = B.reshape(batch, length, self.d_state).permute(0, 2, 1).contiguous()
        C = C.reshape(batch, length, self.d_state).permute(0, 2, 1).contiguous()
        A = -torch.exp(self.A_log.float())
        y = selective_scan(x, dt, A, B, C, self.D.float(), z, self.dt_proj.bias.float(), method=self.scan)  # [Bt, D, L]
        return self.out_proj(y.permute(0, 2, 1))


class MambaLayer(nn.Module):
    """Pre-norm residual block (``fused_add_norm=False``): returns ``(mixer(norm(h)), h)``.

    The caller adds the two outputs. Registered ``mixer`` then ``norm`` (mamba-ssm 1.x order).
    """

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int, eps: float) -> None:
        super().__init__()
        self.mixer = MambaMixer(d_model, d_state, d_conv, expand)
        self.norm = RMSNorm(d_model, eps=eps)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[Bt, L, d] -> ([Bt, L, d], residual [Bt, L, d])``."""
        residual = hidden
        return self.mixer(self.norm(residual)), residual


class BiMamba(nn.Module):
    """Bidirectional Mamba: one layer along the sequence, one along the reversed sequence.

    Keys ``forward_blocks.0.*`` and ``backward_blocks.0.*``; output ``[y_fwd, y_bwd]`` on the last axis.
    """

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int, eps: float) -> None:
        super().__init__()
        self.forward_blocks = nn.ModuleList([MambaLayer(d_model, d_state, d_conv, expand, eps)])
        self.backward_blocks = nn.ModuleList([MambaLayer(d_model, d_state, d_conv, expand, eps)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[Bt, L, d] -> [Bt, L, 2d]``."""
        out, residual = self.forward_blocks[0](x)
        forward_out = out + residual
        out, residual = self.backward_blocks[0](torch.flip(x, dims=[1]))
        backward_out = torch.flip(out + residual, dims=[1])
        return torch.cat([forward_out, backward_out], dim=-1)
