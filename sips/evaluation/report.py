"""A listening report: folders of outputs side by side on one offline page, with a blind test.

``build_report`` takes folders that hold outputs with the same relative names (``noisy/``,
``predictor/``, ``refined/``, ...), or single files (one clip: the demo's
``examples/noisy.wav out/predictor/noisy.wav out/refined/noisy.wav``, systems named after their
folders), and writes a folder::

    OUT/index.html          the page (its script, style and data inline)
    OUT/report.json         the same data for programs: files, systems, scores, the blind order
    OUT/audio/<n>/<k>.ogg   clip of file n for system k (``ref`` for the reference)
    OUT/img/<n>/<k>.jpg     its spectrogram

Why a folder and not one file with embedded audio: a clip is loaded only when it is played (and
its header, for the duration), so the page opens at once however many files it shows; embedded
audio would be base64 text, 4/3 of the bytes, all parsed before the page appears. Share the report
by zipping the folder. The page makes no network request: no CDN, no font, no script from
elsewhere (a Content-Security-Policy forbids them), and it works from ``file://``.

The page has two tabs. *Comparison*: a summary table (mean and 95 % CI over files of every
metric and system) and, per file, a player, a spectrogram (one colour scale per file:
:func:`sips.plot.spectrogram_images`) and the scores of each system. *Blind listening test*:
the files in a seeded random order and, per file, the systems in a seeded random order under the
neutral labels A, B, C, ..., each rated on a MUSHRA-style 0-100 slider (with ``--reference``: the
open reference to compare with, and the reference hidden once more among the rated samples, as in
ITU-R BS.1534). Ratings are kept in the browser's storage and downloaded as JSON or CSV;
:func:`read_ratings` and :func:`summarise_ratings` summarise one or many listeners' files.

Why sliders rather than A/B preferences: one screen rates every system of a file at once (K
ratings instead of K (K - 1) / 2 pairs), the ratings have a mean and a confidence interval, and
preferences follow from them (which system a listener rated highest, and each pair's order).

Audio on the page is the mono mix of each file (as the metrics see it), at the file's rate. The
default format is Ogg Opus at about 64 kbit/s (``--audio opus``), which Chromium, Firefox and
Safari 17+ play; ``flac`` is lossless, ``wav`` plays everywhere. Measured on the 4.8 s example at
16 kHz: WAV 256 kbit/s, FLAC 177 kbit/s, Opus 59-71 kbit/s at this setting (see docs/report.md).

Errors (one sentence each, :class:`sips.SipsError` subclasses; nothing is written): folders with no
file in common (:class:`ReportError`), files of one name at different rates
(:class:`SampleRateError`) or lengths differing by more than 10 ms (:class:`LengthMismatchError`),
an unreadable file (:class:`AudioError`), an output folder that is not empty and holds no report
(:class:`OutputError`).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import math
import os
import random
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import (
    AudioError,
    LengthMismatchError,
    MissingDependencyError,
    OptionError,
    OutputError,
    ReportError,
    SampleRateError,
    SipsError,
)
from ..io import audio as audio_io
from . import metrics as M

#: Page audio formats: extension, libsndfile format, subtype, extra arguments.
AUDIO_FORMATS = {
    "opus": ("ogg", "OGG", "OPUS", {"compression_level": 0.78}),  # about 64 kbit/s (libsndfile 1.2)
    "flac": ("flac", "FLAC", "PCM_16", {}),
    "wav": ("wav", "WAV", "PCM_16", {}),
}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
#: Metric groups: those that need ``--reference``, and those that do not.
REFERENCE_METRICS = ("si_sdr", "pesq", "estoi")
FREE_METRICS = ("dnsmos", "quality")
METRIC_GROUPS = REFERENCE_METRICS + FREE_METRICS
#: Columns of the scores and their labels on the page.
COLUMNS = {
    "si_sdr": "SI-SDR (dB)",
    "pesq": "PESQ-WB",
    "estoi": "ESTOI",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "dnsmos_ovrl": "DNSMOS OVRL",
    "dnsmos_p808": "DNSMOS P.808",
    "quality": "prior score",
}
_NEEDS = {"pesq": ("pesq",), "estoi": ("pystoi",), "dnsmos": ("speechmos", "onnxruntime", "librosa")}
LENGTH_TOLERANCE = 0.01  # seconds by which the files of one name may differ (cropped to the shortest)
REFERENCE = "reference"  # the name of the reference, on the page and in ratings (hidden reference)
FORMAT, RATINGS_FORMAT = "sips-report", "sips-ratings"
HIDDEN_REFERENCE_LIMIT = (90, 0.15)  # BS.1534 post-screening: below 90 for more than 15 % of the items


@dataclass(frozen=True)
class Clip:
    """One file of the report: its name (relative path without extension, ``/``-separated), its
    file in each system's folder, and its reference file (or ``None``)."""

    name: str
    paths: tuple[Path, ...]
    reference: Path | None = None


@dataclass
class Report:
    """What :func:`build_report` wrote: the page, the number of files, the bytes of the folder,
    and notes for the user (files left out, metrics not installed, metrics that failed)."""

    page: Path
    files: int
    bytes: int
    notes: list[str] = field(default_factory=list)


# --- matching folders ---------------------------------------------------------------------------


def system_names(dirs: Sequence[str | os.PathLike], names: Sequence[str] | None, reference: bool) -> list[str]:
    """The display name of each folder: ``names``, else the folder names (the paths as given where
    two folders share a name). Raises :class:`OptionError` for a wrong count, an empty or repeated
    name, or a system called ``reference`` next to ``--reference``."""
    if names is not None:
        if len(names) != len(dirs):
            raise OptionError(f"--names gives {len(names)} name(s) for {len(dirs)} folder(s); give one per folder.")
        chosen = [str(n).strip() for n in names]
    else:  # a folder's name, or for a single file the name of its folder (out/refined/x.wav: refined)
        chosen = [(Path(d).resolve().parent if Path(d).is_file() else Path(d).resolve()).name for d in dirs]
        chosen = [name or audio_io.display(d) for name, d in zip(chosen, dirs, strict=True)]
        if len(set(chosen)) < len(chosen):
            chosen = [audio_io.display(d) for d in dirs]
    if any(not n for n in chosen) or len(set(chosen)) < len(chosen):
        raise OptionError(
            f"The systems need distinct, non-empty names, got {', '.join(map(repr, chosen))}; use --names."
        )
    if reference and REFERENCE in chosen:
        raise OptionError(f"{REFERENCE!r} names the --reference folder; give that system another name with --names.")
    return chosen


def _stems(root: Path, notes: list[str]) -> dict[str, Path]:
    """``{relative path without extension: file}`` of the audio files under the folder ``root``."""
    if not root.is_dir():
        raise AudioError(f"No such folder: {audio_io.display(root)}.")
    files, skipped = audio_io.scan(root)
    note = audio_io.skipped_note(skipped)
    if note:
        notes.append(f"{audio_io.display(root)}: {note}")
    found: dict[str, Path] = {}
    for path in files:
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in found:
            raise ReportError(
                f"{audio_io.display(root)} holds both {audio_io.display(found[key].name)} and "
                f"{audio_io.display(path.name)}; keep one file per name."
            )
        found[key] = path
    return found


def match_folders(
    dirs: Sequence[str | os.PathLike], reference: str | os.PathLike | None = None
) -> tuple[list[Clip], list[str]]:
    """The files found in every folder (and in ``reference``), matched by relative path without
    the extension (``a/x.wav`` goes with ``a/x.flac``), sorted by name; or, when every argument is
    a file, those files as one clip (named after the first).

    Returns:
        ``(clips, notes)``: notes say which folders' files were skipped and how many files are not
        in every folder (they are left out).

    Raises:
        AudioError: a folder does not exist.
        OptionError: files and folders mixed.
        ReportError: no file is in every folder, or a folder holds two files of one name.
    """
    notes: list[str] = []
    roots = [Path(d) for d in dirs] + ([Path(reference)] if reference is not None else [])
    if any(root.is_file() for root in roots):
        if not all(root.is_file() for root in roots):
            raise OptionError(
                "A report compares folders (files matched by relative name) or single files (one clip), "
                "not a mix of both."
            )
        return [Clip(roots[0].stem, tuple(roots[: len(dirs)]), roots[-1] if reference is not None else None)], notes
    found = [_stems(root, notes) for root in roots]
    common = set(found[0]).intersection(*found[1:])
    if not common:
        where = ", ".join(audio_io.display(r) for r in roots)
        raise ReportError(f"No audio file is in every folder ({where}) under the same relative name.")
    left_out = set().union(*found) - common
    if left_out:
        notes.append(f"left out {len(left_out)} file name(s) not in every folder, e.g. {sorted(left_out)[0]}")
    clips = []
    for name in sorted(common):
        paths = tuple(f[name] for f in found[: len(dirs)])
        clips.append(Clip(name, paths, found[-1][name] if reference is not None else None))
    return clips, notes


def _check_references(clips: Sequence[Clip]) -> None:
    """Refuse a reference that is the noisy input a system's file was refined from
    (:mod:`sips.provenance`): it would be shown, scored and hidden as the clean one."""
    from ..io.provenance import misused_references

    pairs = [(path, clip.reference) for clip in clips for path in clip.paths]
    refined, _ = misused_references(pairs)
    if refined:
        est, ref = refined[0]
        raise ReportError(
            f"{audio_io.display(est)} was refined from {audio_io.display(ref)}, so --reference would show its noisy "
            "input as the clean one; give the clean speech as --reference."
        )


def sample_clips(clips: Sequence[Clip], limit: int | None, seed: int) -> list[Clip]:
    """``limit`` clips drawn without replacement by ``random.Random(seed)``, in name order (all of
    them when ``limit`` is ``None`` or not smaller). The same folders and seed give the same draw."""
    if limit is None or limit >= len(clips):
        return list(clips)
    chosen = set(random.Random(seed).sample(range(len(clips)), limit))
    return [c for i, c in enumerate(clips) if i in chosen]


def check_clip(clip: Clip, names: Sequence[str]) -> tuple[int, int]:
    """``(sample rate, frames)`` of a clip from the files' headers (the shortest length).

    Raises:
        AudioError: a file cannot be read as audio.
        SampleRateError: the files are not all at one rate.
        LengthMismatchError: their lengths differ by more than ``LENGTH_TOLERANCE`` seconds.
    """
    labelled = list(zip(names, clip.paths, strict=True))
    if clip.reference is not None:
        labelled.append((REFERENCE, clip.reference))
    infos = [(name, audio_io.info(path)) for name, path in labelled]
    (first, head), rates = infos[0], {i.samplerate for _, i in infos}
    if len(rates) > 1:
        other, odd = next((n, i) for n, i in infos if i.samplerate != head.samplerate)
        raise SampleRateError(
            f"{clip.name} is at {head.samplerate} Hz in {first} but at {odd.samplerate} Hz in {other}; "
            "a report compares files at one rate."
        )
    shortest, longest = min(infos, key=lambda x: x[1].frames), max(infos, key=lambda x: x[1].frames)
    if longest[1].frames - shortest[1].frames > LENGTH_TOLERANCE * head.samplerate:
        raise LengthMismatchError(
            f"{clip.name} has {shortest[1].frames} samples in {shortest[0]} but {longest[1].frames} in {longest[0]}; "
            f"a report compares files of one length (within {LENGTH_TOLERANCE * 1000:.0f} ms)."
        )
    if shortest[1].frames == 0:
        raise AudioError(f"{clip.name} in {shortest[0]} contains no audio samples.")
    return head.samplerate, shortest[1].frames


# --- metrics ------------------------------------------------------------------------------------


def choose_metrics(requested: Sequence[str] | None, reference: bool) -> tuple[list[str], list[str]]:
    """The metric groups to compute, and notes on those left out.

    ``None`` asks for every group that can run: the reference-based ones (SI-SDR, PESQ, ESTOI) only
    with a reference, DNSMOS only where ``sips-prior[eval]`` is installed, and the prior's score.

    Raises:
        OptionError: an unknown group, or a reference-based one without a reference.
        MissingDependencyError: a group asked for by name whose package is not installed.
    """
    explicit = requested is not None
    wanted = list(dict.fromkeys(requested if explicit else METRIC_GROUPS))
    unknown = [m for m in wanted if m not in METRIC_GROUPS]
    if unknown:
        raise OptionError(f"Unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRIC_GROUPS)}.")
    notes, chosen = [], []
    for group in wanted:
        if group in REFERENCE_METRICS and not reference:
            if explicit:
                raise OptionError(f"The metric {group} compares with a reference; give --reference DIR.")
            continue
        missing = [m for m in _NEEDS.get(group, ()) if importlib.util.find_spec(m) is None]
        if missing:
            if explicit:
                raise MissingDependencyError(f"The metric {group} needs {missing[0]}; install it with {M.EVAL_EXTRA}.")
            notes.append(f"{group} left out: {', '.join(missing)} not installed ({M.EVAL_EXTRA})")
            continue
        chosen.append(group)
    return chosen, notes


def score_signal(
    signal: np.ndarray,
    reference: np.ndarray | None,
    groups: Sequence[str],
    *,
    prior=None,
    seed: int = 0,
    device=None,
) -> tuple[dict[str, float], list[str]]:
    """Scores of one 16 kHz signal ``[T]`` (against ``reference [T]`` for the reference-based groups).

    Returns:
        ``({column: value}, problems)``: a group that fails on this signal (e.g. PESQ on silence) is
        left out and named in ``problems``; a missing package still raises
        :class:`MissingDependencyError`.
    """
    import torch

    from .evaluate import score_sources
    from .quality import quality

    est = torch.from_numpy(signal)
    scores, problems = {}, []
    for group in groups:
        if group in REFERENCE_METRICS and reference is None:
            continue
        try:
            if group in REFERENCE_METRICS:
                scores.update(score_sources(est[None], torch.from_numpy(reference)[None], [group]))
            elif group == "dnsmos":
                scores.update(M.dnsmos(est))
            else:
                scores["quality"] = quality(est, prior=prior, sample_rate=M.RATE, seed=seed, device=device).score
        except MissingDependencyError:
            raise
        except Exception as err:  # noqa: BLE001 - a metric that fails on one signal leaves its cell empty
            reason = err if isinstance(err, SipsError) else f"{type(err).__name__}: {err}"
            problems.append(f"{group} failed ({' '.join(str(reason).split())})")
    return scores, problems


def summarise_scores(files: Sequence[dict], systems: Sequence[str]) -> dict[str, dict[str, list[float | None]]]:
    """``{system: {column: [mean, ci95 half-width]}}`` over the files that have the score (JSON-ready:
    a missing value is ``None``)."""
    out: dict[str, dict[str, list[float | None]]] = {}
    for system in systems:
        columns = {c for f in files for c in f["scores"].get(system, {})}
        out[system] = {
            c: [_finite(v) for v in M.mean_ci([f["scores"][system].get(c) for f in files if system in f["scores"]])]
            for c in COLUMNS
            if c in columns
        }
    return out


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


# --- the page -----------------------------------------------------------------------------------


def _encode(signal: np.ndarray, rate: int, fmt: str) -> tuple[bytes, str]:
    """``signal [T]`` at ``rate`` as the bytes of a page audio file, and its extension. Opus takes
    only some rates: other rates are resampled to 48 kHz."""
    ext, major, subtype, extra = AUDIO_FORMATS[fmt]
    if fmt == "opus" and rate not in OPUS_RATES:
        signal, rate = audio_io.resample(signal, rate, 48000), 48000
    buffer = io.BytesIO()
    import soundfile as sf

    with sf.SoundFile(buffer, "w", samplerate=rate, channels=1, format=major, subtype=subtype, **extra) as f:
        f.write(np.clip(signal, -1.0, 1.0))
    return buffer.getvalue(), ext


def _colours(cmap: str = "magma", stops: int = 9) -> list[str] | None:
    """CSS colours along the spectrograms' colour map (for the page's colour bar), if matplotlib is here."""
    try:
        from matplotlib import colormaps
    except ImportError:
        return None
    from matplotlib.colors import to_hex

    return [to_hex(colormaps[cmap](i / (stops - 1))) for i in range(stops)]


def blind_trials(files: int, systems: Sequence[str], reference: bool, seed: int) -> list[dict]:
    """The blind test: the files in a seeded random order, and per file the systems (and, with a
    reference, the hidden reference) in a seeded random order under the labels A, B, C, ...

    Returns:
        ``[{"file": index, "stimuli": [{"label": "A", "system": name}, ...]}, ...]``.
    """
    rng = random.Random(f"sips-report-blind-{seed}")
    order = list(range(files))
    rng.shuffle(order)
    names = [*systems, REFERENCE] if reference else list(systems)
    trials = []
    for index in order:
        shuffled = list(names)
        rng.shuffle(shuffled)
        stimuli = [{"label": _label(k), "system": s} for k, s in enumerate(shuffled)]
        trials.append({"file": index, "stimuli": stimuli})
    return trials


def _label(k: int) -> str:
    """A, B, ..., Z, AA, AB, ..."""
    text = ""
    k += 1
    while k:
        k, rest = divmod(k - 1, 26)
        text = chr(65 + rest) + text
    return text


def render_page(data: dict) -> str:
    """The page's HTML: the template with its style, script and ``data`` (the report) inline."""
    assets = resources.files("sips.evaluation") / "report_assets"
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")  # safe in <script>
    page = (assets / "page.html").read_text(encoding="utf-8")
    for key, value in (
        ("/*STYLE*/", (assets / "page.css").read_text(encoding="utf-8")),
        ("/*SCRIPT*/", (assets / "page.js").read_text(encoding="utf-8")),
        ("/*DATA*/", text),
    ):
        page = page.replace(key, value, 1)
    return page


def _check_out(out: Path, dirs: Sequence[Path]) -> None:
    """``out`` may be new, empty or an earlier report; never inside (or holding) an input folder."""
    target = out.resolve()
    for d in dirs:
        d = d.resolve()
        if target == d or d in target.parents or target in d.parents:
            raise OutputError(
                f"The output folder {audio_io.display(out)} overlaps the input folder {audio_io.display(d)}; "
                "choose another."
            )
    if out.exists() and not out.is_dir():
        raise OutputError(f"{audio_io.display(out)} is a file; the report is a folder.")
    if out.is_dir() and any(out.iterdir()) and not is_report(out):
        raise OutputError(f"{audio_io.display(out)} is not empty and holds no sips report; choose a new folder.")


def is_report(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a report written by :func:`build_report` (which may replace it)."""
    try:
        return json.loads((Path(folder) / "report.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _replace_folder(tmp: Path, out: Path) -> None:
    """Put the finished folder ``tmp`` at ``out``; an earlier report there is removed afterwards."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
        os.replace(out, old / "old")
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_report(
    dirs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    reference: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    audio: str = "opus",
    prior=None,
    device=None,
    progress: bool = False,
) -> Report:
    """Write the report folder ``out`` (see the module docstring) for the systems in ``dirs``.

    Args:
        dirs: one folder per system, holding files with the same relative names (searched recursively),
            or one file per system (a report of one clip).
        out: the report folder: new, empty, or an earlier report (which is replaced).
        reference: a folder of clean references named like the outputs (a file with files); enables
            SI-SDR, PESQ and ESTOI, the open and hidden reference of the blind test. A reference
            that a system's file was refined from (the noisy input) is refused.
        names: a name per system (default: the folder names).
        limit: show only this many files, drawn reproducibly with ``seed``.
        seed: seeds the draw of ``limit``, the blind test's order and the prior's probes.
        metrics: groups among ``si_sdr, pesq, estoi, dnsmos, quality``; ``None``: all that can run
            (see :func:`choose_metrics`); ``[]``: none.
        audio: the page's audio format, ``opus``, ``flac`` or ``wav``.
        prior: the prior for the ``quality`` score: a :class:`sips.ScorePrior`, a name or folder for
            :func:`sips.load_prior`, or ``None`` for the embedded one.
        device: where the prior runs.
        progress: a tqdm bar over the files.

    Returns:
        A :class:`Report`.

    Raises:
        OptionError, AudioError, ReportError, SampleRateError, LengthMismatchError, OutputError,
        MissingDependencyError: see the module docstring. On any error nothing is left at ``out``
        (an earlier report there is kept).
    """
    from tqdm.auto import tqdm

    from ..checks import check_seed

    if not dirs:
        raise OptionError("A report needs at least one folder of outputs.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise OptionError(f"limit must be an integer >= 1, got {limit!r}.")
    if audio not in AUDIO_FORMATS:
        raise OptionError(f"audio must be one of {', '.join(AUDIO_FORMATS)}, not {audio!r}.")
    check_seed(seed)
    out = Path(out)
    systems = system_names(dirs, names, reference is not None)
    _check_out(out, [Path(d) for d in [*dirs, *([reference] if reference is not None else [])]])
    groups, notes = choose_metrics(metrics, reference is not None)
    clips, found_notes = match_folders(dirs, reference)
    notes += found_notes
    if reference is not None:
        _check_references(clips)
    clips = sample_clips(clips, limit, seed)
    heads = [check_clip(c, systems) for c in clips]  # every header before any work
    if "quality" in groups and (prior is None or isinstance(prior, str | os.PathLike)):
        from ..method.prior import load_prior

        prior = load_prior(prior, device=device)
    colours = _colours()
    if colours is None:
        notes.append("spectrograms left out: matplotlib is not installed (pip install 'sips-prior[plot]')")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        files = []
        bar = tqdm(list(zip(clips, heads, strict=True)), desc="report", unit="file", disable=not progress)
        for index, (clip, (rate, frames)) in enumerate(bar):
            files.append(
                _write_clip(tmp, index, clip, systems, rate, frames, groups, audio, colours, prior, seed, device)
            )
            notes += [f"{clip.name}: {p}" for p in files[-1].pop("problems")]
        data = {
            "format": FORMAT,
            "version": 1,
            "id": _report_id(systems, clips, reference is not None, seed),
            "seed": seed,
            "systems": systems,
            "reference": reference is not None,
            "columns": [
                [c, label] for c, label in COLUMNS.items() if any(c in s for f in files for s in f["scores"].values())
            ],
            "summary": summarise_scores(files, [*systems, REFERENCE] if reference is not None else systems),
            "colours": colours,
            "files": files,
            "trials": blind_trials(len(files), systems, reference is not None, seed),
        }
        (tmp / "report.json").write_text(json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
        (tmp / "index.html").write_text(render_page(data), encoding="utf-8")
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        os.chmod(tmp, 0o777 & ~_umask())
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Report(out / "index.html", len(files), size, notes)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _report_id(systems: Sequence[str], clips: Sequence[Clip], reference: bool, seed: int) -> str:
    """A short id of what a listener rates: systems, file names, reference or not, and the seed."""
    key = json.dumps([list(systems), [c.name for c in clips], reference, seed])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _write_clip(
    folder: Path,
    index: int,
    clip: Clip,
    systems: Sequence[str],
    rate: int,
    frames: int,
    groups: Sequence[str],
    fmt: str,
    colours: list[str] | None,
    prior,
    seed: int,
    device,
) -> dict:
    """Write one file's audio and spectrograms under ``folder``; returns its entry of the page data."""
    signals = {}
    for name, path in zip(systems, clip.paths, strict=True):
        data, _ = audio_io.read(path)
        signals[name] = data.mean(axis=0)[:frames]
    if clip.reference is not None:
        signals[REFERENCE] = audio_io.read(clip.reference)[0].mean(axis=0)[:frames]
    keys = {name: str(k) for k, name in enumerate(systems)} | {REFERENCE: "ref"}
    entry: dict = {"name": clip.name, "seconds": round(frames / rate, 3), "rate": rate, "audio": {}, "images": {}}
    (folder / "audio" / str(index)).mkdir(parents=True)
    for name, signal in signals.items():
        payload, ext = _encode(signal, rate, fmt)
        rel = f"audio/{index}/{keys[name]}.{ext}"
        (folder / rel).write_bytes(payload)
        entry["audio"][name] = rel
    at_16k = {name: audio_io.resample(s, rate, M.RATE) for name, s in signals.items()}
    if colours is not None:
        from .plot import spectrogram_images

        (folder / "img" / str(index)).mkdir(parents=True)
        images, _ = spectrogram_images(at_16k, format="jpeg")
        for name, payload in images.items():
            rel = f"img/{index}/{keys[name]}.jpg"
            (folder / rel).write_bytes(payload)
            entry["images"][name] = rel
    entry["scores"], entry["problems"] = {}, []
    ref16 = at_16k.get(REFERENCE)
    for name, signal in at_16k.items():
        scores, problems = score_signal(
            signal, ref16 if name != REFERENCE else None, groups, prior=prior, seed=seed, device=device
        )
        entry["scores"][name] = {k: _finite(v) for k, v in scores.items() if k in COLUMNS}
        entry["problems"] += [f"{name}: {p}" for p in problems]
    return entry


# --- ratings ------------------------------------------------------------------------------------

RATING_FIELDS = ("report", "listener", "trial", "file", "label", "system", "rating")


@dataclass(frozen=True)
class Rating:
    """One rating: a listener's 0-100 score of one system on one file of one report."""

    report: str
    listener: str
    file: str
    system: str
    rating: float
    source: str  # the file it was read from


def read_ratings(paths: Sequence[str | os.PathLike]) -> list[Rating]:
    """Read listeners' ratings files, as the page downloads them (``.json`` or ``.csv``).

    Raises:
        ReportError: a file is missing, unreadable or malformed, the files come from different
            reports, or one listener rated one system on one file twice (a file given twice).
    """
    ratings: list[Rating] = []
    for path in map(Path, paths):
        ratings += _read_ratings_file(path)
    reports = sorted({r.report for r in ratings})
    if len(reports) > 1:
        raise ReportError(
            f"The ratings come from {len(reports)} different reports ({', '.join(reports)}); summarise one at a time."
        )
    seen: dict[tuple[str, str, str], str] = {}
    for r in ratings:
        key = (r.listener, r.file, r.system)
        if key in seen:
            where = seen[key] if seen[key] == r.source else f"{seen[key]} and {r.source}"
            raise ReportError(
                f"{r.listener!r} rated {r.system} on {r.file} twice (in {where}); give each listener's file once."
            )
        seen[key] = r.source
    return ratings


def _read_ratings_file(path: Path) -> list[Rating]:
    shown = audio_io.display(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
        raise ReportError(f"Cannot read the ratings file {shown} ({reason}).") from None
    try:
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            if not rows or set(RATING_FIELDS) - set(rows[0]):
                raise ValueError(f"a CSV with the columns {', '.join(RATING_FIELDS)}")
        else:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != RATINGS_FORMAT:
                raise ValueError("a JSON ratings file downloaded from a sips report")
            rows = [{**r, "report": data.get("report"), "listener": data.get("listener")} for r in data["ratings"]]
        ratings = [_rating(row, shown) for row in rows]
    except (ValueError, KeyError, TypeError) as err:
        raise ReportError(f"{shown} is not a ratings file of a sips report (expected {err}).") from None
    if not ratings:
        raise ReportError(f"{shown} holds no ratings.")
    return ratings


def _rating(row: dict, source: str) -> Rating:
    value = float(row["rating"])
    if not 0 <= value <= 100:
        raise ValueError("ratings from 0 to 100")
    texts = [str(row[k] or "").strip() for k in ("report", "listener", "file", "system")]
    if not all(texts[2:]):
        raise ValueError("a file and a system in every row")
    return Rating(*texts, value, source)


@dataclass
class SystemRatings:
    """Summary of one system's ratings: how many, from how many listeners, their mean and 95 % CI
    half-width, and in how many trials (listener x file) it had the highest rating of the systems,
    alone (``best``) or shared (``tied``). The hidden reference is left out of best and tied."""

    system: str
    count: int
    listeners: int
    mean: float
    ci95: float
    best: int = 0
    tied: int = 0


def summarise_ratings(
    ratings: Sequence[Rating],
) -> tuple[list[SystemRatings], dict[tuple[str, str], list[int]], list[str]]:
    """Per-system summary, pairwise preferences and notes.

    Returns:
        ``(rows, pairs, notes)``: ``rows`` per system, the hidden reference last; ``pairs[(a, b)]``
        = ``[trials where a was rated above b, below, equal]`` for every pair of systems (the
        reference left out); notes name listeners who rated the hidden reference below 90 in more
        than 15 % of their files (the listeners ITU-R BS.1534 would exclude; they are kept here).
    """
    systems = sorted({r.system for r in ratings}, key=lambda s: (s == REFERENCE, s))
    trials: dict[tuple[str, str], dict[str, float]] = {}
    for r in ratings:
        trials.setdefault((r.listener, r.file), {})[r.system] = r.rating
    rows = []
    for s in systems:
        values = [r.rating for r in ratings if r.system == s]
        mean, half = M.mean_ci(values)
        rows.append(SystemRatings(s, len(values), len({r.listener for r in ratings if r.system == s}), mean, half))
    by_name = {row.system: row for row in rows}
    pairs: dict[tuple[str, str], list[int]] = {}
    rated = [s for s in systems if s != REFERENCE]
    for scores in trials.values():
        scores = {s: v for s, v in scores.items() if s != REFERENCE}
        if scores:
            top = max(scores.values())
            winners = [s for s, v in scores.items() if v == top]
            for s in winners:
                if len(winners) == 1:
                    by_name[s].best += 1
                else:
                    by_name[s].tied += 1
        for i, a in enumerate(rated):
            for b in rated[i + 1 :]:
                if a in scores and b in scores:
                    cell = pairs.setdefault((a, b), [0, 0, 0])
                    cell[0 if scores[a] > scores[b] else 1 if scores[a] < scores[b] else 2] += 1
    notes = []
    limit, share = HIDDEN_REFERENCE_LIMIT
    for listener in sorted({r.listener for r in ratings}):
        own = [r.rating for r in ratings if r.listener == listener and r.system == REFERENCE]
        low = sum(v < limit for v in own)
        if own and low > share * len(own):
            notes.append(
                f"{listener!r} rated the hidden reference below {limit} in {low} of {len(own)} files "
                "(ITU-R BS.1534 post-screening would exclude this listener; kept here)"
            )
    return rows, pairs, notes


def format_ratings(rows: Sequence[SystemRatings], pairs: dict[tuple[str, str], list[int]], files: int) -> str:
    """The terminal table of :func:`summarise_ratings`, and one line per pair of systems."""
    width = max([len(r.system) for r in rows] + [6])
    lines = [f"{'system':<{width}} {'ratings':>7} {'listeners':>9} {'mean':>7} {'± 95% CI':>9} {'best':>5} {'tied':>5}"]
    for r in rows:
        ci = f"{r.ci95:9.2f}" if math.isfinite(r.ci95) else f"{'—':>9}"
        best = ("—", "—") if r.system == REFERENCE else (r.best, r.tied)
        lines.append(f"{r.system:<{width}} {r.count:>7} {r.listeners:>9} {r.mean:>7.2f} {ci} {best[0]:>5} {best[1]:>5}")
    lines.append(f"(0-100 scale; {files} file(s); best/tied: trials where the system had the highest rating)")
    for (a, b), (above, below, equal) in pairs.items():
        lines.append(f"{a} above {b} in {above} of {above + below + equal} trials, below in {below}, equal in {equal}")
    return "\n".join(lines)


def write_ratings_csv(path: str | os.PathLike, rows: Sequence[SystemRatings]) -> None:
    """One row per system (the columns of :class:`SystemRatings`), written atomically."""
    from .._atomic import atomic_path

    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["system", "ratings", "listeners", "mean", "ci95", "best", "tied"])
        for r in rows:
            ci = f"{r.ci95:.4f}" if math.isfinite(r.ci95) else ""
            writer.writerow([r.system, r.count, r.listeners, f"{r.mean:.4f}", ci, r.best, r.tied])
