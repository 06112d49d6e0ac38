"""The ``sips`` command: ``refine``, ``eval``, ``quality``, ``report``, ``priors``, ``download``, ``push``, ``convert``, ``train``.

Errors a user can cause print one sentence to stderr and exit with status 2. In a corpus run
(``refine``, ``eval``, ``quality``) a file that fails for any reason is one line; the run goes on
and ends with a count of the failures (status 2). Printed paths show bytes that are not UTF-8 as
``\\xNN``. Options are checked before any model is loaded or any file is read; a bad option is one
line and status 2, like any user error. Long work shows a tqdm progress bar on stderr when it is a
terminal (``--quiet`` turns it off).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from .errors import OptionError, OutputError, SipsError


def _say(text: str, file=None) -> None:
    """Print one line (to stdout, or ``file``) through tqdm, file names made printable."""
    from tqdm.auto import tqdm

    from .io.audio import display

    tqdm.write(display(text), file=file)


def _file_error(path: Path, err: Exception) -> str:
    """One line for a file that failed: a user error's sentence, or the type and text of anything else."""
    from .io.audio import display

    if isinstance(err, SipsError):
        text = str(err)
    else:
        text = f"unexpected {type(err).__name__}: {err}"
    text = " ".join(text.split())
    return text if display(path) in display(text) else f"{display(path)}: {text}"


class _HelpFormatter(argparse.HelpFormatter):
    """Adds ``; default X`` to an option's help, unless the text already names its default or the
    default is ``None`` / ``False`` (the text then says what happens without the option)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default is argparse.SUPPRESS:
            return text
        if not action.option_strings:
            return text
        if isinstance(default, list | tuple):
            default = (" " if isinstance(default, list) else ",").join(map(str, default)) or "none"
        return f"{text}; default {str(default).replace('%', '%%')}"


class _Parser(argparse.ArgumentParser):
    """argparse with the house's errors: one line on stderr and status 2, no usage dump."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"sips: error: {message} (see {self.prog} --help).\n")


def _number(convert, accept, wanted: str):
    """An argparse ``type`` that converts with ``convert`` and refuses values where ``accept`` is false."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    parse.__name__ = wanted
    return parse


_COUNT = _number(int, lambda v: v >= 1, "an integer >= 1")
_NATURAL = _number(int, lambda v: v >= 0, "an integer >= 0")
_POSITIVE = _number(float, lambda v: math.isfinite(v) and v > 0, "a number > 0")
_NON_NEGATIVE = _number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
_DECAY = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = None
    if values is None or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return values


_DEVICE_HELP = "where the networks run: cpu, cuda, cuda:1, ...; default cpu (under torchrun, cuda is cuda:LOCAL_RANK)"


def _add_quiet(p: argparse.ArgumentParser, *aliases: str) -> None:
    p.add_argument(
        "-q", "--quiet", *aliases, action="store_true", help="no progress bar (it shows only when stderr is a terminal)"
    )


def _progress(args: argparse.Namespace) -> bool:
    """A progress bar, unless ``--quiet`` or stderr is not a terminal."""
    return not args.quiet and sys.stderr.isatty()


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a prior on clean speech (resumes from OUT/checkpoint.pt)")
    p.add_argument("data", nargs="+", help="folders or files of clean speech (any rate, resampled to 16 kHz)")
    p.add_argument("-o", "--out", required=True, help="run folder (checkpoint.pt, summary.json); required")
    p.add_argument("--valid", nargs="*", default=(), help="held-out clean speech for the validation loss; default none")
    p.add_argument("--steps", type=_COUNT, default=10_000, help="total optimiser steps")
    p.add_argument(
        "--max-minutes",
        type=_POSITIVE,
        default=None,
        help="stop (resumably) after this much wall time; default no limit",
    )
    p.add_argument(
        "--max-cpu-minutes",
        type=_POSITIVE,
        default=None,
        help="stop (resumably) after this much CPU time of training steps in this process; default no limit",
    )
    p.add_argument("--batch-size", type=_COUNT, default=8, help="segments per step and per process")
    p.add_argument("--segment-seconds", type=_POSITIVE, default=1.0, help="length of a training crop")
    p.add_argument("--lr", type=_POSITIVE, default=2e-3, help="peak learning rate")
    p.add_argument("--warmup-steps", type=_NATURAL, default=200, help="linear warm-up of the learning rate (0: none)")
    p.add_argument(
        "--decay-steps", type=_NATURAL, default=2000, help="lr decays as 1/sqrt(step/N) after N steps (0: no decay)"
    )
    p.add_argument("--ema", type=_DECAY, default=0.999, help="EMA decay of the exported weights")
    p.add_argument("--checkpoint-every", type=_COUNT, default=200, help="steps between checkpoints")
    p.add_argument("--valid-every", type=_COUNT, default=200, help="steps between validation losses")
    p.add_argument("--seed", type=_NATURAL, default=0, help="seed of the crops, noise and initial weights")
    p.add_argument("--threads", type=_COUNT, default=None, help="torch CPU threads per process; default torch's choice")
    p.add_argument("--model-channels", type=_COUNT, default=16, help="channels of the network's first level")
    p.add_argument(
        "--channel-mult", type=_ints, default=(1, 1, 2, 4, 8), help="channel multiplier per level, comma-separated"
    )
    p.add_argument("--num-blocks", type=_COUNT, default=1, help="residual blocks per level")
    p.add_argument(
        "--attn-resolutions",
        type=_ints,
        default=(),
        help="frequency resolutions with self-attention, e.g. 16; default none (the lowest level always has one)",
    )
    p.add_argument("--channels-per-head", type=_COUNT, default=64, help="channels per attention head")
    p.add_argument("--logvar-channels", type=_COUNT, default=32, help="width of the log-variance head's time embedding")
    p.add_argument(
        "--augment",
        default="none",
        choices=("none", "voice"),
        help="perturbation of each crop: none, or voice (speed/pitch 0.88-1.12, tilt, one EQ band); default none",
    )
    p.add_argument(
        "--init", default=None, help="prior whose weights start a new run (same architecture); default random"
    )
    p.add_argument("--valid-items", type=_COUNT, default=64, help="fixed validation crops")
    p.add_argument("--device", default="cpu", help="where the steps run, e.g. cuda")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16"),
        help="fp32, or bf16 autocast (on a GPU, or a CPU with AVX512-BF16/AMX); default fp32",
    )
    p.add_argument("--compile", action="store_true", help="run the training network through torch.compile")
    p.add_argument(
        "--workers", type=_NATURAL, default=0, help="processes preparing batches ahead (0: in the training loop)"
    )
    p.add_argument(
        "--snapshot",
        default=None,
        help="a .safetensors file rewritten with the EMA weights every --snapshot-minutes and at the end; default none",
    )
    p.add_argument("--snapshot-minutes", type=_POSITIVE, default=1.0, help="minutes between snapshots")
    p.add_argument(
        "--snapshot-dtype", default="float32", choices=("float32", "float16"), help="dtype of the snapshot's weights"
    )
    p.add_argument(
        "--export", default=None, help="after training, write the EMA weights as a prior folder here; default none"
    )
    _add_quiet(p, "--no-progress")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .method import spectral
    from .method.prior import PriorConfig
    from .training.train import TrainConfig, export, train

    hops = max(round(args.segment_seconds * spectral.SAMPLE_RATE / spectral.HOP), 1)
    prior_cfg = PriorConfig(
        model_channels=args.model_channels,
        channel_mult=args.channel_mult,
        num_blocks=args.num_blocks,
        attn_resolutions=args.attn_resolutions,
        channels_per_head=args.channels_per_head,
        logvar_channels=args.logvar_channels,
    )
    # Crops give 1 + hops frames; round to the network's frame multiple to avoid padding.
    frames = -(-(hops + 1) // prior_cfg.frame_multiple) * prior_cfg.frame_multiple
    cfg = TrainConfig(
        train_dirs=args.data,
        out_dir=args.out,
        valid_dirs=args.valid,
        batch_size=args.batch_size,
        segment_samples=(frames - 1) * spectral.HOP,
        max_steps=args.steps,
        max_minutes=args.max_minutes,
        max_cpu_minutes=args.max_cpu_minutes,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        decay_steps=args.decay_steps,
        ema=args.ema,
        checkpoint_every=args.checkpoint_every,
        valid_every=args.valid_every,
        seed=args.seed,
        threads=args.threads,
        progress=_progress(args),
        augment=args.augment,
        init=args.init,
        valid_items=args.valid_items,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        workers=args.workers,
        snapshot=args.snapshot,
        snapshot_minutes=args.snapshot_minutes,
        snapshot_dtype=args.snapshot_dtype,
    )
    _check_places(
        [(args.out, "the run folder (-o)"), (args.export, "the --export folder")], [(args.snapshot, "--snapshot")]
    )
    summary = train(cfg, prior_cfg)
    if args.export:
        import os

        if int(os.environ.get("RANK", "0")) == 0:
            export(args.out, args.export)
    print(summary)
    return 0


def _add_refine(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("refine", help="refine audio files or folders (recursively) with a predictor and the prior")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders")
    p.add_argument("-o", "--out", required=True, help="output folder (files named like the inputs); required")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--predictor",
        default=None,
        help="adapter name (`sips predictors` lists the installed ones); default the best installed enhancer "
        "(deepfilternet with `make demo`, else wiener; `sips predictors` marks it)",
    )
    src.add_argument(
        "--estimates",
        default=None,
        help="folder of precomputed estimates named like the inputs, instead of a predictor; default none",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="predictor checkpoint (file or Hub id), if the adapter takes one; default the adapter's own weights",
    )
    p.add_argument(
        "--predictor-config",
        default=None,
        help="predictor hyper-parameters (YAML/JSON) if not in the checkpoint; default none",
    )
    p.add_argument(
        "--n-src",
        type=_COUNT,
        default=None,
        help="number of sources, for adapters where it is chosen at run time; default the adapter's",
    )
    p.add_argument(
        "--prior",
        default=None,
        help="prior folder, catalog name (`sips priors` lists them) or Hub repo id[@revision]; default the embedded prior",
    )
    from .defaults import RESCALE_MODES
    from .defaults import SAMPLER as DEFAULTS

    p.add_argument(
        "--steps", type=_COUNT, default=DEFAULTS["steps"], help=f"sampler steps N; default {DEFAULTS['steps']}"
    )
    p.add_argument(
        "--kappa",
        type=_NON_NEGATIVE,
        default=DEFAULTS["kappa"],
        help=f"stochasticity of the sampler (0: deterministic ODE); default {DEFAULTS['kappa']}",
    )
    p.add_argument(
        "--method",
        default=DEFAULTS["method"],
        choices=("auto", "euler", "heun"),
        help="auto (heun for kappa 0, euler for kappa > 0), euler (Euler-Maruyama, the published sampler) "
        f"or heun (2nd-order ODE, kappa 0 only); default {DEFAULTS['method']}",
    )
    p.add_argument(
        "--strength",
        type=_NON_NEGATIVE,
        default=DEFAULTS["strength"],
        help="how strongly the prior corrects the predictor (scales its term in the sampler; 0 writes the "
        f"predictor's estimate); default {DEFAULTS['strength']}",
    )
    p.add_argument(
        "--rescale",
        default=DEFAULTS["rescale"],
        choices=RESCALE_MODES,
        help="bring the estimates to the mixture's scale and sign before refining: gain (least-squares gains "
        "per source), none, or auto (gain for separators; see docs/python.md); default auto",
    )
    p.add_argument("--seed", type=_NATURAL, default=0, help="seed of the injected noise (kappa > 0); default 0")
    p.add_argument("--device", default=None, help=_DEVICE_HELP)
    p.add_argument("--channels", default="each", choices=("each", "mix"), help="refine each channel, or a mono mix")
    p.add_argument("--allow-clipping", action="store_true", help="refine clipped inputs instead of refusing them")
    p.add_argument(
        "--chunk-seconds", type=_NON_NEGATIVE, default=10.0, help="window length for long inputs (0: never chunk)"
    )
    p.add_argument(
        "--overlap-seconds", type=_NON_NEGATIVE, default=1.0, help="cross-faded overlap of neighbouring windows"
    )
    p.add_argument("--chunk-batch", type=_COUNT, default=1, help="windows processed together")
    p.add_argument(
        "--dtype", default="float32", choices=("float32", "bfloat16", "float16"), help="the prior network's precision"
    )
    p.add_argument("--compile", action="store_true", help="run the prior network through torch.compile")
    p.add_argument(
        "--ensemble",
        type=_COUNT,
        default=DEFAULTS["ensemble"],
        help=f"stochastic trajectories per source (needs --kappa > 0); default {DEFAULTS['ensemble']}",
    )
    p.add_argument("--ensemble-reduce", default="mean", choices=("mean", "median"), help="how members are combined")
    p.add_argument(
        "--postprocess",
        action="store_true",
        help="run the (enhancement) predictor once more on the refined signal and write its output",
    )
    p.add_argument(
        "--layout",
        default="suffix",
        choices=("suffix", "published"),
        help="separated sources as NAME_s1.wav, ... (suffix, default) or s1/NAME.wav, ... (published)",
    )
    p.add_argument(
        "--write-estimates",
        default=None,
        metavar="DIR",
        help="also write the predictor's own output into DIR, named like the refined outputs, for comparing "
        "(sips eval REF DIR, sips report ... DIR OUTDIR); default none",
    )
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose outputs already exist")
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar (shown only when stderr is a terminal) and no summary line at the end",
    )
    p.set_defaults(func=_run_refine)


def _find_audio(inputs: Sequence[str], exclude: Sequence[Path] = ()) -> list[tuple[Path, Path]]:
    """(root, audio file) for every file named or found in a folder (not under the folders
    ``exclude``, the output folders); says once what was skipped."""
    from .errors import AudioError
    from .io.audio import display, scan, skipped_note

    found, skipped = [], []
    for item in inputs:
        root = Path(item)
        files, passed = scan(root, exclude)
        if not files:
            note = skipped_note(passed)
            raise AudioError(f"No audio files found in {display(root)}" + (f" ({note})." if note else "."))
        found += [(root, f) for f in files]
        skipped += passed
    note = skipped_note(skipped)
    if note:
        _say(f"sips: {note}", file=sys.stderr)
    return found


def _collect_inputs(inputs: Sequence[str], out_dir: Path, est_dir: Path | None = None) -> list[tuple[Path, Path]]:
    """(input file, path relative to the output folder) for every audio file named or found (never
    one in the output folder or the --write-estimates folder)."""
    from .io.audio import display

    outputs = [(out_dir, "The output folder", "-o")] + (
        [(est_dir, "The estimates' folder", "--write-estimates")] if est_dir else []
    )
    for folder, what, option in outputs:
        for item in inputs:
            if Path(item).is_dir() and Path(item).resolve() == folder.resolve():
                raise OutputError(f"{what} {display(folder)} is also an input; choose another {option}.")
    pairs: dict[Path, Path] = {}
    for root, f in _find_audio(inputs, [folder for folder, _, _ in outputs]):
        rel = Path(f.name) if root.is_file() else f.relative_to(root)
        if rel in pairs and pairs[rel] != f:
            raise SipsError(
                f"Two inputs would write the same output {display(rel)} ({display(pairs[rel])} and {display(f)})."
            )
        pairs[rel] = f
    return [(f, rel) for rel, f in pairs.items()]


def _estimate_files(est_dir: Path, rel: Path, layout: str = "suffix") -> list[Path]:
    from .io.files import source_path

    single = est_dir / rel
    if single.is_file():
        return [single]
    found, k = [], 1
    while (path := source_path(single, k, layout)).is_file():
        found.append(path)
        k += 1
    if not found:
        raise SipsError(f"No estimate for {rel} in {est_dir} (expected {rel} or {source_path(rel, 1, layout)}, ...).")
    return found


def _shard(items: list, device: str | None) -> tuple[list, str | None, int]:
    """This process's share of ``items`` under ``torchrun`` (``RANK`` / ``WORLD_SIZE``), its device
    (``cuda`` becomes ``cuda:LOCAL_RANK``) and its rank."""
    import os

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return items[rank::world], device, rank


def _safe_outputs(out_dir: Path, rel: Path, n_src: int, inputs: set[Path], layout: str = "suffix") -> list[Path]:
    """The output paths of ``rel``, refused if one would leave ``out_dir`` or overwrite an input."""
    from .io.files import output_paths

    root = out_dir.resolve()
    paths = output_paths(out_dir / rel, n_src, layout)
    for path in paths:
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            raise OutputError(f"The output {path} would be written outside {out_dir} (through a link or '..').")
        if resolved in inputs:
            raise OutputError(f"Refusing to overwrite the input {resolved}; choose another -o.")
    return paths


def _output_folder(out: str) -> Path:
    """``-o`` of ``refine``: always a folder, so a new one named like an audio file is refused."""
    from .io.audio import display, extensions

    out_dir = Path(out)
    if not out_dir.is_dir() and out_dir.suffix.lower().lstrip(".") in extensions():
        raise OptionError(
            f"-o names the output folder (outputs keep the inputs' names), but {display(out_dir)} has an audio "
            f"file extension; give a folder, e.g. -o {display(out_dir.with_suffix(''))}."
        )
    return out_dir


def _check_places(folders: Sequence[tuple[str | None, str]] = (), files: Sequence[tuple[str | None, str]] = ()):
    """Create and check output ``folders`` and the folders of output ``files`` (each ``(path or
    None, what it is)``), once and before any model loads (:func:`sips._atomic.check_folder`)."""
    from ._atomic import check_file_target, check_folder

    for path, what in folders:
        if path is not None:
            check_folder(path, what)
    for path, option in files:
        if path is not None:
            check_file_target(path, option)


def _run_refine(args: argparse.Namespace) -> int:
    import os
    import time

    import torch
    from tqdm.auto import tqdm

    from ._atomic import claim, remove_stale
    from .io.audio import info
    from .io.files import refine_estimate_files, refine_file
    from .method import spectral
    from .method.prior import load_prior
    from .method.refine import RefineOptions, check_options
    from .prediction.predictors import default_predictor_name, load_predictor

    settings = dict(
        steps=args.steps,
        kappa=args.kappa,
        method=args.method,
        strength=args.strength,
        rescale=args.rescale,
        seed=args.seed,
        device=args.device,
        channels=args.channels,
        allow_clipping=args.allow_clipping,
        chunk_seconds=args.chunk_seconds or None,
        overlap_seconds=args.overlap_seconds,
        chunk_batch=args.chunk_batch,
        dtype=None if args.dtype == "float32" else getattr(torch, args.dtype),
        compile=args.compile,
        ensemble=args.ensemble,
        ensemble_reduce=args.ensemble_reduce,
        postprocess=args.postprocess,
        layout=args.layout,
    )
    # every option is checked before any file is read or any model is loaded
    if args.ensemble > 1 and args.kappa == 0:
        raise OptionError("--ensemble needs --kappa > 0: with kappa 0 every member is the same trajectory.")
    if args.estimates and (args.checkpoint, args.predictor_config, args.n_src) != (None, None, None):
        raise OptionError("--checkpoint, --predictor-config and --n-src apply to --predictor, not to --estimates.")
    if args.postprocess and args.estimates:
        raise OptionError(
            "--postprocess runs the predictor on the refined signal; use it with --predictor, not --estimates."
        )
    if args.write_estimates and args.estimates:
        raise OptionError(
            "--write-estimates writes the predictor's output, and with --estimates there is no predictor: the "
            "estimates are already in " + args.estimates + "."
        )
    checked = {k: v for k, v in settings.items() if k not in ("channels", "allow_clipping", "layout")}
    check_options(RefineOptions(**{**checked, "device": args.device or "cpu"}), spectral.SAMPLE_RATE)
    started = time.perf_counter()
    out_dir = _output_folder(args.out)
    est_dir = _estimates_folder(args.write_estimates, out_dir)
    pairs = _collect_inputs(args.inputs, out_dir, est_dir)
    inputs = {f.resolve() for f, _ in pairs}
    for _, rel in pairs:
        _safe_outputs(out_dir, rel, 1, inputs)
        if est_dir is not None:
            _safe_outputs(est_dir, rel, 1, inputs)
    import tempfile

    _check_places(
        [
            (out_dir, "the output folder (-o)"),
            (est_dir, "the estimates' folder (--write-estimates)"),
            (tempfile.gettempdir(), "the temporary folder (TMPDIR)"),
        ]
    )
    pairs, device, rank = _shard(sorted(pairs, key=lambda p: str(p[1])), args.device)
    settings.update(device=device, progress=_progress(args) and rank == 0)
    prior = load_prior(args.prior, device=device)
    options = {"checkpoint": args.checkpoint, "config": args.predictor_config, "n_src": args.n_src, "device": device}
    options = {k: v for k, v in options.items() if v is not None}
    predictor = None if args.estimates else load_predictor(args.predictor or default_predictor_name(), **options)
    if args.postprocess:
        from .method.refine import check_postprocess

        check_postprocess(predictor)
    loaded = time.perf_counter()
    failed: list[str] = []
    skipped = busy = 0
    seconds = 0.0  # of audio refined
    bar = tqdm(pairs, desc="files", unit="file", disable=len(pairs) < 2 or not settings["progress"])
    for f, rel in bar:
        held = None
        try:
            estimates = _estimate_files(Path(args.estimates), rel, args.layout) if predictor is None else []
            n_src = predictor.n_src if predictor is not None else len(estimates)
            expected = _safe_outputs(out_dir, rel, n_src, inputs, args.layout)
            if est_dir is not None:
                expected += _safe_outputs(est_dir, rel, n_src, inputs, args.layout)
            held = claim(expected[0])
            if held is None:  # another run on this -o refines this input now
                busy += 1
                continue
            remove_stale(expected)  # temporaries of a run that was killed while writing these
            if not args.overwrite and all(p.is_file() for p in expected):
                skipped += 1
                continue
            if predictor is None:
                written = refine_estimate_files(estimates, f, out_dir / rel, prior=prior, **settings)
            else:
                estimate_path = est_dir / rel if est_dir is not None else None
                written = refine_file(predictor, f, out_dir / rel, prior=prior, estimate_path=estimate_path, **settings)
            head = info(f)
            seconds += head.frames / head.samplerate
        except Exception as err:  # noqa: BLE001 - one file never stops a corpus run
            _say(f"sips: error: {_file_error(f, err)}", file=sys.stderr)
            failed.append(str(f))
            continue
        finally:
            if held is not None:
                held.release()
        for path in written:
            _say(str(path))
    if skipped:
        print(f"skipped {skipped} input(s) whose outputs exist (--overwrite redoes them)", file=sys.stderr)
    if busy:
        _say(f"skipped {busy} input(s) that another sips run on {out_dir} is refining now", file=sys.stderr)
    done = len(pairs) - len(failed) - skipped - busy
    if done and not args.quiet:  # a run that refined nothing said why in its own lines (errors, skips)
        what = f"estimates from {args.estimates}" if predictor is None else f"predictor {_predictor_name(args)}"
        timing = (time.perf_counter() - started, loaded - started, time.perf_counter() - loaded)
        line = _summary(done, len(failed), seconds, what, args, timing)
        world = int(os.environ.get("WORLD_SIZE", "1"))  # under torchrun each process says what it did
        _say(line if world == 1 else line.replace("sips: ", f"sips: rank {rank} of {world}: ", 1), file=sys.stderr)
    if failed:
        if len(pairs) > 1:
            print(
                f"sips: {len(failed)} of {len(pairs)} inputs failed (see above); the others were written.",
                file=sys.stderr,
            )
        return 2
    return 0


def _predictor_name(args: argparse.Namespace) -> str:
    from .prediction.predictors import default_predictor_name

    return args.predictor or default_predictor_name()


def _summary(done: int, failed: int, seconds: float, what: str, args: argparse.Namespace, timing) -> str:
    """The one line ``sips refine`` ends with: what ran on how much audio, in how long."""
    from .method.sampler import resolve_method

    wall, loading, work = timing
    files = f"refined {done} file{'s' if done != 1 else ''} ({seconds:.2f} s of audio{f'; {failed} failed' if failed else ''})"
    sampler = f"{resolve_method(args.method, args.kappa)} {args.steps} step{'s' if args.steps != 1 else ''}"
    sampler += f", kappa {args.kappa:g}" + (f", strength {args.strength:g}" if args.strength != 1 else "")
    if args.ensemble > 1:
        sampler += f", ensemble {args.ensemble}"
    if args.postprocess:
        sampler += ", postprocess"
    prior = f"prior {args.prior}" if args.prior else "the embedded prior"
    return (
        f"sips: {files} with {what} and {prior} ({sampler}): {wall:.2f} s wall time, {loading:.2f} s of it "
        f"loading the models; RTF {work / seconds:.2f} after loading."
    )


def _estimates_folder(option: str | None, out_dir: Path) -> Path | None:
    """The ``--write-estimates`` folder: not the output folder itself, never named like a file."""
    from .io.audio import display, extensions

    if option is None:
        return None
    folder = Path(option)
    if folder.resolve() == out_dir.resolve():
        raise OptionError(
            f"--write-estimates needs its own folder: in {display(out_dir)} (-o) the estimates would take the refined "
            "outputs' names."
        )
    if not folder.is_dir() and folder.suffix.lower().lstrip(".") in extensions():
        raise OptionError(
            f"--write-estimates names a folder (the estimates keep the inputs' names), but {display(folder)} has an "
            f"audio file extension; give a folder, e.g. --write-estimates {display(folder.with_suffix(''))}."
        )
    return folder


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert the published SIPS.pt + SIPS_config.json into a prior folder")
    p.add_argument("checkpoint", help="SIPS.pt ({'ema': state_dict} or a state dict)")
    p.add_argument("config", help="SIPS_config.json (its model_kwargs)")
    p.add_argument("-o", "--out", required=True, help="prior folder to write")
    p.set_defaults(func=lambda a: _run_convert(a))


def _run_convert(args: argparse.Namespace) -> int:
    from .method.prior import convert_official

    _check_places([(args.out, "the output folder (-o)")])
    _say(str(convert_official(args.checkpoint, args.config, args.out)))
    return 0


def _add_quality(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quality",
        help="reference-free quality score of audio files from the prior (higher is cleaner)",
        description="Print one score per file: how close the audio is to clean speech as the prior sees it, without a "
        "reference. The score is minus the prior's own training loss on the audio (its uncertainty-weighted error at "
        "denoising the audio after adding noise of known levels), averaged over 8 noise levels and over the file's "
        "8 ms frames, so files of any length compare. Higher is closer to clean speech. It is a log-likelihood-like "
        "number without units and without fixed ends, not a MOS: with the embedded prior clean speech scores about "
        "+0.66, speech with noise at 15 dB SNR about +0.44, at 5 dB about +0.24, at -5 dB about +0.04 (means over 20 "
        "unseen-voice utterances), and enhancer outputs with artefacts can score below their noisy input. Compare "
        "scores of one prior only (another prior has another scale), and note that digital silence scores high: the "
        "score rates how speech-like the content is, not how much speech there is. Deterministic for a --seed.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders (searched recursively)")
    p.add_argument("--csv", default=None, help="write one row per file here; default none")
    p.add_argument(
        "--prior",
        default=None,
        help="prior folder, catalog name (`sips priors` lists them) or Hub repo id; default the embedded prior",
    )
    p.add_argument("--seed", type=_NATURAL, default=0, help="seed of the fixed probes")
    p.add_argument("--device", default=None, help=_DEVICE_HELP)
    _add_quiet(p)
    p.set_defaults(func=_run_quality)


def _run_quality(args: argparse.Namespace) -> int:
    import csv

    from tqdm.auto import tqdm

    from ._atomic import atomic_path
    from .checks import check_device
    from .evaluation.quality import quality
    from .io.audio import display, load_mono
    from .method.prior import load_prior

    check_device(args.device)
    _check_places(files=[(args.csv, "--csv")])
    progress = _progress(args)
    prior = load_prior(args.prior, device=args.device)
    rate = prior.config.sample_rate
    files = [(f, display(f)) for _, f in _find_audio(args.inputs)]  # named as given: a/x.wav and b/x.wav differ
    rows, failed = [], 0
    for path, name in tqdm(files, desc="files", unit="file", disable=not progress or len(files) < 2):
        try:
            wav = load_mono(path, rate)
            result = quality(wav, prior=prior, sample_rate=rate, seed=args.seed, device=args.device, progress=progress)
        except Exception as err:  # noqa: BLE001 - one file never stops a corpus run
            _say(f"sips: error: {_file_error(path, err)}", file=sys.stderr)
            failed += 1
            continue
        rows.append((name, result.score, len(wav) / rate))
    width = max([len(r[0]) for r in rows] + [4])
    print(f"{'file':<{width}} {'score':>8} {'seconds':>8}")
    for name, score, seconds in rows:
        print(f"{name:<{width}} {score:>8.4f} {seconds:>8.2f}")
    if failed and len(files) > 1:
        print(f"sips: {failed} of {len(files)} files failed (see above); the others are scored.", file=sys.stderr)
    if args.csv:
        with atomic_path(Path(args.csv)) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "score", "seconds"])
            writer.writerows((n, f"{s:.6f}", f"{t:.3f}") for n, s, t in rows)
    return 2 if failed else 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score estimates against clean references (folders matched by relative path, or two files)",
        description="Score every estimate in EST_DIR against the reference with the same relative path in REF_DIR "
        "(without the extension: a/x.wav goes with a/x.flac, not with b/x.wav), or one estimate file against one "
        "reference file, and print the mean and 95 % confidence interval of each metric. Separated sources "
        "x_s1.wav, x_s2.wav, ... are matched to references by the permutation with the best SI-SDR; files are "
        "resampled to 16 kHz. A reference that is the estimate's own noisy input (sips tags what it writes with "
        "the input it came from) or a copy of the estimate is refused before any scoring.",
    )
    p.add_argument(
        "references",
        metavar="REF_DIR",
        help="folder of clean references (searched recursively), or one clean reference file",
    )
    p.add_argument(
        "estimates",
        metavar="EST_DIR",
        help="folder of estimates named like the references (x.wav or x_s1.wav, ...), or one estimate file",
    )
    p.add_argument("--csv", default=None, help="write one row per item here; default none")
    p.add_argument(
        "--metrics",
        nargs="+",
        choices=("si_sdr", "pesq", "estoi", "dnsmos", "nisqa"),
        default=["si_sdr", "pesq", "estoi", "dnsmos"],
        help="metrics to compute (nisqa needs local weights, see docs/cli.md)",
    )
    _add_quiet(p)
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import evaluate_folders, format_summary

    _check_places(files=[(args.csv, "--csv")])
    items, summary, problems = evaluate_folders(
        args.references, args.estimates, args.metrics, args.csv, progress=_progress(args)
    )
    print(format_summary(summary, sum(1 for i in items if i.scores)))
    for problem in problems:
        _say(f"note: {problem}", file=sys.stderr)
    failed = [i for i in items if i.error is not None]
    for item in failed:
        _say(f"sips: error: {item.name}: {item.error}", file=sys.stderr)
    if args.csv:
        _say(f"wrote {args.csv}", file=sys.stderr)
    if failed and len(items) > 1:
        print(f"sips: {len(failed)} of {len(items)} items could not be scored (see above).", file=sys.stderr)
    return 2 if failed else 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="a listening page comparing folders of outputs, with a blind test; or summarise its ratings",
        description="Write OUT/index.html (audio and spectrograms beside it): per file a player, a spectrogram and "
        "the scores of each system, a summary table, and a blind MUSHRA-style listening test whose ratings the "
        "listener downloads. With --ratings, summarise listeners' ratings files instead.",
    )
    p.add_argument(
        "dirs",
        nargs="*",
        metavar="DIR",
        help="one folder per system, files with the same relative names; or one file per system (one clip)",
    )
    p.add_argument(
        "-o",
        "--out",
        default=None,
        help="the report folder: new, empty, or an earlier report (replaced); no default, required with DIR",
    )
    p.add_argument(
        "--reference",
        default=None,
        help="folder of clean references named like the outputs (a file, with files); default none (no SI-SDR, "
        "PESQ, ESTOI)",
    )
    p.add_argument("--names", nargs="+", default=None, help="a name per folder; default the folder names")
    p.add_argument("--limit", type=_COUNT, default=None, help="show this many files, drawn with --seed; default all")
    p.add_argument("--seed", type=_NATURAL, default=0, help="seed of --limit, the blind order and the prior's probes")
    from .evaluation.report import AUDIO_FORMATS, METRIC_GROUPS

    p.add_argument(
        "--metrics",
        nargs="+",
        choices=(*METRIC_GROUPS, "none"),
        default=None,
        metavar="GROUP",
        help="scores per file: si_sdr pesq estoi (need --reference), dnsmos, quality (the prior's), or none; "
        "default all that can run",
    )
    p.add_argument("--audio", default="opus", choices=tuple(AUDIO_FORMATS), help="the page's audio format")
    p.add_argument("--prior", default=None, help="prior of the quality score; default the embedded prior")
    p.add_argument("--device", default=None, help=_DEVICE_HELP)
    p.add_argument(
        "--ratings",
        nargs="+",
        metavar="FILE",
        default=None,
        help="summarise these ratings files (JSON or CSV, as the page saves them); default none",
    )
    p.add_argument("--csv", default=None, help="with --ratings: write the summary here; default none")
    _add_quiet(p)
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from .evaluation import report

    if args.ratings is not None:
        if args.dirs or args.out:
            raise OptionError("--ratings summarises ratings files; give it without folders and -o.")
        ratings = report.read_ratings(args.ratings)
        rows, pairs, notes = report.summarise_ratings(ratings)
        print(report.format_ratings(rows, pairs, len({r.file for r in ratings})))
        for note in notes:
            _say(f"note: {note}", file=sys.stderr)
        if args.csv:
            report.write_ratings_csv(args.csv, rows)
            _say(f"wrote {args.csv}", file=sys.stderr)
        return 0
    if not args.dirs or not args.out:
        raise OptionError("sips report needs folders of outputs and -o OUT (or --ratings FILE...).")
    if args.csv:
        raise OptionError("--csv goes with --ratings; the report's scores are in OUT/report.json.")
    if args.metrics and "none" in args.metrics and len(args.metrics) > 1:
        raise OptionError("--metrics none goes alone.")
    metrics = [] if args.metrics == ["none"] else args.metrics
    from .checks import check_device

    check_device(args.device)
    result = report.build_report(
        args.dirs,
        args.out,
        reference=args.reference,
        names=args.names,
        limit=args.limit,
        seed=args.seed,
        metrics=metrics,
        audio=args.audio,
        prior=args.prior,
        device=args.device,
        progress=_progress(args),
    )
    for note in result.notes:
        _say(f"note: {note}", file=sys.stderr)
    _say(str(result.page))
    print(f"{result.files} file(s), {result.bytes / 1e6:.2f} MB", file=sys.stderr)
    return 0


def _add_hub_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", default=None, help="Hub cache folder (default: HF_HUB_CACHE or HF_HOME/hub)")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")


def _add_priors(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("priors", help="list the named priors of the catalog and whether each is cached")
    p.add_argument("--cache-dir", default=None, help="Hub cache folder (default: HF_HUB_CACHE or HF_HOME/hub)")
    p.set_defaults(func=_run_priors)


def _run_priors(args: argparse.Namespace) -> int:
    from .pretrained.hub import available_priors

    rows = [("name", "repo@revision", "rate", "params", "MB", "licence", "cached", "description")]
    for e in available_priors(args.cache_dir):
        rows.append(
            (
                e.name,
                f"{e.repo_id}@{e.revision}",
                str(e.sample_rate),
                f"{e.parameters / 1e6:.1f}M",
                f"{e.size_bytes / 1e6:.1f}",
                e.license,
                "yes" if e.cached else "no",
                e.description,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0


def _add_predictors(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predictors",
        help="list the predictor adapters (names for refine --predictor): task, rate, weights",
        description="One row per adapter: its task (enhance or separate), native sample rate, whether its weights "
        "are shipped or --checkpoint FILE is needed, and the distribution that installs it. Built-in adapters that "
        "are not installed are listed too, with the pip command (nothing is imported to list them).",
    )
    p.set_defaults(func=_run_predictors)


_WEIGHTS = {"none": "none needed", "shipped": "shipped", "checkpoint": "--checkpoint FILE"}


def _run_predictors(args: argparse.Namespace) -> int:
    from .prediction.predictors import BUILTIN_INFO, adapter_distributions, default_predictor_name

    found = adapter_distributions()
    default = default_predictor_name()
    rows = [("name", "task", "rate", "weights", "distribution", "notes")]
    for name in sorted(set(found) | set(BUILTIN_INFO)):
        info = BUILTIN_INFO.get(name)
        if info is None:  # a user's adapter: what it is is known only once it is built
            task = rate = weights = "?"
            note = ""
        else:
            task, weights, note = info.task, _WEIGHTS[info.weights], info.note
            rate = f"{info.sample_rate / 1000:g} kHz" if info.sample_rate else "the model's"
        if name in found:
            where = found[name] or "registered in code"
            note += "  (default of sips refine)" if name == default else ""
        else:
            where = f"not installed: pip install {info.distribution}"
        rows.append((name, task, rate, weights, where, note.strip()))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    missing = sorted({i.distribution for n, i in BUILTIN_INFO.items() if n not in found})
    if missing:
        print(f"built-in adapters not installed: pip install {' '.join(missing)}", file=sys.stderr)
    return 0


def _add_download(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="fetch a prior into the Hub cache for offline use; prints its folder")
    p.add_argument("prior", metavar="NAME_OR_REPO", help="catalog name or Hub repo id (org/name[@revision])")
    p.add_argument(
        "--revision",
        default=None,
        help="branch, tag or commit hash of a repo id; default main (a catalog name is pinned)",
    )
    p.add_argument("--force-download", action="store_true", help="fetch again even if cached")
    _add_hub_options(p)
    p.set_defaults(func=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from .method.prior import fetch_and_load

    folder, prior = fetch_and_load(  # proves the cached files load (strictly); damaged ones are fetched again
        args.prior,
        revision=args.revision,
        cache_dir=args.cache_dir,
        token=args.token,
        force_download=args.force_download,
    )
    print(folder)
    print(f"{prior.num_parameters:,} parameters, {prior.config.sample_rate} Hz", file=sys.stderr)
    return 0


def _add_push(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="upload a prior folder to the Hub with a model card made from its config")
    p.add_argument("folder", metavar="DIR", help="prior folder (config.json, model.safetensors)")
    p.add_argument("repo", metavar="REPO", help="Hub repo id, org/name (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", default=None, help="branch to commit to (default main)")
    p.add_argument("--message", default="Upload sips prior", help="commit message")
    p.add_argument("--license", default=None, help="licence of the weights (default: the folder's card, else other)")
    p.add_argument(
        "--dataset", action="append", default=None, help="training dataset (repeatable); default: the folder's card"
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be uploaded, send nothing")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    p.set_defaults(func=_run_push)


def _run_push(args: argparse.Namespace) -> int:
    from .method.prior import push_prior

    result = push_prior(
        args.folder,
        args.repo,
        license=args.license,
        datasets=args.dataset,
        token=args.token,
        private=args.private or None,
        revision=args.revision,
        commit_message=args.message,
        dry_run=args.dry_run,
    )
    if args.dry_run:
        for op in result:
            print(f"would upload {op.path_in_repo} ({op.upload_info.size:,} bytes)")
    else:
        print(result.commit_url)
    return 0


@contextlib.contextmanager
def _warnings_as_lines():
    """Show every :class:`~sips.errors.SipsWarning` (each time) as one ``sips: warning:`` line."""
    from .errors import SipsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", SipsWarning)
        shown = warnings.showwarning

        def show(message, category, *args, **kwargs):
            if issubclass(category, SipsWarning):
                _say(f"sips: warning: {message}", file=sys.stderr)
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = _Parser(prog="sips", description="Refine speech with a clean-speech generative prior.")
    parser.add_argument("--version", action="version", version=f"sips {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_refine(sub)
    _add_eval(sub)
    _add_quality(sub)
    _add_report(sub)
    _add_predictors(sub)
    _add_priors(sub)
    _add_download(sub)
    _add_push(sub)
    _add_convert(sub)
    _add_train(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version (0) or a bad option (2, one line already printed)
        return stop.code
    from .errors import command_line_spelling

    try:
        with _warnings_as_lines(), command_line_spelling():  # messages name --options, not Python arguments
            return args.func(args)
    except SipsError as err:
        _say(f"sips: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sips: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - a bug still ends in one line; SIPS_DEBUG=1 shows the traceback
        import os

        if os.environ.get("SIPS_DEBUG"):
            raise
        text = " ".join(f"{type(err).__name__}: {err}".split())
        _say(f"sips: internal error: {text} (rerun with SIPS_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
