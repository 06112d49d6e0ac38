"""The ``sips`` command: ``refine``, ``eval``, ``quality``, ``priors``, ``download``, ``push``, ``convert``, ``train``.

Errors a user can cause print one sentence to stderr and exit with status 2. In a corpus run
(``refine``, ``eval``, ``quality``) a file that fails for any reason is one line; the run goes on
and ends with a count of the failures (status 2). Printed paths show bytes that are not UTF-8 as
``\\xNN``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import OptionError, OutputError, SipsError


def _say(text: str, file=None) -> None:
    """Print one line (to stdout, or ``file``) through tqdm, file names made printable."""
    from tqdm.auto import tqdm

    from .audio import display

    tqdm.write(display(text), file=file)


def _file_error(path: Path, err: Exception) -> str:
    """One line for a file that failed: a user error's sentence, or the type and text of anything else."""
    from .audio import display

    if isinstance(err, SipsError):
        text = str(err)
    else:
        text = f"unexpected {type(err).__name__}: {err}"
    text = " ".join(text.split())
    return text if display(path) in display(text) else f"{display(path)}: {text}"


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a prior on clean speech (resumes from OUT/checkpoint.pt)")
    p.add_argument("data", nargs="+", help="folders or files of clean speech (any rate, resampled to 16 kHz)")
    p.add_argument("-o", "--out", required=True, help="run folder (checkpoint.pt, summary.json)")
    p.add_argument("--valid", nargs="*", default=(), help="held-out clean speech for the validation loss")
    p.add_argument("--steps", type=int, default=10_000, help="total optimiser steps")
    p.add_argument("--max-minutes", type=float, default=None, help="stop (resumably) after this much wall time")
    p.add_argument("--batch-size", type=int, default=8, help="segments per step and per process")
    p.add_argument("--segment-seconds", type=float, default=1.0, help="length of a training crop")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--decay-steps", type=int, default=2000, help="lr decays as 1/sqrt(step/N) after N steps")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported weights")
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--valid-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--model-channels", type=int, default=16)
    p.add_argument("--channel-mult", type=_ints, default=(1, 1, 2, 4, 8))
    p.add_argument("--num-blocks", type=int, default=1)
    p.add_argument("--attn-resolutions", type=_ints, default=(), help="e.g. 16 (the lowest level always has one)")
    p.add_argument("--channels-per-head", type=int, default=64)
    p.add_argument("--logvar-channels", type=int, default=32)
    p.add_argument(
        "--augment",
        default="none",
        choices=("none", "voice"),
        help="perturbation of each crop: none, or voice (speed/pitch 0.88-1.12, tilt, one EQ band); default none",
    )
    p.add_argument("--init", default=None, help="prior whose weights start a new run (same architecture)")
    p.add_argument("--export", default=None, help="after training, write the EMA weights as a prior folder here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from . import spectral
    from .prior import PriorConfig
    from .train import TrainConfig, export, train

    if args.segment_seconds <= 0 or args.steps < 1 or args.batch_size < 1:
        raise SipsError("--segment-seconds, --steps and --batch-size must be positive.")
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
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        decay_steps=args.decay_steps,
        ema=args.ema,
        checkpoint_every=args.checkpoint_every,
        valid_every=args.valid_every,
        seed=args.seed,
        threads=args.threads,
        progress=not args.no_progress,
        augment=args.augment,
        init=args.init,
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
    p.add_argument("-o", "--out", required=True, help="output folder (files named like the inputs)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--predictor", default="wiener", help="adapter name (see `sips refine --list`); default wiener")
    src.add_argument("--estimates", default=None, help="folder of precomputed estimates named like the inputs")
    p.add_argument("--checkpoint", default=None, help="predictor checkpoint (file or Hub id), if the adapter takes one")
    p.add_argument(
        "--predictor-config", default=None, help="predictor hyper-parameters (YAML/JSON) if not in the checkpoint"
    )
    p.add_argument(
        "--n-src", type=int, default=None, help="number of sources, for adapters where it is chosen at run time"
    )
    p.add_argument(
        "--prior", default=None, help="prior folder, catalog name or Hub repo id[@revision] (default: embedded)"
    )
    from .defaults import RESCALE_MODES
    from .defaults import SAMPLER as DEFAULTS

    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help=f"sampler steps N; default {DEFAULTS['steps']}")
    p.add_argument(
        "--kappa",
        type=float,
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
        "--rescale",
        default=DEFAULTS["rescale"],
        choices=RESCALE_MODES,
        help="bring the estimates to the mixture's scale and sign before refining: gain (least-squares gains "
        "per source), none, or auto (gain for separators; see the README); default auto",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the injected noise (kappa > 0); default 0")
    p.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1")
    p.add_argument("--channels", default="each", choices=("each", "mix"), help="refine each channel, or a mono mix")
    p.add_argument("--allow-clipping", action="store_true", help="refine clipped inputs instead of refusing them")
    p.add_argument("--chunk-seconds", type=float, default=10.0, help="window length for long inputs (0: never chunk)")
    p.add_argument("--overlap-seconds", type=float, default=1.0, help="cross-faded overlap of neighbouring windows")
    p.add_argument("--chunk-batch", type=int, default=1, help="windows processed together")
    p.add_argument(
        "--dtype", default="float32", choices=("float32", "bfloat16", "float16"), help="the prior network's precision"
    )
    p.add_argument("--compile", action="store_true", help="run the prior network through torch.compile")
    p.add_argument(
        "--ensemble",
        type=int,
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
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose outputs already exist")
    p.set_defaults(func=_run_refine)


def _find_audio(inputs: Sequence[str]) -> list[tuple[Path, Path]]:
    """(root, audio file) for every file named or found in a folder; says once what was skipped."""
    from .audio import display, scan, skipped_note
    from .errors import AudioError

    found, skipped = [], []
    for item in inputs:
        root = Path(item)
        files, passed = scan(root)
        if not files:
            note = skipped_note(passed)
            raise AudioError(f"No audio files found in {display(root)}" + (f" ({note})." if note else "."))
        found += [(root, f) for f in files]
        skipped += passed
    note = skipped_note(skipped)
    if note:
        _say(f"sips: {note}", file=sys.stderr)
    return found


def _collect_inputs(inputs: Sequence[str], out_dir: Path) -> list[tuple[Path, Path]]:
    """(input file, path relative to the output folder) for every audio file named or found."""
    from .audio import display

    out_resolved = out_dir.resolve()
    for item in inputs:
        if Path(item).is_dir() and Path(item).resolve() == out_resolved:
            raise OutputError(f"The output folder {display(out_dir)} is also an input; choose another -o.")
    pairs: dict[Path, Path] = {}
    for root, f in _find_audio(inputs):
        rel = Path(f.name) if root.is_file() else f.relative_to(root)
        if rel in pairs and pairs[rel] != f:
            raise SipsError(
                f"Two inputs would write the same output {display(rel)} ({display(pairs[rel])} and {display(f)})."
            )
        pairs[rel] = f
    return [(f, rel) for rel, f in pairs.items()]


def _estimate_files(est_dir: Path, rel: Path, layout: str = "suffix") -> list[Path]:
    from .files import source_path

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
    from .files import output_paths

    root = out_dir.resolve()
    paths = output_paths(out_dir / rel, n_src, layout)
    for path in paths:
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            raise OutputError(f"The output {path} would be written outside {out_dir} (through a link or '..').")
        if resolved in inputs:
            raise OutputError(f"Refusing to overwrite the input {resolved}; choose another -o.")
    return paths


def _run_refine(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from ._atomic import remove_stale
    from .files import refine_estimate_files, refine_file
    from .predictors import load_predictor
    from .prior import load_prior

    out_dir = Path(args.out)
    pairs = _collect_inputs(args.inputs, out_dir)
    inputs = {f.resolve() for f, _ in pairs}
    for _, rel in pairs:
        _safe_outputs(out_dir, rel, 1, inputs)
    pairs, device, rank = _shard(sorted(pairs, key=lambda p: str(p[1])), args.device)
    prior = load_prior(args.prior, device=device)
    options = {"checkpoint": args.checkpoint, "config": args.predictor_config, "n_src": args.n_src, "device": device}
    options = {k: v for k, v in options.items() if v is not None}
    if args.estimates and set(options) - {"device"}:
        raise SipsError("--checkpoint, --predictor-config and --n-src apply to --predictor, not to --estimates.")
    if args.postprocess and args.estimates:
        raise OptionError(
            "--postprocess runs the predictor on the refined signal; use it with --predictor, not --estimates."
        )
    predictor = None if args.estimates else load_predictor(args.predictor, **options)
    if args.postprocess:
        from .refine import check_postprocess

        check_postprocess(predictor)
    settings = dict(
        steps=args.steps,
        kappa=args.kappa,
        method=args.method,
        rescale=args.rescale,
        seed=args.seed,
        device=device,
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
    if args.ensemble > 1 and args.kappa == 0:
        raise OptionError("--ensemble needs --kappa > 0: with kappa 0 every member is the same trajectory.")
    from .refine import RefineOptions, check_options

    checked = {k: v for k, v in settings.items() if k not in ("channels", "allow_clipping", "layout")}
    check_options(RefineOptions(**{**checked, "device": device or "cpu"}), prior.config.sample_rate)
    failed: list[str] = []
    skipped = 0
    bar = tqdm(pairs, desc="refine", unit="file", disable=len(pairs) < 2 or rank != 0)
    for f, rel in bar:
        try:
            estimates = _estimate_files(Path(args.estimates), rel, args.layout) if predictor is None else []
            n_src = predictor.n_src if predictor is not None else len(estimates)
            expected = _safe_outputs(out_dir, rel, n_src, inputs, args.layout)
            remove_stale(expected)  # temporaries of a run that was killed while writing these
            if not args.overwrite and all(p.is_file() for p in expected):
                skipped += 1
                continue
            if predictor is None:
                written = refine_estimate_files(estimates, f, out_dir / rel, prior=prior, **settings)
            else:
                written = refine_file(predictor, f, out_dir / rel, prior=prior, **settings)
        except Exception as err:  # noqa: BLE001 - one file never stops a corpus run
            _say(f"sips: error: {_file_error(f, err)}", file=sys.stderr)
            failed.append(str(f))
            continue
        for path in written:
            _say(str(path))
    if skipped:
        print(f"skipped {skipped} input(s) whose outputs exist (--overwrite redoes them)", file=sys.stderr)
    if failed:
        if len(pairs) > 1:
            print(
                f"sips: {len(failed)} of {len(pairs)} inputs failed (see above); the others were written.",
                file=sys.stderr,
            )
        return 2
    return 0


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert the published SIPS.pt + SIPS_config.json into a prior folder")
    p.add_argument("checkpoint", help="SIPS.pt ({'ema': state_dict} or a state dict)")
    p.add_argument("config", help="SIPS_config.json (its model_kwargs)")
    p.add_argument("-o", "--out", required=True, help="prior folder to write")
    p.set_defaults(func=lambda a: _run_convert(a))


def _run_convert(args: argparse.Namespace) -> int:
    from .prior import convert_official

    _say(str(convert_official(args.checkpoint, args.config, args.out)))
    return 0


def _add_quality(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quality", help="reference-free quality score of audio files from the prior (higher is cleaner)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders (searched recursively)")
    p.add_argument("--csv", default=None, help="write one row per file here")
    p.add_argument("--prior", default=None, help="prior folder, catalog name or Hub repo id (default: embedded)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fixed probes")
    p.add_argument("--device", default=None, help="e.g. cpu, cuda")
    p.set_defaults(func=_run_quality)


def _run_quality(args: argparse.Namespace) -> int:
    import csv

    from ._atomic import atomic_path
    from .audio import display, load_mono
    from .prior import load_prior
    from .quality import quality

    prior = load_prior(args.prior, device=args.device)
    rate = prior.config.sample_rate
    files = [(f, display(f.name if root.is_file() else f.relative_to(root))) for root, f in _find_audio(args.inputs)]
    rows, failed = [], 0
    for path, name in files:
        try:
            wav = load_mono(path, rate)
            result = quality(wav, prior=prior, sample_rate=rate, seed=args.seed, device=args.device)
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
    p = sub.add_parser("eval", help="score estimates against references (files matched by relative path)")
    p.add_argument("references", metavar="REF_DIR")
    p.add_argument("estimates", metavar="EST_DIR")
    p.add_argument("--csv", default=None, help="write one row per file here")
    p.add_argument(
        "--metrics",
        nargs="+",
        default=["si_sdr", "pesq", "estoi", "dnsmos"],
        help="among si_sdr pesq estoi dnsmos nisqa (default: all but nisqa)",
    )
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_folders, format_summary

    items, summary, problems = evaluate_folders(
        args.references, args.estimates, args.metrics, args.csv, progress=sys.stderr.isatty()
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


def _add_hub_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", default=None, help="Hub cache folder (default: HF_HUB_CACHE or HF_HOME/hub)")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")


def _add_priors(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("priors", help="list the named priors of the catalog and whether each is cached")
    p.add_argument("--cache-dir", default=None, help="Hub cache folder (default: HF_HUB_CACHE or HF_HOME/hub)")
    p.set_defaults(func=_run_priors)


def _run_priors(args: argparse.Namespace) -> int:
    from .hub import available_priors

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


def _add_download(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="fetch a prior into the Hub cache for offline use; prints its folder")
    p.add_argument("prior", metavar="NAME_OR_REPO", help="catalog name or Hub repo id (org/name[@revision])")
    p.add_argument("--revision", default=None, help="branch, tag or commit hash of a repo id")
    p.add_argument("--force-download", action="store_true", help="fetch again even if cached")
    _add_hub_options(p)
    p.set_defaults(func=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from .prior import ScorePrior, download_prior

    folder = download_prior(
        args.prior,
        revision=args.revision,
        cache_dir=args.cache_dir,
        token=args.token,
        force_download=args.force_download,
    )
    prior = ScorePrior.from_pretrained(folder)  # proves the cached files load (strictly)
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
    p.add_argument("--dataset", action="append", default=None, help="training dataset (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print what would be uploaded, send nothing")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    p.set_defaults(func=_run_push)


def _run_push(args: argparse.Namespace) -> int:
    from .prior import push_prior

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sips", description="Refine speech with a clean-speech generative prior.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_refine(sub)
    _add_eval(sub)
    _add_quality(sub)
    _add_priors(sub)
    _add_download(sub)
    _add_push(sub)
    _add_convert(sub)
    _add_train(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
