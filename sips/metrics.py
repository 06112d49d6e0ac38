"""Quality metrics. SI-SDR is plain torch; further metrics join here as optional extras.

All functions take time on the last axis and reduce only that axis.
"""

from __future__ import annotations

import itertools

import torch


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Scale-invariant SDR in dB, ``[..., T], [..., T] -> [...]`` (both made zero-mean first).

    ``10 log10(|a r|^2 / |a r - e|^2)`` with ``a = <e, r> / |r|^2``; broadcasting applies.
    """
    estimate = estimate - estimate.mean(-1, keepdim=True)
    reference = reference - reference.mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / reference.square().sum(-1, keepdim=True).clamp(min=eps)
    target = scale * reference
    return 10 * torch.log10(
        target.square().sum(-1).clamp(min=eps) / (estimate - target).square().sum(-1).clamp(min=eps)
    )


def pit_si_sdr(estimates: torch.Tensor, references: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best-permutation mean SI-SDR of separated sources.

    Args:
        estimates: ``[..., K, T]``.
        references: ``[..., K, T]``.

    Returns:
        ``(score [...], permutation [..., K])``: the mean over sources of the SI-SDR under the
        assignment that maximises it, and that assignment (``estimates[..., perm[k], :]`` goes
        with ``references[..., k, :]``).
    """
    k = references.shape[-2]
    if estimates.shape[-2] != k:
        raise ValueError(f"pit_si_sdr needs as many estimates as references, got {estimates.shape[-2]} and {k}")
    pairwise = si_sdr(estimates.unsqueeze(-3), references.unsqueeze(-2))  # [..., K_ref, K_est]
    perms = torch.tensor(list(itertools.permutations(range(k))), device=pairwise.device)  # [P, K]
    scores = pairwise[..., torch.arange(k), perms].mean(-1)  # [..., P]
    best = scores.argmax(-1)
    return scores.max(-1).values, perms[best]
