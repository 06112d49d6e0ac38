"""Overlapping windows for long audio: where the windows go, how they are cross-faded back
together, and how separated sources are kept in the same order from one window to the next.

Pure tensor functions; :mod:`sips.refine` drives them. A signal of ``T`` samples is cut into
windows of ``window`` samples that overlap by at least ``overlap`` samples (the last window is
spread evenly). Each window's result is weighted by a trapezoid whose ramps are half-Hann
cross-fades over the parts it shares with its neighbours (weight 1 elsewhere, including the
signal's own ends), and the sum is divided by the sum of the weights. Neighbouring ramps already
sum to one (``sin^2 + cos^2``), so the division only matters for the last bits.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import torch


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start samples of evenly spaced windows covering ``[0, length)``; ``[0]`` when one suffices.

    Args:
        length: signal length ``T``.
        window: window length in samples (> ``overlap``).
        overlap: minimum overlap of neighbouring windows in samples (>= 0); the fewest windows
            that keep at least this overlap are spread evenly, so real overlaps may be longer.
    """
    if window <= overlap or overlap < 0:
        raise ValueError(f"the window ({window} samples) must be longer than the overlap ({overlap}) and both >= 0.")
    if length <= window:
        return [0]
    count = math.ceil((length - window) / (window - overlap)) + 1
    return [round(k * (length - window) / (count - 1)) for k in range(count)]


def fade_weights(size: int, fade_in: int, fade_out: int) -> torch.Tensor:
    """Cross-fade weight ``[size]`` of one window: a rising half-Hann ramp over its first
    ``fade_in`` samples (the part shared with the previous window; 0 for the first window), a
    falling one over its last ``fade_out`` samples, 1 elsewhere. Every weight is positive, and the
    falling ramp of one window and the rising ramp of the next sum to one over their shared part.
    """
    weight = torch.ones(size)
    for length, at_start in ((min(fade_in, size // 2), True), (min(fade_out, size // 2), False)):
        if length <= 0:
            continue
        ramp = torch.sin(0.5 * math.pi * (torch.arange(length) + 0.5) / length).square()
        if at_start:
            weight[:length] = ramp
        else:
            weight[-length:] = ramp.flip(0)
    return weight


def shared(starts: list[int], index: int, size: int) -> tuple[int, int]:
    """Samples window ``index`` shares with the previous and with the next window."""
    fade_in = starts[index - 1] + size - starts[index] if index > 0 else 0
    fade_out = starts[index] + size - starts[index + 1] if index + 1 < len(starts) else 0
    return fade_in, fade_out


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
