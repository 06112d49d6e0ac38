"""A small resumable training loop for predictors (used by the adapters' training recipes).

The prior has its own trainer (:mod:`sips.train`); predictors only need this: Adam with warm-up
and cosine decay, gradient clipping, a batch function of the step number (so that a resumed run
draws exactly the batches an uninterrupted one would), periodic atomic checkpoints, a validation
loss on fixed batches with the best weights kept, and a wall-clock budget.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ._atomic import atomic_path

CHECKPOINT = "checkpoint.pt"


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
) -> dict[str, Any]:
    """Train ``model`` until ``steps`` or ``max_minutes``; resumes from ``out_dir/checkpoint.pt``.

    Args:
        model: the network (trained in place; on return it holds the last weights).
        batch: ``batch(step)`` returns the training batch of that step (seed it with the step).
        loss: ``loss(model, batch)`` returns a scalar to minimise.
        out_dir: run folder (``checkpoint.pt``, ``log.jsonl``).
        steps: total optimiser steps.
        valid: fixed validation batches; their mean loss is logged and the best weights kept.

    Returns:
        The state: ``step``, ``best_valid``, ``best_step``, ``best_model`` (state dict or ``None``),
        ``valid_history`` (list of ``(step, loss)``) and ``seconds`` (training time over all runs).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
        state = saved["state"]

    def save() -> None:
        with atomic_path(path) as tmp:
            torch.save({"model": model.state_dict(), "optim": optim.state_dict(), "state": state}, tmp)

    def validate() -> float:
        model.eval()
        with torch.no_grad():
            value = sum(float(loss(model, b)) for b in valid) / len(valid)
        model.train()
        return value

    start, began = time.monotonic(), state["seconds"]
    log = open(out / "log.jsonl", "a")  # noqa: SIM115 (closed below)
    bar = tqdm(total=steps, initial=state["step"], disable=not progress, desc="fit")
    model.train()
    try:
        while state["step"] < steps:
            step = state["step"]
            scale = min((step + 1) / max(warmup, 1), 1.0) * 0.5 * (1 + math.cos(math.pi * step / steps))
            for group in optim.param_groups:
                group["lr"] = lr * scale
            value = loss(model, batch(step))
            optim.zero_grad(set_to_none=True)
            value.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            if torch.isfinite(norm):
                optim.step()
            state["step"] = step + 1
            state["seconds"] = began + time.monotonic() - start
            bar.update(1)
            bar.set_postfix(loss=f"{float(value.detach()):.3f}")
            record = {"step": state["step"], "loss": float(value.detach()), "lr": lr * scale}
            if valid and (state["step"] % valid_every == 0 or state["step"] == steps):
                record["valid"] = v = validate()
                state["valid_history"].append((state["step"], v))
                if v < state["best_valid"]:
                    state["best_valid"], state["best_step"] = v, state["step"]
                    state["best_model"] = {k: t.detach().clone() for k, t in model.state_dict().items()}
            log.write(json.dumps(record) + "\n")
            if state["step"] % checkpoint_every == 0 or state["step"] == steps:
                save()
            if max_minutes is not None and state["seconds"] - began > 60 * max_minutes:
                break
    finally:
        save()
        bar.close()
        log.close()
    return state
