"""EDM2-style magnitude-preserving U-Net and the SIPS score network built on it.

Written from ``shared/reference/specs/sips_unet.md``. Every layer preserves the magnitude of its
activations: weights are normalised on the fly (``MPConv``), sums and concatenations are
rescaled (``mp_sum`` / ``mp_cat``) and the non-linearity is ``silu / 0.596``. Module and parameter
names follow the published checkpoint exactly, so its state dict loads strictly.

Shapes: spectrograms are ``[B, C, H, W]`` with ``H`` the 256 frequency bins and ``W`` frames.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Block",
    "MPConv",
    "MPFourier",
    "ScoreNet",
    "UNet",
    "frozen_weights",
    "mp_cat",
    "mp_silu",
    "mp_sum",
    "normalize",
]


def normalize(x: torch.Tensor, dim: Sequence[int] | int | None = None, eps: float = 1e-4) -> torch.Tensor:
    """Divide by ``eps`` + the RMS over ``dim`` (default: all axes but the first)."""
    if dim is None:
        dim = list(range(1, x.ndim))
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    norm = torch.add(eps, norm, alpha=float(np.sqrt(norm.numel() / x.numel())))
    return x / norm.to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    """Magnitude-preserving SiLU."""
    return F.silu(x) / 0.596


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
    """Magnitude-preserving blend ``lerp(a, b, t)`` rescaled to unit gain."""
    return a.lerp(b, t) / np.sqrt((1 - t) ** 2 + t**2)


def mp_cat(a: torch.Tensor, b: torch.Tensor, dim: int = 1, t: float = 0.5) -> torch.Tensor:
    """Magnitude-preserving concatenation of ``a`` then ``b`` along ``dim``."""
    na, nb = a.shape[dim], b.shape[dim]
    scale = np.sqrt((na + nb) / ((1 - t) ** 2 + t**2))
    wa = scale / np.sqrt(na) * (1 - t)
    wb = scale / np.sqrt(nb) * t
    return torch.cat([wa * a, wb * b], dim=dim)


def resample(x: torch.Tensor, mode: str = "keep", taps: Sequence[float] = (1, 1)) -> torch.Tensor:
    """Depthwise 2x down- (box filter) or up-sampling (nearest) on both spatial axes."""
    if mode == "keep":
        return x
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = f.ger(f) / f.sum().square()
    pad = (len(taps) - 1) // 2
    channels = x.shape[1]
    kernel = f.to(dtype=x.dtype, device=x.device).tile([channels, 1, 1, 1])
    if mode == "down":
        return F.conv2d(x, kernel, groups=channels, stride=2, padding=(pad,))
    if mode == "up":
        return F.conv_transpose2d(x, kernel * 4, groups=channels, stride=2, padding=(pad,))
    raise ValueError(f"resample mode must be 'keep', 'down' or 'up', not {mode!r}.")


class MPFourier(nn.Module):
    """Fourier features of a scalar: ``cos(x * freqs + phases) * sqrt(2)``; ``[B] -> [B, C]``."""

    def __init__(self, num_channels: int, bandwidth: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("freqs", 2 * np.pi * torch.randn(num_channels) * bandwidth)
        self.register_buffer("phases", 2 * np.pi * torch.rand(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.to(torch.float32).ger(self.freqs.to(torch.float32))
        y = y + self.phases.to(torch.float32)
        return (y.cos() * np.sqrt(2)).to(x.dtype)


class MPConv(nn.Module):
    """Magnitude-preserving linear (``kernel=()``) or 2-D convolution without bias.

    The stored weight is always re-normalised per output filter in the forward pass; training
    code keeps the stored weights unit-norm with :meth:`normalize_weight_`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int]) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *kernel))
        self._frozen: torch.Tensor | None = None

    @torch.no_grad()
    def normalize_weight_(self) -> None:
        """Forced weight normalisation (EDM2 training): project the stored weight to unit norm."""
        self.weight.copy_(normalize(self.weight))

    def effective_weight(self, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        """The weight actually applied: ``normalize(w) * gain / sqrt(fan_in)``.

        Inside :func:`frozen_weights` ``normalize(w)`` is computed once and reused."""
        w = self._frozen if self._frozen is not None else normalize(self.weight.to(torch.float32))
        return w * (gain / np.sqrt(w[0].numel()))

    def forward(self, x: torch.Tensor, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        w = self.effective_weight(gain).to(x.dtype)
        if w.ndim == 2:
            return x @ w.t()
        return F.conv2d(x, w, padding=(w.shape[-1] // 2,))


class Block(nn.Module):
    """Residual block (encoder or decoder flavour), optionally resampling and with self-attention.

    Args:
        in_channels, out_channels, emb_channels: widths.
        flavor: ``"enc"`` (skip conv + pixel norm before the residual) or ``"dec"``.
        resample_mode: ``"keep"``, ``"down"`` or ``"up"``.
        attention: add multi-head self-attention over all ``H * W`` positions.
        channels_per_head: attention head width (``out_channels // channels_per_head`` heads).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_channels: int,
        flavor: str = "enc",
        resample_mode: str = "keep",
        resample_filter: Sequence[float] = (1, 1),
        attention: bool = False,
        channels_per_head: int = 64,
        dropout: float = 0.0,
        res_balance: float = 0.3,
        attn_balance: float = 0.3,
        clip_act: float | None = 256,
    ) -> None:
        super().__init__()
        if flavor not in ("enc", "dec"):
            raise ValueError(f"flavor must be 'enc' or 'dec', not {flavor!r}.")
        self.out_channels = out_channels
        self.flavor = flavor
        self.resample_filter = tuple(resample_filter)
        self.resample_mode = resample_mode
        self.num_heads = out_channels // channels_per_head if attention else 0
        self.dropout = dropout
        self.res_balance = res_balance
        self.attn_balance = attn_balance
        self.clip_act = clip_act
        self.emb_gain = nn.Parameter(torch.zeros([]))
        res0_in = out_channels if flavor == "enc" else in_channels
        self.conv_res0 = MPConv(res0_in, out_channels, kernel=[3, 3])
        self.emb_linear = MPConv(emb_channels, out_channels, kernel=[])
        self.conv_res1 = MPConv(out_channels, out_channels, kernel=[3, 3])
        self.conv_skip = MPConv(in_channels, out_channels, kernel=[1, 1]) if in_channels != out_channels else None
        self.attn_qkv = MPConv(out_channels, out_channels * 3, kernel=[1, 1]) if self.num_heads else None
        self.attn_proj = MPConv(out_channels, out_channels, kernel=[1, 1]) if self.num_heads else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x [B, in, H, W]``, ``emb [B, emb_channels]`` -> ``[B, out, H', W']``."""
        x = resample(x, mode=self.resample_mode, taps=self.resample_filter)
        if self.flavor == "enc":
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)

        y = self.conv_res0(mp_silu(x))
        c = self.emb_linear(emb, gain=self.emb_gain) + 1
        y = mp_silu(y * c[:, :, None, None].to(y.dtype))
        if self.training and self.dropout:
            y = F.dropout(y, p=self.dropout)
        y = self.conv_res1(y)

        if self.flavor == "dec" and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, y, t=self.res_balance)

        if self.num_heads:
            batch, channels, height, width = x.shape
            qkv = self.attn_qkv(x).reshape(batch, self.num_heads, -1, 3, height * width)
            q, k, v = normalize(qkv, dim=2).unbind(3)
            logits = torch.einsum("nhcq,nhck->nhqk", q, k / np.sqrt(q.shape[2]))
            y = torch.einsum("nhqk,nhck->nhcq", logits.softmax(dim=3), v)
            y = self.attn_proj(y.reshape(batch, channels, height, width))
            x = mp_sum(x, y, t=self.attn_balance)

        if self.clip_act is not None:
            x = x.clamp(-self.clip_act, self.clip_act)
        return x


class UNet(nn.Module):
    """EDM2 U-Net conditioned on a scalar noise label (no class labels).

    Args:
        img_resolution: frequency bins ``H`` (names ``"{r}x{r}"`` use ``H >> level``).
        img_channels: data channels (2: real/imaginary).
        model_channels, channel_mult: widths per level ``model_channels * channel_mult[l]``.
        num_blocks: residual blocks per encoder level (decoder levels get one more).
        attn_resolutions: frequency resolutions whose blocks use self-attention (the lowest
            decoder level always has one attention block, as in EDM2).
        **block_kwargs: forwarded to every :class:`Block` (e.g. ``channels_per_head``).
    """

    def __init__(
        self,
        img_resolution: int,
        img_channels: int,
        model_channels: int = 192,
        channel_mult: Sequence[int] = (1, 2, 3, 4),
        channel_mult_noise: int | None = None,
        channel_mult_emb: int | None = None,
        num_blocks: int = 3,
        attn_resolutions: Sequence[int] = (16, 8),
        concat_balance: float = 0.5,
        **block_kwargs,
    ) -> None:
        super().__init__()
        cblock = [model_channels * m for m in channel_mult]
        cnoise = model_channels * channel_mult_noise if channel_mult_noise is not None else cblock[0]
        cemb = model_channels * channel_mult_emb if channel_mult_emb is not None else max(cblock)
        self.concat_balance = concat_balance
        self.levels = len(channel_mult)

        self.out_gain = nn.Parameter(torch.zeros([]))
        self.emb_fourier = MPFourier(cnoise)
        self.emb_noise = MPConv(cnoise, cemb, kernel=[])

        self.enc = nn.ModuleDict()
        cout = img_channels + 1
        skips = []
        for level, channels in enumerate(cblock):
            res = img_resolution >> level
            if level == 0:
                self.enc[f"{res}x{res}_conv"] = MPConv(cout, channels, kernel=[3, 3])
                cout = channels
            else:
                self.enc[f"{res}x{res}_down"] = Block(
                    cout, cout, cemb, flavor="enc", resample_mode="down", **block_kwargs
                )
            skips.append(cout)
            for i in range(num_blocks):
                self.enc[f"{res}x{res}_block{i}"] = Block(
                    cout, channels, cemb, flavor="enc", attention=res in attn_resolutions, **block_kwargs
                )
                cout = channels
                skips.append(cout)

        self.dec = nn.ModuleDict()
        for level in reversed(range(len(cblock))):
            channels = cblock[level]
            res = img_resolution >> level
            if level == len(cblock) - 1:
                self.dec[f"{res}x{res}_in0"] = Block(cout, cout, cemb, flavor="dec", attention=True, **block_kwargs)
                self.dec[f"{res}x{res}_in1"] = Block(cout, cout, cemb, flavor="dec", **block_kwargs)
            else:
                self.dec[f"{res}x{res}_up"] = Block(cout, cout, cemb, flavor="dec", resample_mode="up", **block_kwargs)
            for i in range(num_blocks + 1):
                cin = cout + skips.pop()
                self.dec[f"{res}x{res}_block{i}"] = Block(
                    cin, channels, cemb, flavor="dec", attention=res in attn_resolutions, **block_kwargs
                )
                cout = channels
        self.out_conv = MPConv(cout, img_channels, kernel=[3, 3])

    def forward(self, x: torch.Tensor, noise_labels: torch.Tensor) -> torch.Tensor:
        """``x [B, C, H, W]`` (``W`` a multiple of ``2 ** (levels - 1)``), labels ``[B]``."""
        emb = mp_silu(self.emb_noise(self.emb_fourier(noise_labels)))
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        skips = []
        for name, module in self.enc.items():
            x = module(x) if name.endswith("_conv") else module(x, emb)
            skips.append(x)
        for name, module in self.dec.items():
            if "block" in name:
                x = mp_cat(x, skips.pop(), t=self.concat_balance)
            x = module(x, emb)
        return self.out_conv(x, gain=self.out_gain)


class ScoreNet(nn.Module):
    """The SIPS network: U-Net predicting ``z`` from ``x_t`` and ``t``, plus a log-variance head.

    Args:
        freq_resolution: frequency bins of the input (256).
        spec_channels: input/output channels (2).
        logvar_channels: width of the Fourier embedding of ``t`` for the log-variance head
            (0: no head).
        **unet_kwargs: everything else of :class:`UNet` and :class:`Block`.
    """

    def __init__(
        self,
        freq_resolution: int = 256,
        spec_channels: int = 2,
        model_channels: int = 128,
        channel_mult: Sequence[int] = (1, 1, 2, 2, 2, 2, 2),
        num_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),
        logvar_channels: int = 128,
        **unet_kwargs,
    ) -> None:
        super().__init__()
        self.unet = UNet(
            img_resolution=freq_resolution,
            img_channels=spec_channels,
            model_channels=model_channels,
            channel_mult=channel_mult,
            num_blocks=num_blocks,
            attn_resolutions=attn_resolutions,
            **unet_kwargs,
        )
        if logvar_channels:
            self.logvar_fourier = MPFourier(logvar_channels)
            self.logvar_linear = MPConv(logvar_channels, 1, kernel=[])
        else:
            self.logvar_fourier = None
            self.logvar_linear = None

    @property
    def frame_multiple(self) -> int:
        """Inputs need a multiple of this many frames (``2 ** levels``, as the published code pads)."""
        return 2**self.unet.levels

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, return_logvar: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """Predict the noise ``z_hat`` in ``x``.

        Args:
            x: ``[B, 2, 256, W]`` state (``W`` a multiple of :attr:`frame_multiple` // 2).
            t: ``[B]`` interpolant times in ``[0, 1]`` (used directly as noise labels).
            return_logvar: also return the learned log-variance ``[B, 1, 1, 1]``.

        Returns:
            ``z_hat [B, 2, 256, W]``, or ``(z_hat, logvar)``.
        """
        t = torch.as_tensor(t, device=x.device).to(torch.float32).flatten()
        if t.numel() == 1 and x.shape[0] != 1:
            t = t.expand(x.shape[0])
        out = self.unet(x, t)
        if not return_logvar:
            return out
        logvar = None
        if self.logvar_linear is not None:
            logvar = self.logvar_linear(self.logvar_fourier(t)).reshape(-1, 1, 1, 1)
        return out, logvar

    @torch.no_grad()
    def normalize_weights_(self) -> None:
        """Forced weight normalisation of every :class:`MPConv` (call after each optimiser step)."""
        for module in self.modules():
            if isinstance(module, MPConv):
                module.normalize_weight_()


@contextlib.contextmanager
def frozen_weights(model: nn.Module) -> Iterator[None]:
    """Normalise every :class:`MPConv` weight once for the duration of the block (inference).

    The network's weights must not change inside the block; on exit the per-call normalisation
    is restored. Nested use is allowed (the outer block owns the cache).
    """
    convs = [m for m in model.modules() if isinstance(m, MPConv) and m._frozen is None]
    try:
        with torch.no_grad():
            for m in convs:
                m._frozen = normalize(m.weight.to(torch.float32))
        yield
    finally:
        for m in convs:
            m._frozen = None
