"""The file layer: audio files in, refined audio files out.

Reads any rate and channel count, resamples to the prior's rate, refines (each channel as its
own item, or a mono downmix), resamples back to the file's rate and writes atomically. The CLI
is a thin shell around :func:`refine_file`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from . import audio
from .errors import AudioError
from .predictors import Predictor
from .prior import ScorePrior
from .refine import default_prior, refine, refine_estimates

CHANNEL_POLICIES = ("each", "mix")


def output_paths(out_path: str | os.PathLike, n_src: int) -> list[Path]:
    """``out.wav`` for one source, ``out_s1.wav``, ``out_s2.wav``, ... for several."""
    out_path = Path(out_path)
    if n_src == 1:
        return [out_path]
    return [out_path.with_name(f"{out_path.stem}_s{k + 1}{out_path.suffix}") for k in range(n_src)]


def _prepare(path: str | os.PathLike, rate: int, channels: str) -> tuple[np.ndarray, int, str]:
    if channels not in CHANNEL_POLICIES:
        raise AudioError(f"channels must be one of {', '.join(CHANNEL_POLICIES)}, not {channels!r}.")
    data, file_rate = audio.read(path)
    if channels == "mix":
        data = data.mean(axis=0, keepdims=True)
    subtype = audio.info(path).subtype
    return audio.resample(data, file_rate, rate), file_rate, subtype


def _write_sources(refined: torch.Tensor, out_path: Path, rate: int, file_rate: int, subtype: str) -> list[Path]:
    """``refined [C, K, T]`` at ``rate`` -> one file per source with C channels at ``file_rate``."""
    refined_np = audio.resample(refined.detach().cpu().numpy(), rate, file_rate)
    paths = output_paths(out_path, refined_np.shape[1])
    written_subtype = subtype if subtype.startswith(("PCM", "FLOAT", "DOUBLE")) else None
    for k, path in enumerate(paths):
        source = refined_np[:, k]
        if written_subtype is not None and written_subtype.startswith("PCM"):
            source = np.clip(source, -1.0, 1.0)
        audio.write(path, source, file_rate, subtype=written_subtype)
    return paths


def refine_file(
    predictor: Predictor,
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    prior: ScorePrior | None = None,
    channels: str = "each",
    **kwargs,
) -> list[Path]:
    """Refine one file with ``predictor``; returns the written paths (one per source).

    ``channels="each"`` refines every channel separately, ``"mix"`` a mono downmix. The output
    keeps the input's sample rate (and PCM/float subtype). Other keywords go to :func:`sips.refine`.
    """
    prior = prior if prior is not None else default_prior()
    rate = prior.config.sample_rate
    data, file_rate, subtype = _prepare(in_path, rate, channels)
    # A predictor at another rate than the prior would need its own resampling; refine() reports it.
    refined = refine(predictor, torch.from_numpy(data), prior=prior, sample_rate=rate, **kwargs)
    return _write_sources(refined, Path(out_path), rate, file_rate, subtype)


def refine_estimate_files(
    estimate_paths: list[Path],
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    prior: ScorePrior | None = None,
    channels: str = "each",
    **kwargs,
) -> list[Path]:
    """Refine estimates stored as files (one per source) of the mixture ``in_path``."""
    prior = prior if prior is not None else default_prior()
    rate = prior.config.sample_rate
    data, file_rate, subtype = _prepare(in_path, rate, channels)
    sources = []
    for path in estimate_paths:
        est, _, _ = _prepare(path, rate, channels)
        if est.shape[0] != data.shape[0]:
            raise AudioError(f"{path} has {est.shape[0]} channel(s) but the mixture {in_path} has {data.shape[0]}.")
        sources.append(est)
    length = max(s.shape[-1] for s in sources)
    stacked = np.stack([np.pad(s, ((0, 0), (0, length - s.shape[-1]))) for s in sources], axis=1)  # [C, K, T]
    refined = refine_estimates(
        torch.from_numpy(stacked), torch.from_numpy(data), prior=prior, sample_rate=rate, **kwargs
    )
    return _write_sources(refined, Path(out_path), rate, file_rate, subtype)
