"""Scoring estimates against references (``sips eval``): two folders, or two files.

Folders are matched by relative path without the extension (``a/x.wav`` goes with ``a/x.flac``,
not with ``b/x.wav``). Separated sources follow the CLI's naming: the references
``x_s1.wav, x_s2.wav`` (or ``x.wav`` for one source) go with the estimates ``x_s1.wav, ...``,
matched by the permutation of best SI-SDR. Two files are one pair, whatever their names (the
demo's ``sips eval examples/clean.wav out/refined/noisy.wav``).

A pairing that cannot measure anything is refused before any scoring
(:mod:`sips.provenance`): a "reference" that is the estimate's own noisy input (the estimate was
refined from it, by sips' tag in the estimate; ``sips eval examples out`` matches
``out/noisy.wav`` with ``examples/noisy.wav``), or a reference with the same bytes as its estimate. Every file is read as mono at 16 kHz (resampled with
soxr when needed); estimate and reference are cut to the shorter length, and a length difference
above 10 ms is reported. A metric that cannot run leaves its column empty with the reason. An
item that fails (an unreadable file, a metric that raises on it) keeps the reason in ``error``;
the run goes on, and ``sips eval`` counts it (exit status 2).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .._atomic import atomic_path
from ..errors import AudioError, MissingDependencyError, OptionError, SipsError
from ..io import audio as audio_io
from ..io.provenance import misused_references
from . import metrics as M

DEFAULT_METRICS = ("si_sdr", "pesq", "estoi", "dnsmos")
_SOURCE = re.compile(r"^(?P<stem>.+)_s(?P<k>\d+)$")


@dataclass
class Item:
    """One utterance: its name, reference files and estimate files (same number, any order)."""

    name: str
    references: list[Path]
    estimates: list[Path]
    scores: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # why the item could not be scored


def _group(root: Path, problems: list[str]) -> dict[str, list[Path]]:
    files, skipped = audio_io.scan(root)
    note = audio_io.skipped_note(skipped)
    if note:
        problems.append(f"{audio_io.display(root)}: {note}")
    groups: dict[str, list[Path]] = {}
    for path in files:
        rel = path.relative_to(root)
        match = _SOURCE.match(rel.stem)
        key = str(rel.parent / (match["stem"] if match else rel.stem))
        groups.setdefault(key, []).append(path)
    return {k: sorted(v) for k, v in groups.items()}


def match_folders(ref_dir: str | os.PathLike, est_dir: str | os.PathLike) -> tuple[list[Item], list[str]]:
    """Pair references and estimates: two folders by relative path, or two files as one pair.

    Returns:
        The items and a list of problems found (names without a partner, source counts that differ).

    Raises:
        SipsError: a folder or file that does not exist, nothing matched.
        OptionError: a file and a folder, or a pairing refused by :func:`check_pairing`.
    """
    ref_dir, est_dir = Path(ref_dir), Path(est_dir)
    if ref_dir.is_file() or est_dir.is_file():
        if not (ref_dir.is_file() and est_dir.is_file()):
            raise OptionError(
                "sips eval takes two folders (matched by relative path) or two files (one pair), "
                f"not {audio_io.display(ref_dir)} and {audio_io.display(est_dir)}."
            )
        items = [Item(audio_io.display(est_dir), [ref_dir], [est_dir])]
        check_pairing(items)
        return items, []
    for d in (ref_dir, est_dir):
        if not d.is_dir():
            raise SipsError(f"Folder not found: {d}.")
    problems: list[str] = []
    refs, ests = _group(ref_dir, problems), _group(est_dir, problems)
    if not refs:
        raise AudioError(f"No audio files found in {audio_io.display(ref_dir)}.")
    problems += [f"{k}: no estimate" for k in sorted(set(refs) - set(ests))]
    problems += [f"{k}: no reference" for k in sorted(set(ests) - set(refs))]
    items = []
    for key in sorted(set(refs) & set(ests)):
        if len(refs[key]) != len(ests[key]):
            problems.append(f"{key}: {len(refs[key])} reference source(s) but {len(ests[key])} estimate(s)")
            continue
        items.append(Item(key, refs[key], ests[key]))
    if not items:
        raise SipsError(f"No estimate in {est_dir} matches a reference in {ref_dir} by relative path.")
    check_pairing(items)
    return items, problems


def check_pairing(items: Sequence[Item]) -> None:
    """Refuse, in one sentence, pairings that measure nothing (see the module docstring).

    Raises:
        OptionError: an estimate refined from the file it is paired with as reference, or an
            estimate with the same bytes as its reference.
    """
    pairs = [(e, r) for i in items for e in i.estimates for r in i.references]
    refined, identical = misused_references(pairs)
    reasons = (
        (
            refined,
            "was refined from {ref}{more}, so that file is its noisy input, not a clean reference: score "
            "against the clean speech instead, as two files (sips eval CLEAN.wav ESTIMATE.wav) or as a folder of clean "
            "references named like the estimates.",
        ),
        (
            identical,
            "holds the same bytes as its reference {ref}{more}, so there is nothing to score; check which "
            "folders you compare.",
        ),
    )
    for found, sentence in reasons:
        if found:
            est, ref = found[0]
            more = f" (and {len(found) - 1} more pair(s) like it)" if len(found) > 1 else ""
            raise OptionError(f"{audio_io.display(est)} " + sentence.format(ref=audio_io.display(ref), more=more))


def _load(paths: Sequence[Path]) -> torch.Tensor:
    """Sources ``[K, T]``: each file mono at 16 kHz, cut to the shortest."""
    clips = [torch.from_numpy(audio_io.load_mono(p, M.RATE)) for p in paths]
    n = min(len(c) for c in clips)
    return torch.stack([c[:n] for c in clips])


def score_item(item: Item, names: Sequence[str]) -> None:
    """Fill ``item.scores`` (means over sources) for the metric groups in ``names``."""
    ref, est = _load(item.references), _load(item.estimates)
    n = min(ref.shape[-1], est.shape[-1])
    if abs(ref.shape[-1] - est.shape[-1]) > M.RATE // 100:
        item.notes.append(f"lengths differ by {abs(ref.shape[-1] - est.shape[-1])} samples; scored the first {n}")
    item.scores = score_sources(est[..., :n], ref[..., :n], names)


def score_sources(est: torch.Tensor, ref: torch.Tensor, names: Sequence[str]) -> dict[str, float]:
    """Metrics of ``est [K, T]`` against ``ref [K, T]`` under the best-SI-SDR permutation, averaged
    over the sources."""
    _, perm = M.pit_si_sdr(est, ref)
    est = est[perm]
    per_source: dict[str, list[float]] = {}
    for k in range(ref.shape[0]):
        for key, value in _metrics(est[k], ref[k], names).items():
            per_source.setdefault(key, []).append(value)
    return {k: sum(v) / len(v) for k, v in per_source.items()}


def _metrics(est: torch.Tensor, ref: torch.Tensor, names: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    if "si_sdr" in names:
        out["si_sdr"] = float(M.si_sdr(est, ref))
    if "pesq" in names:
        out["pesq"] = M.pesq_wb(est, ref)
    if "estoi" in names:
        out["estoi"] = M.estoi(est, ref)
    if "dnsmos" in names:
        out.update(M.dnsmos(est))
    if "nisqa" in names:
        out.update(M.nisqa(est))
    return out


def evaluate_folders(
    ref_dir: str | os.PathLike,
    est_dir: str | os.PathLike,
    metrics: Sequence[str] = DEFAULT_METRICS,
    csv_path: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[list[Item], dict[str, tuple[float, float]], list[str]]:
    """Score every matched pair.

    Args:
        ref_dir, est_dir: folders (searched recursively, matched by relative path), or two files.
        metrics: groups among ``si_sdr, pesq, estoi, dnsmos, nisqa``.
        csv_path: where to write one row per item (written atomically).

    Returns:
        ``(items, summary {column: (mean, ci95)}, problems)``.

    Raises:
        SipsError: unknown metrics, missing folders, nothing matched; :class:`OptionError` for a
            pairing :func:`check_pairing` refuses; :class:`MissingDependencyError` for a metric
            whose package is not installed.
    """
    unknown = sorted(set(metrics) - {"si_sdr", "pesq", "estoi", "dnsmos", "nisqa"})
    if unknown:
        raise SipsError(f"Unknown metric(s) {', '.join(unknown)}; choose from si_sdr, pesq, estoi, dnsmos, nisqa.")
    items, problems = match_folders(ref_dir, est_dir)
    nisqa_missing = M.nisqa_unavailable_reason() if "nisqa" in metrics else None
    active = [m for m in metrics if not (m == "nisqa" and nisqa_missing)]
    if nisqa_missing:
        problems.append(f"nisqa: {nisqa_missing}")
    from tqdm.auto import tqdm

    for item in tqdm(items, desc="eval", disable=not progress):
        try:
            score_item(item, active)
        except MissingDependencyError:
            raise
        except Exception as err:  # noqa: BLE001 - one item never stops the run; it is counted as failed
            reason = err if isinstance(err, SipsError) else f"unexpected {type(err).__name__}: {err}"
            item.error = " ".join(str(reason).split())
            item.notes.append(f"not scored ({item.error})")
    columns = [c for c in M.METRICS if any(c in i.scores for i in items)]
    if nisqa_missing:
        columns.append("nisqa")
    summary = {c: M.mean_ci([i.scores.get(c) for i in items if i.scores.get(c) is not None]) for c in columns}
    problems += [f"{i.name}: {note}" for i in items for note in i.notes if i.error is None]
    if csv_path is not None:
        with atomic_path(Path(csv_path)) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["item", *columns, "notes"])
            for i in items:
                cells = [_cell(i.scores.get(c)) for c in columns]
                writer.writerow([audio_io.display(i.name), *cells, audio_io.display("; ".join(i.notes))])
    return items, summary, problems


def _cell(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.4f}"


def format_summary(summary: dict[str, tuple[float, float]], count: int) -> str:
    """A plain-text table: metric, mean, 95 % CI half-width."""
    lines = [f"{'metric':<12} {'mean':>9} {'± 95% CI':>9}   (n = {count})"]
    for name, (mean, half) in summary.items():
        lines.append(f"{name:<12} {_cell(mean) or '—':>9} {_cell(half) or '—':>9}")
    return "\n".join(lines)
