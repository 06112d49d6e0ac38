"""Quality metrics. SI-SDR is plain torch; further metrics join here as optional extras.

All functions take time on the last axis and reduce only that axis.
"""

from __future__ import annotations

import itertools

import numpy as np
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


# --- perceptual metrics (optional extra ``sips-prior[eval]``) -------------------------------------

EVAL_EXTRA = "pip install 'sips-prior[eval]'"
METRICS = ("si_sdr", "pesq", "estoi", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "nisqa")
RATE = 16000


def _require(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        from .errors import MissingDependencyError

        raise MissingDependencyError(f"The metric needs {package}; install it with {EVAL_EXTRA}.") from None


def _numpy(x) -> np.ndarray:
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64).reshape(-1)


def pesq_wb(estimate, reference, sample_rate: int = RATE) -> float:
    """Wide-band PESQ (ITU-T P.862.2) of a 16 kHz estimate against its reference, ``[T], [T] -> float``."""
    if sample_rate != RATE:
        raise ValueError(f"PESQ wide-band is defined at {RATE} Hz, not {sample_rate} Hz")
    pesq = _require("pesq", "pesq")
    return float(pesq.pesq(RATE, _numpy(reference), _numpy(estimate), "wb"))


def estoi(estimate, reference, sample_rate: int = RATE) -> float:
    """Extended STOI (Jensen & Taal 2016) of ``estimate`` against ``reference``, ``[T], [T] -> float``."""
    pystoi = _require("pystoi", "pystoi")
    return float(pystoi.stoi(_numpy(reference), _numpy(estimate), sample_rate, extended=True))


def dnsmos(estimate, sample_rate: int = RATE) -> dict[str, float]:
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808, reference-free, from the ONNX models shipped in the
    PyPI package ``speechmos`` (run with onnxruntime; nothing is downloaded). ``[T] -> dict``.

    Audio whose peak exceeds 1 is scaled down to peak 1 first (the models expect [-1, 1])."""
    if sample_rate != RATE:
        raise ValueError(f"DNSMOS runs at {RATE} Hz, not {sample_rate} Hz")
    _require("onnxruntime", "onnxruntime")
    _require("librosa", "librosa")
    speechmos = _require("speechmos.dnsmos", "speechmos")
    audio = _numpy(estimate)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:  # the models take float audio in [-1, 1]; scale down rather than clip
        audio = audio / peak
    out = speechmos.run(audio.astype(np.float32), RATE)
    return {f"dnsmos_{k}": float(out[f"{k}_mos"]) for k in ("sig", "bak", "ovrl", "p808")}


def nisqa_unavailable_reason() -> str | None:
    """Why NISQA cannot run here (``None`` when a local model is configured).

    NISQA's weights are not on PyPI; point ``SIPS_NISQA_WEIGHTS`` at a local ``nisqa.tar`` to use it.
    """
    import os

    path = os.environ.get("SIPS_NISQA_WEIGHTS")
    if not path:
        return "NISQA weights are not available locally (set SIPS_NISQA_WEIGHTS to nisqa.tar)"
    if not os.path.isfile(path):
        return f"SIPS_NISQA_WEIGHTS points to a missing file {path}"
    return "NISQA is not implemented in this version; its column stays empty"


def mean_ci(values) -> tuple[float, float]:
    """Mean and half-width of the 95 % confidence interval (t distribution) of ``values``."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan")
    if len(x) == 1:
        return float(x[0]), float("nan")
    from math import sqrt

    # two-sided 97.5 % quantiles of Student's t for small n, the normal one beyond
    table = {
        1: 12.706,
        2: 4.303,
        3: 3.182,
        4: 2.776,
        5: 2.571,
        6: 2.447,
        7: 2.365,
        8: 2.306,
        9: 2.262,
        10: 2.228,
        15: 2.131,
        20: 2.086,
        30: 2.042,
        60: 2.000,
    }
    dof = len(x) - 1
    q = table[max(k for k in table if k <= dof)] if dof <= 60 else 1.96  # conservative between entries
    return float(x.mean()), float(q * x.std(ddof=1) / sqrt(len(x)))
