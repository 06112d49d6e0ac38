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
METRICS = (
    "si_sdr",
    "pesq",
    "estoi",
    "dnsmos_sig",
    "dnsmos_bak",
    "dnsmos_ovrl",
    "dnsmos_p808",
    "nisqa",
    "nisqa_noi",
    "nisqa_dis",
    "nisqa_col",
    "nisqa_loud",
)
RATE = 16000


def _require(module: str, package: str, metric: str, install: str = EVAL_EXTRA):
    """``module`` imported, or :class:`~sips.errors.MissingDependencyError` naming the metric
    (``metric``: its name in ``--metrics``), the package and how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        from ..errors import MissingDependencyError, spell

        raise MissingDependencyError(
            f"The metric {metric} needs the package {package}, which is not installed: install it with {install}, "
            f"or leave {metric} out of {spell('metrics')}."
        ) from None


def _numpy(x) -> np.ndarray:
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64).reshape(-1)


def pesq_wb(estimate, reference, sample_rate: int = RATE) -> float:
    """Wide-band PESQ (ITU-T P.862.2) of a 16 kHz estimate against its reference, ``[T], [T] -> float``."""
    if sample_rate != RATE:
        raise ValueError(f"PESQ wide-band is defined at {RATE} Hz, not {sample_rate} Hz")
    pesq = _require("pesq", "pesq", "pesq")
    return float(pesq.pesq(RATE, _numpy(reference), _numpy(estimate), "wb"))


def estoi(estimate, reference, sample_rate: int = RATE) -> float:
    """Extended STOI (Jensen & Taal 2016) of ``estimate`` against ``reference``, ``[T], [T] -> float``."""
    pystoi = _require("pystoi", "pystoi", "estoi")
    return float(pystoi.stoi(_numpy(reference), _numpy(estimate), sample_rate, extended=True))


def dnsmos(estimate, sample_rate: int = RATE) -> dict[str, float]:
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808, reference-free, from the ONNX models shipped in the
    PyPI package ``speechmos`` (run with onnxruntime; nothing is downloaded). ``[T] -> dict``.

    Audio whose peak exceeds 1 is scaled down to peak 1 first (the models expect [-1, 1])."""
    if sample_rate != RATE:
        raise ValueError(f"DNSMOS runs at {RATE} Hz, not {sample_rate} Hz")
    _require("onnxruntime", "onnxruntime", "dnsmos")
    _require("librosa", "librosa", "dnsmos")
    speechmos = _require("speechmos.dnsmos", "speechmos", "dnsmos")
    audio = _numpy(estimate)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:  # the models take float audio in [-1, 1]; scale down rather than clip
        audio = audio / peak
    out = speechmos.run(audio.astype(np.float32), RATE)
    return {f"dnsmos_{k}": float(out[f"{k}_mos"]) for k in ("sig", "bak", "ovrl", "p808")}


NISQA_ENV = "SIPS_NISQA_WEIGHTS"
NISQA_INSTALL = "pip install --no-deps nisqa==2.0.post2"
NISQA_COLUMNS = METRICS[7:]


def nisqa_unavailable_reason() -> str | None:
    """Why NISQA cannot run here, or ``None`` when it can.

    NISQA's weights are not on PyPI (and may not be downloaded at run time): point
    ``SIPS_NISQA_WEIGHTS`` at a local ``nisqa.tar`` (or ``nisqa_mos_only.tar``) and install the
    ``nisqa`` package without its pinned dependencies (``pip install --no-deps nisqa==2.0.post2``).
    """
    import importlib.util
    import os

    path = os.environ.get(NISQA_ENV)
    if not path:
        return f"NISQA weights are not available locally (set {NISQA_ENV} to nisqa.tar)"
    if not os.path.isfile(path):
        return f"{NISQA_ENV} points to a missing file {path}"
    if importlib.util.find_spec("nisqa") is None:
        return f"the nisqa package is not installed ({NISQA_INSTALL})"
    return None


_NISQA_MODELS: dict[tuple[str, float], tuple[torch.nn.Module, dict]] = {}


def _nisqa_model(path: str) -> tuple[torch.nn.Module, dict]:
    """The NISQA network described by the checkpoint at ``path`` and its feature arguments (cached).

    The checkpoint is read with ``torch.load(weights_only=True)``: plain tensors and containers
    only, no code is unpickled."""
    import inspect
    import os

    key = (os.path.abspath(path), os.path.getmtime(path))
    if key in _NISQA_MODELS:
        return _NISQA_MODELS[key]
    from ..errors import SipsError
    from ..pretrained.weights import load_strict, load_torch_checkpoint

    checkpoint = load_torch_checkpoint(path, "NISQA checkpoint", error=SipsError)
    lib = _require("nisqa.NISQA_lib", "nisqa", "nisqa", NISQA_INSTALL)
    try:
        args, state = checkpoint["args"], checkpoint["model_state_dict"]
    except (KeyError, TypeError, IndexError):
        raise SipsError(f"{path} is not a NISQA checkpoint with plain 'args' and 'model_state_dict'.") from None
    kinds = {"NISQA_DIM": lib.NISQA_DIM, "NISQA": lib.NISQA}
    if args.get("model") not in kinds:
        raise SipsError(f"{path} holds a {args.get('model')!r} model; sips runs the single-ended NISQA and NISQA_DIM.")
    cls = kinds[args["model"]]
    accepted = inspect.signature(cls).parameters
    model = cls(**{k: v for k, v in args.items() if k in accepted})
    load_strict(model, state, path, error=SipsError, what="its args")
    _NISQA_MODELS[key] = (model.eval(), args)
    return _NISQA_MODELS[key]


def nisqa(estimate, sample_rate: int = RATE) -> dict[str, float]:
    """NISQA (Mittag et al. 2021) reference-free quality, ``[T] -> dict``.

    Runs the model of the local checkpoint named by ``SIPS_NISQA_WEIGHTS`` through the feature
    functions of the ``nisqa`` package, as its own file prediction does. Returns ``nisqa`` (MOS) and,
    for NISQA_DIM checkpoints, the dimensions ``nisqa_noi``, ``nisqa_dis``, ``nisqa_col`` and
    ``nisqa_loud``. Audio whose peak exceeds 1 is scaled to peak 1 (the features read a WAV file).
    """
    import os
    import tempfile

    from ..errors import MissingDependencyError

    reason = nisqa_unavailable_reason()
    if reason is not None:
        raise MissingDependencyError(f"NISQA cannot run: {reason}.")
    sf = _require("soundfile", "soundfile", "nisqa")
    lib = _require("nisqa.NISQA_lib", "nisqa", "nisqa", NISQA_INSTALL)
    model, args = _nisqa_model(os.environ[NISQA_ENV])
    audio = _numpy(estimate)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    audio = audio / peak if peak > 1.0 else audio
    with tempfile.TemporaryDirectory(prefix="sips-nisqa-") as folder:
        wav = os.path.join(folder, "x.wav")
        sf.write(wav, audio.astype(np.float32), sample_rate, subtype="FLOAT")
        spec = lib.get_librosa_melspec(
            wav,
            sr=args["ms_sr"],
            n_fft=args["ms_n_fft"],
            hop_length=args["ms_hop_length"],
            win_length=args["ms_win_length"],
            n_mels=args["ms_n_mels"],
            fmax=args["ms_fmax"],
        )
    segments, n_wins = lib.segment_specs(
        wav, spec, args["ms_seg_length"], args["ms_seg_hop_length"], args.get("ms_max_segments")
    )
    if int(n_wins) < 1:
        raise ValueError(f"NISQA needs at least {args['ms_seg_length']} spectrogram frames; the audio is too short")
    with torch.inference_mode():
        out = model(segments.unsqueeze(0).float(), torch.as_tensor(n_wins).reshape(1)).reshape(-1)
    return {name: float(v) for name, v in zip(NISQA_COLUMNS, out, strict=False)}


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
