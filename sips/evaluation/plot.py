"""Pictures (optional extra ``sips-prior[plot]``: matplotlib): spectrograms side by side (one
figure, or one bare image per signal for web pages), the quality-vs-network-calls curve, and an
ensemble's disagreement over the refined spectrogram."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingDependencyError


def _pyplot():
    """matplotlib.pyplot (it falls back to the Agg backend by itself where there is no display)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("Plots need matplotlib; install it with pip install 'sips-prior[plot]'.") from None
    return plt


def _save(fig, path: str | os.PathLike | None):
    if path is not None:
        from .._atomic import atomic_path

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    return fig


def _log_spectrogram(x, n_fft: int, hop: int) -> np.ndarray:
    x = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(-1)
    mag = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs()
    return 20 * torch.log10(mag.clamp(min=1e-10)).numpy()


def _shared_scale(signals: Mapping[str, torch.Tensor | np.ndarray], n_fft: int, hop: int):
    """``({name: dB spectrogram [F, N]}, top)``: the spectrograms and their common maximum in dB."""
    if not signals:
        raise ValueError("spectrograms needs at least one signal")
    specs = {name: _log_spectrogram(x, n_fft, hop) for name, x in signals.items()}
    return specs, max(float(s.max()) for s in specs.values())


def _show(ax, spec: np.ndarray, hop: int, sample_rate: int, top: float, floor_db: float, cmap: str):
    """Draw a dB spectrogram on ``ax`` with time (s) and frequency (kHz) axes; returns the image."""
    seconds = spec.shape[1] * hop / sample_rate
    return ax.imshow(
        spec,
        origin="lower",
        aspect="auto",
        vmin=top + floor_db,
        vmax=top,
        cmap=cmap,
        extent=(0, seconds, 0, sample_rate / 2000),
    )


def spectrograms(
    signals: Mapping[str, torch.Tensor | np.ndarray],
    sample_rate: int = 16000,
    *,
    path: str | os.PathLike | None = None,
    n_fft: int = 512,
    hop: int = 128,
    floor_db: float = -80.0,
    title: str | None = None,
):
    """Log-magnitude spectrograms of ``{name: [T] signal}`` in one row, sharing the colour scale.

    Typical use: ``{"mixture": y, "predictor": x_hat, "refined": out, "clean": s}``. Returns the
    matplotlib figure; with ``path`` it is also written (PNG, SVG, PDF by suffix).
    """
    plt = _pyplot()
    specs, top = _shared_scale(signals, n_fft, hop)
    fig, axes = plt.subplots(1, len(specs), figsize=(3.2 * len(specs), 3.0), sharey=True, squeeze=False)
    for ax, (name, spec) in zip(axes[0], specs.items(), strict=True):
        image = _show(ax, spec, hop, sample_rate, top, floor_db, "magma")
        ax.set_title(name)
        ax.set_xlabel("time (s)")
    axes[0][0].set_ylabel("frequency (kHz)")
    fig.colorbar(image, ax=axes[0].tolist(), label="dB", shrink=0.9)
    if title:
        fig.suptitle(title, y=1.05)
    return _save(fig, path)


def spectrogram_images(
    signals: Mapping[str, torch.Tensor | np.ndarray],
    *,
    n_fft: int = 512,
    hop: int = 128,
    floor_db: float = -80.0,
    max_columns: int = 600,
    cmap: str = "magma",
    format: str = "png",
) -> tuple[dict[str, bytes], float]:
    """One bare image per signal (no axes: frequency up, time to the right), all on one colour scale.

    The scale is that of :func:`spectrograms`: its top is the loudest bin of any of the signals (dB),
    its bottom ``floor_db`` below. For web pages, where each signal sits in its own cell. An image
    is ``n_fft // 2 + 1`` pixels high and at most ``max_columns`` wide: longer spectrograms keep
    the maximum of each group of neighbouring frames, so short events stay visible.

    Args:
        signals: ``{name: [T] signal}`` (all at one sample rate).
        format: an image format matplotlib writes without extras (``png``) or through Pillow (``jpeg``).

    Returns:
        ``({name: encoded image}, top in dB)``.

    Raises:
        ValueError: no signal.
        MissingDependencyError: matplotlib is not installed.
    """
    _pyplot()  # the error that names the extra, before matplotlib.image is imported
    import io

    from matplotlib import image

    specs, top = _shared_scale(signals, n_fft, hop)
    images = {}
    for name, spec in specs.items():
        group = -(-spec.shape[1] // max_columns)
        if group > 1:
            pad = -spec.shape[1] % group
            spec = np.pad(spec, ((0, 0), (0, pad)), mode="edge").reshape(spec.shape[0], -1, group).max(-1)
        buffer = io.BytesIO()
        image.imsave(buffer, spec, vmin=top + floor_db, vmax=top, cmap=cmap, origin="lower", format=format)
        images[name] = buffer.getvalue()
    return images, top


def nfe_curve(
    results: Mapping[str, Sequence[tuple[float, float]]],
    *,
    ylabel: str = "SI-SDR (dB)",
    reference: float | None = None,
    reference_label: str = "15-step Euler",
    path: str | os.PathLike | None = None,
):
    """Quality against the number of network calls: ``{method: [(calls, value), ...]}``.

    ``reference`` draws a horizontal line (e.g. the 15-step Euler result).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for name, points in results.items():
        calls, values = zip(*sorted(points), strict=True)
        ax.plot(calls, values, marker="o", label=name)
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", label=reference_label)
    ax.set_xlabel("network calls")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def uncertainty(
    refined: torch.Tensor | np.ndarray,
    disagreement: torch.Tensor | np.ndarray,
    sample_rate: int = 16000,
    *,
    error: torch.Tensor | np.ndarray | None = None,
    path: str | os.PathLike | None = None,
    floor_db: float = -80.0,
    title: str | None = None,
):
    """The refined spectrogram with the ensemble's per-frame disagreement drawn over it.

    Args:
        refined: ``[T]`` refined signal (one source).
        disagreement: ``[N]`` per-frame disagreement from ``refine(..., return_uncertainty=True)``
            (frames of hop 128: ``N = 1 + T // 128``).
        error: optionally ``[N]`` a per-frame error to compare with (e.g. the predictor's), drawn
            on the same time axis with its own scale.
    """
    plt = _pyplot()
    spec = _log_spectrogram(refined, 512, 128)
    seconds = spec.shape[1] * 128 / sample_rate
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    _show(ax, spec, 128, sample_rate, float(spec.max()), floor_db, "gray_r")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    curve = np.asarray(disagreement, dtype=np.float64).reshape(-1)
    times = np.arange(len(curve)) * 128 / sample_rate
    twin = ax.twinx()
    twin.plot(times, curve, color="tab:red", linewidth=1.2, label="disagreement")
    twin.set_ylabel("disagreement", color="tab:red")
    twin.set_ylim(bottom=0)
    if error is not None:
        err = np.asarray(error, dtype=np.float64).reshape(-1)
        third = ax.twinx()
        third.plot(np.arange(len(err)) * 128 / sample_rate, err, color="tab:blue", linewidth=1.0, alpha=0.7)
        third.set_yticks([])
        third.set_ylim(bottom=0)
        twin.plot([], [], color="tab:blue", label="error")
    twin.legend(loc="upper right")
    ax.set_xlim(0, seconds)
    if title:
        ax.set_title(title)
    return _save(fig, path)
