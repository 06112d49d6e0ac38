"""The selective scan of the Mamba mixer (S6), three ways.

All three compute, for every sequence ``b`` and inner channel ``d`` (state size ``N``)::

    dt[l]  = softplus(delta[l] + delta_bias)                      (threshold 20, as torch)
    s[l]   = exp(dt[l] * A) * s[l-1] + (dt[l] * B[:, l]) * u[l]     s[-1] = 0, s in R^N
    y[l]   = (sum_n s[l, n] * C[n, l] + D * u[l]) * silu(z[l])

* :func:`selective_scan_loop` — the per-step reference (one Python iteration per time step);
* :func:`selective_scan_parallel` — the same recurrence as a log-depth odd/even (Blelloch-style)
  reduction: ``ceil(log2 L)`` levels of whole-tensor operations, no loop over time steps. It
  only ever multiplies decays ``exp(dt * A) <= 1`` and adds, so nothing can overflow in float32
  however long the sequence or strong the decay (unlike cumulative-sum-of-log-decay factorisations
  ``exp(c_l) * sum_j exp(-c_j) b_j``, whose ``exp(-c_j)`` overflows once a chunk decays by ~88 nats);
* the fused CUDA kernel ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn`` (optional extra
  ``sips-semamba[cuda]``), used by ``method="auto"`` when mamba-ssm imports and the tensors are on CUDA.

All are differentiable (the CUDA kernel has its own backward).
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from sips.errors import AdapterError, MissingDependencyError

ScanMethod = Literal["auto", "parallel", "loop", "cuda"]
SCAN_METHODS = ("auto", "parallel", "loop", "cuda")

#: Upper bound on the elements of one ``[L, b, d, N]`` intermediate of the parallel scan on CPU (1 MiB
#: in float32: tiles that stay in cache were fastest) and on accelerators (256 MiB: few, large kernels).
MAX_SCAN_ELEMENTS_CPU = 1 << 18
MAX_SCAN_ELEMENTS_ACCELERATOR = 1 << 26


@functools.lru_cache(maxsize=1)
def _cuda_kernel():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or a broken CUDA extension (OSError / RuntimeError)
        return None
    return selective_scan_fn


def has_cuda_kernel() -> bool:
    """Whether ``mamba_ssm``'s fused selective-scan kernel can be imported."""
    return _cuda_kernel() is not None


def check_method(method: str) -> str:
    """``method`` if it names a selective-scan implementation, else AdapterError."""
    if method not in SCAN_METHODS:
        raise AdapterError(f"Unknown selective-scan method {method!r}; choose one of {', '.join(SCAN_METHODS)}.")
    return method


def resolve_method(method: str, device: torch.device) -> str:
    """The concrete method (``"parallel"``, ``"loop"`` or ``"cuda"``) for tensors on ``device``."""
    if check_method(method) == "auto":
        return "cuda" if device.type == "cuda" and has_cuda_kernel() else "parallel"
    if method == "cuda":
        if not has_cuda_kernel():
            raise MissingDependencyError(
                "The fused selective scan needs mamba-ssm; install it with `pip install sips-semamba[cuda]`."
            )
        if device.type != "cuda":
            raise AdapterError(f"The fused selective scan runs on CUDA tensors only, not on {device}.")
    return method


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    z: torch.Tensor,
    delta_bias: torch.Tensor,
    *,
    method: ScanMethod = "auto",
) -> torch.Tensor:
    """Selective scan with softplus on ``delta`` (see the module docstring).

    Args:
        u: input ``[Bt, D, L]``.
        delta: time steps before bias and softplus ``[Bt, D, L]``.
        A: state matrix (diagonal, negative) ``[D, N]``.
        B: input-dependent input matrix ``[Bt, N, L]``.
        C: input-dependent output matrix ``[Bt, N, L]``.
        D: skip gain ``[D]``.
        z: gate ``[Bt, D, L]`` (the output is multiplied by ``silu(z)``).
        delta_bias: ``[D]``.
        method: ``"auto"`` (CUDA kernel on CUDA tensors when mamba-ssm is installed, else
            ``"parallel"``), ``"parallel"``, ``"loop"`` or ``"cuda"``.

    Returns:
        ``y [Bt, D, L]`` in the dtype of ``u`` (computed in float32).
    """
    chosen = resolve_method(method, u.device)
    if chosen == "cuda":
        kernel = _cuda_kernel()
        return kernel(
            u,
            delta,
            A,
            B.contiguous(),
            C.contiguous(),
            D.float(),
            z=z,
            delta_bias=delta_bias.float(),
            delta_softplus=True,
        )
    fn = selective_scan_loop if chosen == "loop" else selective_scan_parallel
    return fn(u, delta, A, B, C, D, z, delta_bias).to(u.dtype)


def _gate(y: torch.Tensor, u: torch.Tensor, D: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``(y + D * u) * silu(z)`` for ``[Bt, D, L]`` tensors."""
    return (y + u * D.float()[:, None]) * F.silu(z.float())


def selective_scan_loop(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    z: torch.Tensor,
    delta_bias: torch.Tensor,
) -> torch.Tensor:
    """Reference implementation: one Python iteration per time step (shapes as :func:`selective_scan`).

    Evaluates in the order of the published float32 reference (``[Bt, D, L, N]`` decay and drive
    tensors, state update ``decay * s + drive``, read-out contracted over ``N``), so that it
    reproduces the golden fixtures bit for bit on CPU.
    """
    u, B, C = u.float(), B.float(), C.float()
    dt = F.softplus(delta.float() + delta_bias.float()[:, None])  # [Bt, D, L]
    decay = torch.exp(torch.einsum("bdl,dn->bdln", dt, A.float()))
    drive = torch.einsum("bdl,bnl,bdl->bdln", dt, B, u)
    state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    outputs = []
    for step in range(u.shape[2]):
        state = decay[:, :, step] * state + drive[:, :, step]
        outputs.append(torch.einsum("bdn,bn->bd", state, C[:, :, step]))
    return _gate(torch.stack(outputs, dim=2), u, D, z)


def selective_scan_parallel(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    z: torch.Tensor,
    delta_bias: torch.Tensor,
    *,
    max_elements: int | None = None,
) -> torch.Tensor:
    """Parallel implementation (shapes as :func:`selective_scan`): log-depth, no loop over time.

    Works time-major (``[L, b, d, N]``: every time step one contiguous block) on tiles of sequences
    ``b`` and inner channels ``d`` holding at most ``max_elements`` values each (every sequence and
    channel is an independent recurrence), which keeps the working set in cache and bounds memory
    for long inputs (``None``: 2**18 on CPU, 2**26 elsewhere). Without autograd the states are
    written in place into one buffer; with autograd each tile is recomputed in the backward pass
    (activation checkpointing), so training memory does not grow with the state size ``N``.
    """
    if max_elements is None:
        max_elements = MAX_SCAN_ELEMENTS_CPU if u.device.type == "cpu" else MAX_SCAN_ELEMENTS_ACCELERATOR
    u, B, C, A = u.float(), B.float(), C.float(), A.float()
    batch, channels, length = u.shape
    n_state = A.shape[1]
    dt = F.softplus(delta.float() + delta_bias.float()[:, None])  # [Bt, D, L]
    dt_t, dtu_t = dt.permute(2, 0, 1), (dt * u).permute(2, 0, 1)  # [L, Bt, D]
    B_t, C_t = B.permute(2, 0, 1).unsqueeze(-2), C.permute(2, 0, 1).unsqueeze(-2)  # [L, Bt, 1, N]
    per_sequence = length * channels * n_state
    if per_sequence <= max_elements:
        tile_b, tile_d = max_elements // per_sequence, channels
    else:
        tile_b, tile_d = 1, max(1, max_elements // (length * n_state))
    differentiable = torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C, delta_bias))
    row_pieces = []
    for b0 in range(0, batch, tile_b):
        rows = slice(b0, b0 + tile_b)
        pieces = []
        for d0 in range(0, channels, tile_d):
            cols = slice(d0, d0 + tile_d)
            args = (dt_t[:, rows, cols], dtu_t[:, rows, cols], A[cols], B_t[:, rows], C_t[:, rows])
            if differentiable:
                # Keep only the small [L, b, d] inputs for the backward pass and recompute the
                # N-times larger states tile by tile (what the fused kernel does too).
                pieces.append(checkpoint(_scan_tile, *args, True, use_reentrant=False, preserve_rng_state=False))
            else:
                pieces.append(_scan_tile(*args, False))
        row_pieces.append(pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2))
    y = row_pieces[0] if len(row_pieces) == 1 else torch.cat(row_pieces, dim=1)  # [L, Bt, D]
    return _gate(y.permute(1, 2, 0), u, D, z)


def _scan_tile(
    dt: torch.Tensor, dtu: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, differentiable: bool
) -> torch.Tensor:
    """Read-out ``[L, b, d]`` of one tile: ``dt, dt*u [L, b, d]``, ``A [d, N]``, ``B, C [L, b, 1, N]``."""
    decay = (dt.unsqueeze(-1) * A).exp_()  # [L, b, d, N]
    drive = dtu.unsqueeze(-1) * B
    if differentiable:
        states = linear_recurrence(decay, drive)
    else:
        states = torch.empty_like(drive)
        _recurrence_into(decay, drive, states)
    return (states * C).sum(-1)


def linear_recurrence(decay: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
    """All states of ``h[t] = decay[t] * h[t-1] + drive[t]`` (``h[-1] = 0``) along dim 0 (differentiable).

    Odd/even reduction: neighbouring steps ``(a0, b0), (a1, b1)`` compose to the single step
    ``(a1 * a0, a1 * b0 + b1)``; the half-length problem gives the states at odd positions, one
    more fused multiply-add the states at even positions. Depth ``ceil(log2 L)``, work ``O(L)``.

    Args:
        decay: ``[L, ...]``.
        drive: ``[L, ...]`` (same shape).

    Returns:
        ``[L, ...]``.
    """
    length = decay.shape[0]
    if length == 1:
        return drive
    pairs = length // 2
    a_even, a_odd = decay[0 : 2 * pairs : 2], decay[1 : 2 * pairs : 2]
    b_even, b_odd = drive[0 : 2 * pairs : 2], drive[1 : 2 * pairs : 2]
    h_odd = linear_recurrence(a_odd * a_even, torch.addcmul(b_odd, a_odd, b_even))  # states 1, 3, 5, ...
    h_even = torch.addcmul(drive[2::2], decay[2::2], h_odd[: (length - 1) // 2])  # states 2, 4, ...
    h_even = torch.cat([drive[:1], h_even])  # states 0, 2, 4, ...
    # Interleave with stack/cat (cheap backward: slices) rather than slice assignments.
    states = torch.stack([h_even[:pairs], h_odd], dim=1).reshape(2 * pairs, *drive.shape[1:])
    return states if length == 2 * pairs else torch.cat([states, h_even[pairs:]])


def _recurrence_into(decay: torch.Tensor, drive: torch.Tensor, out: torch.Tensor) -> None:
    """:func:`linear_recurrence` writing every level straight into (strided views of) ``out``; no autograd."""
    length = decay.shape[0]
    if length == 1:
        out[0] = drive[0]
        return
    pairs = length // 2
    a_even, a_odd = decay[0 : 2 * pairs : 2], decay[1 : 2 * pairs : 2]
    b_even, b_odd = drive[0 : 2 * pairs : 2], drive[1 : 2 * pairs : 2]
    _recurrence_into(a_odd * a_even, torch.addcmul(b_odd, a_odd, b_even), out[1 : 2 * pairs : 2])
    out[0] = drive[0]
    if length > 2:
        torch.addcmul(drive[2::2], decay[2::2], out[1 : length - 1 : 2], out=out[2::2])
