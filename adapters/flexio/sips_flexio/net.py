"""The FlexIO separator: ``MultiTussModel`` with TF-Locoformer blocks.

Written from the clean-room specification (``reference/specs/flexio.md``); module and parameter
names follow the published state dict (keys ``separator.*`` of ``flexio_avg.ckpt``).

Shapes: ``B`` batch, ``M`` microphones, ``E`` embedding size, ``T`` frames, ``F`` frequency bins,
``n`` sources (one prompt token each), ``P`` prompt tokens per source (1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sips.errors import AdapterError

from .rope import RotaryEmbedding

__all__ = [
    "RMSGroupNorm",
    "SwiGLUConvDeconv1d",
    "CoAttention",
    "LocoformerLayer",
    "TFLocoformerBlock",
    "CoAttTFLocoformerBlock",
    "MultiTussModel",
]

_BLOCK_KEYS = {
    "emb_dim",
    "num_groups",
    "tf_order",
    "n_heads",
    "flash_attention",
    "attention_dim",
    "freq_ffn_config",
    "frame_ffn_config",
}


class RMSGroupNorm(nn.Module):
    """Group-wise RMS normalisation of the last axis ``E`` (no mean removal, no bias).

    ``y = x / (||x_g|| / sqrt(E/G) + eps) * gamma`` for each group ``g`` of ``E/G`` channels.
    """

    def __init__(self, num_groups: int, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        if dim % num_groups:
            raise AdapterError(f"emb_dim {dim} is not divisible by num_groups {num_groups}.")
        self.num_groups = num_groups
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., E] -> [..., E]``."""
        groups = x.contiguous().unflatten(-1, (self.num_groups, -1))
        rms = groups.norm(dim=-1, keepdim=True) * (groups.shape[-1] ** -0.5)
        return (groups / (rms + self.eps)).flatten(-2) * self.gamma


class SwiGLUConvDeconv1d(nn.Module):
    """SwiGLU feed-forward along the sequence axis: Conv1d ``E -> 2I``, gate, ConvTranspose1d ``I -> E``."""

    def __init__(self, dim: int, dim_inner: int, conv1d_kernel: int, conv1d_shift: int) -> None:
        super().__init__()
        if conv1d_shift < 1 or conv1d_kernel < conv1d_shift:
            raise AdapterError(
                f"conv1d_kernel ({conv1d_kernel}) must be at least conv1d_shift ({conv1d_shift}) and the shift positive."
            )
        self.kernel = conv1d_kernel
        self.shift = conv1d_shift
        self.dim_inner = dim_inner
        self.conv1d = nn.Conv1d(dim, 2 * dim_inner, conv1d_kernel, stride=conv1d_shift)
        self.deconv1d = nn.ConvTranspose1d(dim_inner, dim, conv1d_kernel, stride=conv1d_shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[Bx, S1, S2, E] -> [Bx, S1, S2, E]`` (convolutions along ``S2``)."""
        b, s1, s2, e = x.shape
        h = x.reshape(b * s1, s2, e).transpose(1, 2)
        delta = self.kernel - self.shift
        padded = math.ceil((s2 + 2 * delta - self.kernel) / self.shift) * self.shift + self.kernel
        h = F.pad(h, (delta, padded - s2 - delta))
        h = self.conv1d(h)
        value, gate = h[:, : self.dim_inner], h[:, self.dim_inner :]
        h = self.deconv1d(value * F.silu(gate))
        h = h.transpose(1, 2)[:, delta : delta + s2]
        return h.reshape(b, s1, s2, e)


#: Largest attention-weight tensor (bytes) materialised at once on CPU; bigger batches are split.
CPU_ATTENTION_BYTES = 2**28


def _math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    factor = math.sqrt(1.0 / math.sqrt(q.shape[-1]))
    weights = torch.matmul(q * factor, k.transpose(-2, -1) * factor).softmax(dim=-1)
    return torch.matmul(weights, v)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, restrict_backends: bool) -> torch.Tensor:
    """Scaled dot-product attention ``[N, H, L, D] -> [N, H, L, D]`` with scale ``1 / sqrt(D)``.

    ``restrict_backends`` follows the reference (``flash_attention=False``): SDPA limited to the
    math / memory-efficient kernels. On CPU that is the math kernel, computed here directly (same
    operations: ``q`` and ``k`` each scaled by ``D**-0.25``, softmax, ``@ v``; it skips the
    masked-row handling, which costs about as much as the attention itself at these sizes), in
    slices of ``N`` so that no more than :data:`CPU_ATTENTION_BYTES` of weights exist at once.
    """
    if not restrict_backends:
        return F.scaled_dot_product_attention(q, k, v)
    if q.device.type == "cpu":
        per_item = q.shape[1] * q.shape[2] * k.shape[2] * q.element_size()
        step = max(1, CPU_ATTENTION_BYTES // max(per_item, 1))
        if step >= q.shape[0]:
            return _math_attention(q, k, v)
        parts = [_math_attention(q[i : i + step], k[i : i + step], v[i : i + step]) for i in range(0, q.shape[0], step)]
        return torch.cat(parts)
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # older torch: the default dispatch
        return F.scaled_dot_product_attention(q, k, v)
    with sdpa_kernel([SDPBackend.MATH, SDPBackend.EFFICIENT_ATTENTION]):
        return F.scaled_dot_product_attention(q, k, v)


class CoAttention(nn.Module):
    """Multi-head (co-)attention with rotary positions; attention weights shared across microphones.

    The microphones are concatenated into the feature axis of every head (index ``j * M + m``), so
    with one microphone this is plain multi-head self-attention.

    Args:
        emb_dim: ``E``.
        attention_dim: ``A`` (query/key/value size over all heads).
        n_heads: ``H``; the head size is ``A / H``.
        rope: the (shared) rotary embedding of size ``A / H``.
        flash_attention: ``False`` restricts SDPA to the math / memory-efficient kernels as the
            reference does; ``True`` lets PyTorch choose.
    """

    def __init__(
        self, emb_dim: int, attention_dim: int, n_heads: int, rope: RotaryEmbedding, flash_attention: bool = False
    ) -> None:
        super().__init__()
        if attention_dim % n_heads:
            raise AdapterError(f"attention_dim {attention_dim} is not divisible by n_heads {n_heads}.")
        self.n_heads = n_heads
        self.head_dim = attention_dim // n_heads
        self.flash_attention = flash_attention
        self.rope = rope
        self.qkv = nn.Linear(emb_dim, 3 * attention_dim, bias=False)
        self.aggregate_heads = nn.Sequential(nn.Linear(attention_dim, emb_dim, bias=False), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[M, N, L, E] -> [M, N, L, E]`` (attention along ``L``, shared over ``M``)."""
        m, n, length, _ = x.shape
        h, d = self.n_heads, self.head_dim
        qkv = self.qkv(x).reshape(m, n, length, 3, h, d).permute(0, 1, 4, 2, 3, 5)  # [M, N, H, L, 3, d]
        q, k, v = qkv[..., 0, :], qkv[..., 1, :], qkv[..., 2, :]
        q = self.rope(q.reshape(m * n, h, length, d)).reshape(m, n, h, length, d)
        k = self.rope(k.reshape(m * n, h, length, d)).reshape(m, n, h, length, d)
        if m == 1:
            q, k, v = q[0], k[0], v[0]
        else:  # microphones into the feature axis: [N, H, L, d * M], index j * M + m
            q, k, v = (t.permute(1, 2, 3, 4, 0).reshape(n, h, length, d * m) for t in (q, k, v))
        out = _attention(q, k, v, restrict_backends=not self.flash_attention)  # [N, H, L, d * M]
        out = out.reshape(n, h, length, d, m).permute(4, 0, 2, 1, 3).reshape(m, n, length, h * d)
        return self.aggregate_heads(out)


class LocoformerLayer(nn.Module):
    """One Locoformer path: macaron SwiGLU FFNs around (co-)attention, all along the last sequence axis.

    With two FFN configurations the modules are stored in reverse order: ``ffn[1]`` (config #0)
    runs before the attention, ``ffn[0]`` (config #1) after it. With one, only ``ffn[0]`` (after).
    """

    def __init__(
        self,
        emb_dim: int,
        num_groups: int,
        n_heads: int,
        attention_dim: int,
        ffn_config: Sequence[dict[str, Any]],
        rope: RotaryEmbedding,
        flash_attention: bool = False,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if len(ffn_config) not in (1, 2):
            raise AdapterError(f"A Locoformer path takes one or two FFN configurations, got {len(ffn_config)}.")
        ffns = []
        for entry in reversed(list(ffn_config)):
            if entry.get("ffn_type") != "swiglu_conv1d":
                raise AdapterError(f"Unsupported FlexIO ffn_type {entry.get('ffn_type')!r}; only 'swiglu_conv1d'.")
            conf = dict(entry.get("conf", {}))
            try:
                ffns.append(SwiGLUConvDeconv1d(emb_dim, **conf))
            except TypeError as err:
                raise AdapterError(f"Bad swiglu_conv1d FFN configuration {conf} ({err}).") from None
        self.ffn_norm = nn.ModuleList(RMSGroupNorm(num_groups, emb_dim, eps) for _ in ffns)
        self.ffn = nn.ModuleList(ffns)
        self.attn_norm = RMSGroupNorm(num_groups, emb_dim, eps)
        self.attn = CoAttention(emb_dim, attention_dim, n_heads, rope, flash_attention)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, M, S1, S2, E] -> [B, M, S1, S2, E]`` (sequences along ``S2``)."""
        b, m, s1, s2, e = x.shape
        x = x.reshape(b * m, s1, s2, e)
        if len(self.ffn) == 2:
            x = x + self.ffn[1](self.ffn_norm[1](x))
        x = x.reshape(b, m, s1, s2, e).transpose(0, 1)  # [M, B, S1, S2, E]
        attended = self.attn(self.attn_norm(x).reshape(m, b * s1, s2, e))
        x = x + attended.reshape(m, b, s1, s2, e)
        x = x.transpose(0, 1).reshape(b * m, s1, s2, e)
        x = x + self.ffn[0](self.ffn_norm[0](x))
        return x.reshape(b, m, s1, s2, e)


class CoAttTFLocoformerBlock(nn.Module):
    """Frequency path then frame path (``tf_order="ft"``) on multi-microphone features ``[B, M, E, T, F]``."""

    def __init__(
        self,
        rope_freq: RotaryEmbedding,
        rope_frame: RotaryEmbedding,
        *,
        emb_dim: int,
        num_groups: int,
        tf_order: str,
        n_heads: int,
        flash_attention: bool,
        attention_dim: int,
        freq_ffn_config: Sequence[dict[str, Any]],
        frame_ffn_config: Sequence[dict[str, Any]],
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if tf_order not in ("ft", "tf"):
            raise AdapterError(f"tf_order must be 'ft' or 'tf', got {tf_order!r}.")
        self.tf_order = tf_order
        common = dict(
            emb_dim=emb_dim,
            num_groups=num_groups,
            n_heads=n_heads,
            attention_dim=attention_dim,
            flash_attention=flash_attention,
            eps=eps,
        )
        self.freq_path = LocoformerLayer(ffn_config=freq_ffn_config, rope=rope_freq, **common)
        self.frame_path = LocoformerLayer(ffn_config=frame_ffn_config, rope=rope_frame, **common)

    def _freq(self, x: torch.Tensor) -> torch.Tensor:  # [B, M, T, F, E]
        return self.freq_path(x)

    def _frame(self, x: torch.Tensor) -> torch.Tensor:  # [B, M, T, F, E] via [B, M, F, T, E]
        return self.frame_path(x.transpose(2, 3)).transpose(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, M, E, T, F] -> [B, M, E, T, F]``."""
        x = x.permute(0, 1, 3, 4, 2)  # [B, M, T, F, E]
        first, second = (self._freq, self._frame) if self.tf_order == "ft" else (self._frame, self._freq)
        x = second(first(x))
        return x.permute(0, 1, 4, 2, 3)


class TFLocoformerBlock(CoAttTFLocoformerBlock):
    """Single-channel TF-Locoformer block on ``[N, E, T, F]`` (the co-attention block with one microphone)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, E, T, F] -> [N, E, T, F]``."""
        return super().forward(x.unsqueeze(1)).squeeze(1)


def _check_block_conf(conf: dict[str, Any], name: str) -> dict[str, Any]:
    if not isinstance(conf, dict):
        raise AdapterError(f"{name} must be a mapping of block settings.")
    unknown = sorted(set(conf) - _BLOCK_KEYS)
    if unknown:
        raise AdapterError(f"The FlexIO {name} has unsupported keys {unknown}.")
    missing = sorted(_BLOCK_KEYS - {"tf_order", "flash_attention"} - set(conf))
    if missing:
        raise AdapterError(f"The FlexIO {name} lacks the keys {missing}.")
    conf = dict(conf)
    conf.setdefault("tf_order", "ft")
    conf.setdefault("flash_attention", False)
    head_dim, rest = divmod(conf["attention_dim"], conf["n_heads"])
    if rest or head_dim % 2:
        raise AdapterError(
            f"The FlexIO {name} needs attention_dim / n_heads to be an even integer "
            f"(got {conf['attention_dim']} / {conf['n_heads']})."
        )
    return conf


class MultiTussModel(nn.Module):
    """Prompt-conditioned multi-channel separator (``separator.*`` of the published state dict).

    Args:
        ref_channel: reference microphone (only 0 is supported).
        cross_prompt_module_name: only ``"coatt"``.
        prompts: prompt names, one learnt token ``[E, P, 1]`` each.
        nblocks_cross_prompt_module / conf_cross_prompt_module: co-attention TF-Locoformer stack.
        nblocks_cond_tse_module / conf_cond_tse_module: conditional target-speech-extraction stack.
        sample_rate, stft_size: recorded only (unused by the network).
        eps: RMSGroupNorm epsilon.
        prompt_size: tokens per prompt (only 1 is supported).
        use_sos_token: insert a learnt start-of-sequence token between prompts and frames.
        estimation: ``"masking"`` (complex mask on the reference channel) or ``"mapping"``.
    """

    def __init__(
        self,
        ref_channel: int = 0,
        cross_prompt_module_name: str = "coatt",
        prompts: Sequence[str] = ("speech",),
        nblocks_cross_prompt_module: int = 4,
        conf_cross_prompt_module: dict[str, Any] | None = None,
        nblocks_cond_tse_module: int = 2,
        conf_cond_tse_module: dict[str, Any] | None = None,
        sample_rate: int = 16000,
        stft_size: int = 1024,
        eps: float = 1e-5,
        prompt_size: int = 1,
        use_sos_token: bool = True,
        estimation: str = "masking",
    ) -> None:
        super().__init__()
        if ref_channel != 0:
            raise AdapterError(f"Only ref_channel 0 is supported, got {ref_channel}.")
        if cross_prompt_module_name != "coatt":
            raise AdapterError(f"Only cross_prompt_module_name 'coatt' is supported, got {cross_prompt_module_name!r}.")
        if prompt_size != 1:
            raise AdapterError(f"Only prompt_size 1 is supported, got {prompt_size}.")
        if estimation not in ("masking", "mapping"):
            raise AdapterError(f"estimation must be 'masking' or 'mapping', got {estimation!r}.")
        if not prompts or isinstance(prompts, str):
            raise AdapterError("prompts must be a non-empty list of prompt names.")
        if conf_cross_prompt_module is None or conf_cond_tse_module is None:
            raise AdapterError("The FlexIO model_conf needs conf_cross_prompt_module and conf_cond_tse_module.")
        cross = _check_block_conf(conf_cross_prompt_module, "conf_cross_prompt_module")
        cond = _check_block_conf(conf_cond_tse_module, "conf_cond_tse_module")
        if cross["emb_dim"] != cond["emb_dim"]:
            raise AdapterError(
                f"The cross-prompt and cond-TSE modules need the same emb_dim ({cross['emb_dim']} vs {cond['emb_dim']})."
            )
        emb = cross["emb_dim"]
        self.ref_channel = ref_channel
        self.sample_rate = sample_rate
        self.stft_size = stft_size
        self.eps = eps
        self.prompt_size = prompt_size
        self.use_sos_token = use_sos_token
        self.estimation = estimation
        self.emb_dim = emb

        # Direct parameter first (it precedes the sub-modules in the state dict, as published).
        if use_sos_token:
            self.sos_token = nn.Parameter(torch.randn(emb, prompt_size, 1))
        # One rotary embedding per module and path, shared by all its blocks.
        cross_rope_freq = RotaryEmbedding(cross["attention_dim"] // cross["n_heads"])
        cross_rope_frame = RotaryEmbedding(cross["attention_dim"] // cross["n_heads"])
        cond_rope_freq = RotaryEmbedding(cond["attention_dim"] // cond["n_heads"])
        cond_rope_frame = RotaryEmbedding(cond["attention_dim"] // cond["n_heads"])
        self.cross_prompt_module = nn.ModuleList(
            CoAttTFLocoformerBlock(cross_rope_freq, cross_rope_frame, eps=eps, **cross)
            for _ in range(nblocks_cross_prompt_module)
        )
        self.cond_tse_module = nn.ModuleList(
            TFLocoformerBlock(cond_rope_freq, cond_rope_frame, eps=eps, **cond) for _ in range(nblocks_cond_tse_module)
        )
        self.conv = nn.Sequential(nn.Conv2d(2, emb, 3, padding=1), nn.GroupNorm(1, emb, eps=1e-5))
        self.deconv = nn.ConvTranspose2d(emb, 2, 3, padding=1)
        self.prompts = nn.ParameterDict({name: nn.Parameter(torch.randn(emb, prompt_size, 1)) for name in prompts})

    def forward(self, X: torch.Tensor, prompts: Sequence[Sequence[str]]) -> torch.Tensor:
        """Separate the complex spectra ``X [B, M, T, F]`` into ``[B, n, T, F]`` (complex).

        Args:
            X: complex STFT of every microphone.
            prompts: one list of prompt names per batch item; ``n = len(prompts[0])``. As in the
                reference, only ``prompts[0][0]`` selects the token (for every item and source);
                the sources differ by the positions of their tokens.
        """
        if X.dim() != 4 or not X.is_complex():
            raise AdapterError(f"MultiTussModel expects complex spectra [B, M, T, F], got {list(X.shape)}.")
        n = len(prompts[0])
        if n < 1:
            raise AdapterError("At least one prompt (source) is needed.")
        name = prompts[0][0]
        if name not in self.prompts:
            raise AdapterError(f"Unknown FlexIO prompt {name!r}; this model knows {sorted(self.prompts)}.")
        b, m, t, f = X.shape
        p_size = self.prompt_size
        dtype = self.conv[0].weight.dtype

        feats = torch.stack((X.real, X.imag), dim=2).reshape(b * m, 2, t, f).to(dtype)
        h = self.conv(feats).reshape(b, m, self.emb_dim, t, f)
        tokens = [self.prompts[name].repeat(1, n, 1).expand(b, m, -1, -1, f)]
        if self.use_sos_token:
            tokens.append(self.sos_token.expand(b, m, -1, -1, f))
        h = torch.cat([*tokens, h], dim=3)  # [B, M, E, n*P (+P) + T, F]
        for block in self.cross_prompt_module:
            h = block(h)

        ref = h[:, self.ref_channel]  # [B, E, T1, F]
        prompt_vec = ref[:, :, : n * p_size].reshape(b, self.emb_dim, n, p_size, f).transpose(1, 2)
        z = ref[:, :, n * p_size + (p_size if self.use_sos_token else 0) :]  # [B, E, T, F]
        z = (z.unsqueeze(1) * prompt_vec).reshape(b * n, self.emb_dim, t, f)
        for block in self.cond_tse_module:
            z = block(z)
        out = self.deconv(z).reshape(b, n, 2, t, f).to(X.real.dtype)
        mask = torch.complex(out[:, :, 0], out[:, :, 1])
        if self.estimation == "mapping":
            return mask
        return X[:, self.ref_channel].unsqueeze(1) * mask
