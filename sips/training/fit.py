"""A small resumable training loop for predictors (used by the adapters' training recipes).

The prior has its own trainer (:mod:`sips.train`); predictors only need this: Adam with warm-up
and cosine decay, gradient clipping, a batch function of the step number (so that a resumed run
draws exactly the batches an uninterrupted one would, also when ``workers`` prepare them ahead),
periodic atomic checkpoints, a validation loss on fixed batches with the best weights kept, an
optional EMA of the weights (then validated and kept instead of the raw weights), a wall-clock
budget, ``device``/``precision`` (bf16 autocast) for accelerators, and a ``snapshot`` callback
that receives the weights to keep every ``snapshot_minutes`` and at the end.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .._atomic import atomic_path
from ..checks import autocast, check_device, use_tensor_cores
from ..errors import OptionError
from .batches import step_batches, to_device

CHECKPOINT = "checkpoint.pt"

Snapshot = Callable[[dict[str, torch.Tensor], dict[str, Any]], None]


def fit(
    model: torch.nn.Module,
    batch: Callable[[int], Any],
    loss: Callable[[torch.nn.Module, Any], torch.Tensor],
    out_dir: str | os.PathLike,
    *,
    steps: int,
    valid: Sequence[Any] = (),
    lr: float = 1e-3,
    warmup: int = 200,
    grad_clip: float = 5.0,
    max_minutes: float | None = None,
    checkpoint_every: int = 100,
    valid_every: int = 200,
    progress: bool = True,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    workers: int = 0,
    ema: float | None = None,
    snapshot: Snapshot | None = None,
    snapshot_minutes: float = 1.0,
    schedule: str = "steps",
) -> dict[str, Any]:
    """Train ``model`` until ``steps`` or ``max_minutes``; resumes from ``out_dir/checkpoint.pt``.

    Args:
        model: the network (moved to ``device`` and trained in place; on return it holds the
            last raw weights).
        batch: ``batch(step)`` returns the training batch of that step on the CPU (seed it with
            the step; with ``workers > 0`` it runs in forked worker processes).
        loss: ``loss(model, batch)`` returns a scalar to minimise (run under ``precision``'s
            autocast; compute the loss itself in float32).
        out_dir: run folder (``checkpoint.pt``, ``log.jsonl``).
        steps: total optimiser steps.
        valid: fixed validation batches; their mean loss is logged and the best weights kept.
        device: where the steps run.
        precision: ``"fp32"`` or ``"bf16"`` (autocast).
        workers: processes preparing batches ahead (:func:`sips.batches.step_batches`).
        ema: decay of an exponential moving average of the weights (``None``: none). With it, the
            EMA weights are validated, kept as the best and given to ``snapshot``.
        snapshot: called as ``snapshot(weights, state)`` every ``snapshot_minutes`` and at the end,
            with the best validated weights so far (the current ones before any validation).
        schedule: what the cosine decay runs over: ``"steps"`` (to ``steps``) or ``"time"`` (to
            ``max_minutes`` of this call, or ``steps`` if that comes first: a wall-clock budget
            on a machine of unknown speed still ends annealed).

    Returns:
        The state: ``step``, ``best_valid``, ``best_step``, ``best_model`` (state dict on the CPU, or
        ``None``), ``valid_history`` (list of ``(step, loss)``) and ``seconds`` (over all runs).
    """
    device = check_device(device)
    if schedule not in ("steps", "time") or (schedule == "time" and max_minutes is None):
        raise OptionError(f"schedule must be 'steps', or 'time' with max_minutes, got {schedule!r}.")
    use_tensor_cores(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.to(device)
    averaged = copy.deepcopy(model).eval().requires_grad_(False) if ema is not None else None
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    state: dict[str, Any] = {
        "step": 0,
        "best_valid": math.inf,
        "best_step": 0,
        "best_model": None,
        "valid_history": [],
        "seconds": 0.0,
    }
    path = out / CHECKPOINT
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        optim.load_state_dict(saved["optim"])
        if averaged is not None:
            averaged.load_state_dict(saved.get("ema", saved["model"]))
        state = saved["state"]
    kept = averaged if averaged is not None else model  # the weights validated and exported
    valid = [to_device(b, device) for b in valid]

    def save() -> None:
        data = {"model": model.state_dict(), "optim": optim.state_dict(), "state": state}
        if averaged is not None:
            data["ema"] = averaged.state_dict()
        with atomic_path(path) as tmp:
            torch.save(data, tmp)

    def validate() -> float:
        model.eval()
        with torch.no_grad(), autocast(device, precision):
            value = sum(float(loss(kept, b)) for b in valid) / len(valid)
        model.train()
        return value

    def give_snapshot() -> None:
        if snapshot is not None:
            weights = state["best_model"] or {k: t.detach().to("cpu") for k, t in kept.state_dict().items()}
            snapshot(weights, state)

    start, began = time.monotonic(), state["seconds"]
    last_snapshot = start
    log = open(out / "log.jsonl", "a")  # noqa: SIM115 (closed below)
    bar = tqdm(total=steps, initial=state["step"], disable=not progress, desc="fit")
    model.train()
    try:
        for data in step_batches(batch, state["step"], steps, workers):
            step = state["step"]
            done = step / steps
            if schedule == "time":
                done = max(done, min((time.monotonic() - start) / (60 * max_minutes), 1.0))
            scale = min((step + 1) / max(warmup, 1), 1.0) * 0.5 * (1 + math.cos(math.pi * done))
            for group in optim.param_groups:
                group["lr"] = lr * scale
            with autocast(device, precision):
                value = loss(model, to_device(data, device))
            optim.zero_grad(set_to_none=True)
            value.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            if torch.isfinite(norm):
                optim.step()
            if averaged is not None:
                _update_ema(averaged, model, min(ema, (1 + step) / (10 + step)))
            state["step"] = step + 1
            state["seconds"] = began + time.monotonic() - start
            bar.update(1)
            bar.set_postfix(loss=f"{float(value.detach()):.3f}")
            record = {"step": state["step"], "loss": float(value.detach()), "lr": lr * scale}
            out_of_time = max_minutes is not None and state["seconds"] - began > 60 * max_minutes
            if valid and (state["step"] % valid_every == 0 or state["step"] == steps or out_of_time):
                record["valid"] = v = validate()
                state["valid_history"].append((state["step"], v))
                bar.write(f"step {state['step']}: train {record['loss']:.4f}  valid {v:.4f}")
                if v < state["best_valid"]:
                    state["best_valid"], state["best_step"] = v, state["step"]
                    state["best_model"] = {k: t.detach().to("cpu", copy=True) for k, t in kept.state_dict().items()}
            log.write(json.dumps(record) + "\n")
            if state["step"] % checkpoint_every == 0 or state["step"] == steps:
                save()
            if time.monotonic() - last_snapshot > 60 * snapshot_minutes:
                give_snapshot()
                last_snapshot = time.monotonic()
            if out_of_time:
                break
    finally:
        save()
        bar.close()
        log.close()
    give_snapshot()
    return state


@torch.no_grad()
def _update_ema(averaged: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    for p_avg, p in zip(averaged.parameters(), model.parameters(), strict=True):
        p_avg.lerp_(p.detach(), 1 - beta)
    for b_avg, b in zip(averaged.buffers(), model.buffers(), strict=True):
        b_avg.copy_(b)


def add_recipe_options(parser, *, minutes: float, steps: int, batch: int, seconds: float) -> None:
    """The options every predictor recipe shares (an ``argparse.ArgumentParser``), with its defaults.

    ``--split files`` trains on the corpus' ``train`` files of the training voices and validates on
    their ``valid`` files; ``--split voices`` trains on every file of the training voices and
    validates on the unseen validation voices (:data:`sips.corpus.VALID_VOICES`). ``--voice-set``
    picks the training voices: the recipe's own permissively licensed ones, or ``wide``
    (:data:`sips.corpus.WIDE_SOURCES`, GPL-2/GPL-2+ and BSD-like audio).
    """
    parser.add_argument("corpus", help="a corpus folder (shared/data/build_corpus.py) or a GPU data pack")
    parser.add_argument("run", help="run folder (checkpoint.pt, log.jsonl, summary.json); resumes from it")
    parser.add_argument("--minutes", type=float, default=minutes, help="wall-clock budget")
    parser.add_argument("--steps", type=int, default=steps, help="total optimiser steps (sets the cosine schedule)")
    parser.add_argument("--batch", type=int, default=batch, help="mixtures per step")
    parser.add_argument("--seconds", type=float, default=seconds, help="length of a training crop")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--split", choices=("files", "voices"), default="files", help="what trains and validates")
    parser.add_argument(
        "--voice-set",
        choices=("permissive", "wide"),
        default="permissive",
        help="training voices: the recipe's permissively licensed ones, or wide (GPL-2/GPL-2+ and BSD-like)",
    )
    parser.add_argument("--augment", choices=("none", "voice"), default="none", help="perturbation of each source")
    parser.add_argument("--valid-items", type=int, default=32, help="fixed validation mixtures (batches of 8)")
    parser.add_argument("--valid-seconds", type=float, default=4.0, help="length of a validation mixture")
    parser.add_argument("--valid-every", type=int, default=200, help="steps between validations")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="where the steps run, e.g. cuda")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="fp32 or bf16 autocast")
    parser.add_argument("--workers", type=int, default=0, help="processes preparing batches ahead")
    parser.add_argument("--ema", type=float, default=None, help="EMA decay of the kept weights; default none")
    parser.add_argument("--snapshot", default=None, help=".safetensors file rewritten with the kept weights")
    parser.add_argument("--snapshot-minutes", type=float, default=1.0, help="minutes between snapshots")
    parser.add_argument("--export", default=None, help="write the best weights as the adapter's default folder")
    parser.add_argument(
        "--schedule", choices=("steps", "time"), default="steps", help="cosine decay over --steps or --minutes"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def valid_batch_sizes(items: int, per_batch: int = 8) -> list[int]:
    """Sizes of the fixed validation batches holding ``items`` mixtures (``per_batch`` at most each)."""
    return [min(per_batch, items - i) for i in range(0, items, per_batch)]


def recipe_snapshot(path: str | None, kind: str, config: Any, size: str) -> Snapshot | None:
    """The ``snapshot`` callback of :func:`fit` for a predictor recipe: writes the weights with what
    rebuilds the network (``kind``, ``config``, ``size``) and the run's progress (``None`` without a path)."""
    if path is None:
        return None
    from ..pretrained.weights import write_snapshot

    def snapshot(weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        progress = {k: state[k] for k in ("step", "best_step", "best_valid", "seconds")}
        write_snapshot(path, weights, {"kind": kind, "config": config, "size": size, **progress})

    return snapshot


def fit_options(args) -> dict[str, Any]:
    """The keyword arguments of :func:`fit` given by :func:`add_recipe_options`' options."""
    return {
        "steps": args.steps,
        "lr": args.lr,
        "max_minutes": args.minutes,
        "valid_every": args.valid_every,
        "progress": not args.quiet,
        "device": args.device,
        "precision": args.precision,
        "workers": args.workers,
        "ema": args.ema,
        "snapshot_minutes": args.snapshot_minutes,
        "schedule": args.schedule,
    }
