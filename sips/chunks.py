"""Overlapping windows for long audio: where the windows go, how they are cross-faded back
together, and how separated sources are kept in the same order from one window to the next.

Pure tensor functions; :mod:`sips.refine` drives them. A signal of ``T`` samples is cut into
windows of ``window`` samples that overlap by at least ``overlap`` samples (the last window is
moved back to end at ``T``). Each window's result is weighted by a trapezoid whose ramps are
half-Hann cross-fades over the overlaps (weight 1 elsewhere, including the signal's own ends), and
the sum is divided by the sum of the weights. Where two windows overlap by exactly ``overlap``
samples the two ramps already sum to one (``sin^2 + cos^2``), so the division changes nothing there.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import torch


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start samples of the windows covering ``[0, length)``; ``[0]`` when one window suffices.

    Args:
        length: signal length ``T``.
        window: window length in samples (> ``overlap``).
        overlap: minimum overlap of neighbouring windows in samples (>= 0).
    """
    if window <= overlap or overlap < 0:
        raise ValueError(f"the window ({window} samples) must be longer than the overlap ({overlap}) and both >= 0.")
    if length <= window:
        return [0]
    hop = window - overlap
    starts = list(range(0, length - window, hop))
    return [*starts, length - window]


def fade_weights(start: int, size: int, length: int, overlap: int) -> torch.Tensor:
    """Cross-fade weight ``[size]`` of the window ``[start, start + size)`` of a ``length`` signal.

    A rising half-Hann ramp over the first ``overlap`` samples unless the window starts the signal,
    a falling one over the last ``overlap`` samples unless it ends the signal, 1 elsewhere. Every
    weight is positive.
    """
    weight = torch.ones(size)
    ramp_len = min(overlap, size // 2)
    if ramp_len == 0:
        return weight
    ramp = torch.sin(0.5 * math.pi * (torch.arange(ramp_len) + 0.5) / ramp_len).square()
    if start > 0:
        weight[:ramp_len] = ramp
    if start + size < length:
        weight[-ramp_len:] = ramp.flip(0)
    return weight


def batches(items: Sequence[int], size: int) -> Iterator[list[tuple[int, int]]]:
    """``(index, item)`` pairs of ``items`` in consecutive groups of at most ``size``."""
    indexed = list(enumerate(items))
    for first in range(0, len(indexed), size):
        yield indexed[first : first + size]


def best_permutation(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Order of ``current``'s sources that best continues ``previous`` over their shared samples.

    Args:
        previous: ``[B, K, L]``, the already ordered sources over the overlap.
        current: ``[B, K, L]``, the new window's sources over the same samples.

    Returns:
        ``[B, K]`` long: ``current[b, perm[b, k]]`` continues ``previous[b, k]``. The score of an
        assignment is the sum of the normalised correlations of the paired sources; all ``K!``
        assignments are tried up to ``K = 6``, beyond that a greedy pairing is used.
    """
    prev = previous - previous.mean(-1, keepdim=True)
    cur = current - current.mean(-1, keepdim=True)
    prev = prev / prev.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cur = cur / cur.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    corr = torch.einsum("bkl,bjl->bkj", prev, cur)  # [B, K_prev, K_cur]
    k = corr.shape[-1]
    if k <= 6:
        perms = torch.tensor(list(itertools.permutations(range(k))), device=corr.device)  # [P, K]
        scores = corr[:, torch.arange(k, device=corr.device), perms].sum(-1)  # [B, P]
        return perms[scores.argmax(-1)]
    out = torch.empty(corr.shape[:2], dtype=torch.long)
    for b in range(corr.shape[0]):
        free = corr[b].clone()
        for _ in range(k):
            flat = int(free.argmax())
            row, col = divmod(flat, k)
            out[b, row] = col
            free[row, :] = -math.inf
            free[:, col] = -math.inf
    return out
