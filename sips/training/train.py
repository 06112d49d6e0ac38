"""Training a clean-speech prior (DESIGN §1).

For a clean encoded segment ``s``, ``t ~ U[0, 1]`` and ``z ~ N(0, I)`` the network sees
``x_t = s + (a + gamma(t)) z`` and predicts ``z``; the loss is
``mean((D(x_t, t) - z)^2) / exp(logvar(t)) + logvar(t)`` with the learned log-variance head.

Adam with a linear warm-up and EDM2's inverse-square-root decay, an EMA of the weights, forced
weight normalisation of the magnitude-preserving layers, periodic atomic checkpoints with exact
resume (every random draw is derived from ``(seed, rank, step)``), a validation loss on fixed
held-out crops, tqdm progress, and data-parallel training with ``torchrun`` (gloo on CPU).
On a CPU with AVX512-BF16, ``precision="bf16"`` with ``compile=True`` takes 1.7-2.8x fewer CPU
seconds per step than float32 (``benchmarks/train_speed.py``); the history in ``summary.json``
records the training CPU seconds of every validation (``max_cpu_minutes`` bounds them).
On an accelerator: ``device="cuda"``, ``precision="bf16"`` (autocast), ``workers`` processes
preparing the batches ahead (:mod:`sips.batches`), and a ``snapshot`` file of the EMA weights
rewritten every ``snapshot_minutes`` (:func:`sips.weights.write_snapshot`), so that a run killed
at any moment still leaves its latest weights (``sips train --export`` reads it as well).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .._atomic import atomic_path, write_text
from ..checks import autocast, check_device, check_precision, use_tensor_cores
from ..errors import OptionError, TrainingError
from ..method import spectral
from ..method.interpolant import corrupt
from ..method.prior import PriorConfig, ScorePrior, model_card
from ..pretrained.weights import read_snapshot, write_snapshot
from .augment import augmentation
from .batches import step_batches, to_device
from .corpus import ClipBank

CHECKPOINT_NAME = "checkpoint.pt"
SNAPSHOT_DTYPES = {"float32": torch.float32, "float16": torch.float16}
SNAPSHOT_KIND = "sips-prior"


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs besides the network configuration.

    ``segment_samples`` defaults to 127 hops (128 frames, one second at 16 kHz).
    ``lr`` is reached after ``warmup_steps`` and decays as ``1 / sqrt(step / decay_steps)`` once
    ``step > decay_steps``. ``max_minutes`` stops the run (resumably) after that much wall time,
    ``max_cpu_minutes`` after that much CPU time of this process's training steps (validation
    excluded; for comparing configurations at equal CPU cost on a busy machine).
    ``augment`` names an entry of :data:`sips.augment.AUGMENTATIONS` (``"none"`` or ``"voice"``:
    speed/pitch, tilt and EQ perturbation of every training crop). ``init`` is a prior (folder,
    catalog name or Hub id, as for :func:`sips.load_prior`) whose weights start a new run; its
    architecture must be the one trained. A run that has a checkpoint resumes from it instead.
    ``device``/``precision`` (``"fp32"`` or ``"bf16"`` autocast)/``compile`` (the training
    network through ``torch.compile``)/``workers`` say where and how the steps run; the batches
    (and so the result up to floating-point rounding) do not depend on them. ``snapshot`` is a ``.safetensors`` file rewritten with the EMA weights every
    ``snapshot_minutes`` and at the end, in ``snapshot_dtype`` (``"float32"`` or ``"float16"``).
    """

    train_dirs: Sequence[str]
    out_dir: str
    valid_dirs: Sequence[str] = ()
    batch_size: int = 8
    segment_samples: int = 127 * spectral.HOP
    max_steps: int = 10_000
    max_minutes: float | None = None
    max_cpu_minutes: float | None = None
    lr: float = 2e-3
    warmup_steps: int = 200
    decay_steps: int = 2_000
    ema: float = 0.999
    checkpoint_every: int = 200
    valid_every: int = 200
    valid_items: int = 64
    gain_db: tuple[float, float] = (-10.0, 0.0)
    seed: int = 0
    threads: int | None = None
    progress: bool = True
    augment: str = "none"
    init: str | None = None
    device: str = "cpu"
    precision: str = "fp32"
    compile: bool = False
    workers: int = 0
    snapshot: str | None = None
    snapshot_minutes: float = 1.0
    snapshot_dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    def check(self) -> None:
        """Raise :class:`~sips.errors.OptionError` (one sentence) for a value out of its range."""
        counts = ("batch_size", "segment_samples", "max_steps", "checkpoint_every", "valid_every", "valid_items")
        for name in counts:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"{name} must be an integer >= 1, got {value!r}.")
        for name in ("warmup_steps", "decay_steps", "workers", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise OptionError(f"{name} must be an integer >= 0, got {value!r}.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise OptionError(f"lr must be a positive number, got {self.lr!r}.")
        if not 0 <= self.ema < 1:
            raise OptionError(f"ema must be in [0, 1), got {self.ema!r}.")
        for name in ("max_minutes", "max_cpu_minutes", "snapshot_minutes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise OptionError(f"{name} must be a positive number of minutes, got {value!r}.")
        augmentation(self.augment)
        if self.snapshot_dtype not in SNAPSHOT_DTYPES:
            raise OptionError(
                f"Unknown snapshot dtype {self.snapshot_dtype!r}; choose one of {', '.join(SNAPSHOT_DTYPES)}."
            )
        check_precision(self.precision)
        check_device(self.device)


def prior_loss(
    net: torch.nn.Module, spec: torch.Tensor, t: torch.Tensor, z: torch.Tensor, a: float, c: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Uncertainty-weighted denoising loss (scalar) and the plain per-item MSE ``[B]``."""
    z_hat, logvar = net(corrupt(spec, t, z, a, c), t, return_logvar=True)
    mse = (z_hat.float() - z).square().mean(dim=(1, 2, 3))
    if logvar is None:
        return mse.mean(), mse
    logvar = logvar.float().flatten()
    return (mse / logvar.exp() + logvar).mean(), mse


def optimizer_step(
    model: torch.nn.Module,
    net: ScorePrior,
    ema: ScorePrior,
    opt: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    prior_cfg: PriorConfig,
    precision: contextlib.AbstractContextManager,
    beta: float,
) -> torch.Tensor:
    """One step of :func:`train` on ``batch = (spec, t, z)``; returns the loss.

    The loss of ``model`` (``net`` itself, or a DDP/compiled wrapper of it) under the ``precision``
    context (an autocast), backward, non-finite gradients zeroed, ``opt`` steps, ``net``'s forced
    weight normalisation, and ``ema`` moved toward ``net`` by ``1 - beta``."""
    spec, t, z = batch
    with precision:
        loss, _ = prior_loss(model, spec, t, z, prior_cfg.a, prior_cfg.c)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    for p in net.parameters():
        if p.grad is not None:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
    opt.step()
    net.normalize_weights_()
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), net.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1 - beta)
    return loss


def learning_rate(step: int, cfg: TrainConfig) -> float:
    lr = cfg.lr
    if cfg.decay_steps > 0:
        lr /= math.sqrt(max(step / cfg.decay_steps, 1.0))
    if cfg.warmup_steps > 0:
        lr *= min(step / cfg.warmup_steps, 1.0)
    return lr


def _step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + rank * 7_919 + step) % (2**63))


class _Validator:
    """Fixed crops, times and noise: the same numbers for every evaluation."""

    def __init__(self, bank: ClipBank, cfg: TrainConfig, prior_cfg: PriorConfig) -> None:
        g = torch.Generator().manual_seed(10_007 + cfg.seed)
        wav = bank.crops(cfg.valid_items, cfg.segment_samples, g, cfg.gain_db)
        self.spec = spectral.encode(wav)
        self.t = (torch.arange(cfg.valid_items) + 0.5) / cfg.valid_items
        self.z = torch.randn(self.spec.shape, generator=g)
        self.batch = cfg.batch_size
        self.a, self.c = prior_cfg.a, prior_cfg.c

    @torch.no_grad()
    def __call__(self, net: torch.nn.Module) -> tuple[float, float]:
        """``(loss, mse)`` of ``net`` on the fixed items, in float32 on ``net``'s device."""
        device = next(net.parameters()).device
        losses, mses = [], []
        for i in range(0, len(self.t), self.batch):
            spec, t, z = to_device(
                (self.spec[i : i + self.batch], self.t[i : i + self.batch], self.z[i : i + self.batch]), device
            )
            loss, mse = prior_loss(net, spec, t, z, self.a, self.c)
            losses.append(loss.cpu() * mse.numel())
            mses.append(mse.cpu())
        n = len(self.t)
        return float(sum(losses) / n), float(torch.cat(mses).mean())


def train(cfg: TrainConfig, prior_cfg: PriorConfig) -> dict[str, Any]:
    """Train (or resume) a prior; returns a summary dict (rank 0), including validation losses.

    Runs under ``torchrun`` too: each rank trains on its own crops, gradients are averaged with
    ``torch.distributed`` (gloo on CPU, nccl on CUDA), rank 0 writes checkpoints.
    """
    cfg.check()
    augment = augmentation(cfg.augment)
    device = check_device(cfg.device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device.type == "cuda" and device.index is None and world > 1:  # one GPU per process under torchrun
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    use_tensor_cores(device)
    out_dir = Path(cfg.out_dir)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)

    bank = ClipBank(cfg.train_dirs, progress=cfg.progress)
    validator = None
    if cfg.valid_dirs and rank == 0:
        validator = _Validator(ClipBank(cfg.valid_dirs, progress=cfg.progress), cfg, prior_cfg)

    def make_batch(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The step's batch ``(spec, t, z)``: a function of ``(seed, rank, step)`` alone."""
        g = _step_generator(cfg.seed, rank, step)
        length = cfg.segment_samples if augment is None else augment.source_length(cfg.segment_samples)
        wav = bank.crops(cfg.batch_size, length, g, cfg.gain_db)
        if augment is not None:
            wav = augment(wav, cfg.segment_samples, g)
        spec = spectral.encode(wav)
        t = torch.rand(cfg.batch_size, generator=g)
        return spec, t, torch.randn(spec.shape, generator=g)

    torch.manual_seed(cfg.seed)  # identical initialisation on every rank
    net = ScorePrior(prior_cfg).train()
    if cfg.init is not None and not (out_dir / CHECKPOINT_NAME).is_file():
        _load_init(net, cfg.init, prior_cfg)
    net.normalize_weights_()
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    net.to(device)
    ema.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99), eps=1e-8)
    state = {"step": 0, "cpu_seconds": 0.0, "wall_seconds": 0.0, "history": [], "valid_init": None}

    ckpt_path = out_dir / CHECKPOINT_NAME
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt["prior_config"] != prior_cfg.to_dict():
            raise TrainingError(f"{ckpt_path} was trained with another network configuration; use a new --out folder.")
        net.load_state_dict(ckpt["net"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        state = ckpt["state"]
    elif validator is not None:
        state["valid_init"] = validator(ema)

    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    if cfg.compile:
        model = torch.compile(model)
    start_wall, start_cpu = time.time(), time.process_time()
    base_wall, base_cpu = state["wall_seconds"], state["cpu_seconds"]
    state.setdefault("valid_cpu_seconds", 0.0)  # of cpu_seconds, those spent on validation

    def training_cpu() -> float:
        """CPU seconds of the run's training steps so far (all processes that resumed it; no validation)."""
        return base_cpu + time.process_time() - start_cpu - state["valid_cpu_seconds"]

    start_training_cpu = training_cpu()
    last_snapshot = time.time()

    def save() -> None:
        state["wall_seconds"] = base_wall + time.time() - start_wall
        state["cpu_seconds"] = base_cpu + time.process_time() - start_cpu
        if rank != 0:
            return
        with atomic_path(ckpt_path) as tmp:
            torch.save(
                {
                    "net": net.state_dict(),
                    "ema": ema.state_dict(),
                    "opt": opt.state_dict(),
                    "state": state,
                    "prior_config": prior_cfg.to_dict(),
                    "train_config": cfg.to_dict(),
                },
                tmp,
            )

    def snapshot() -> None:
        if cfg.snapshot is None or rank != 0:
            return
        info = {
            "kind": SNAPSHOT_KIND,
            "prior_config": prior_cfg.to_dict(),
            "train_config": cfg.to_dict(),
            "step": state["step"],
            "wall_seconds": base_wall + time.time() - start_wall,
            "train_seconds_of_audio": bank.seconds,
            "valid_init": state["valid_init"],
            "valid_last": state["history"][-1] if state["history"] else None,
        }
        write_snapshot(cfg.snapshot, ema.state_dict(), info, dtype=SNAPSHOT_DTYPES[cfg.snapshot_dtype])

    bar = tqdm(
        total=cfg.max_steps,
        initial=state["step"],
        desc="train",
        disable=not cfg.progress or rank != 0,
        dynamic_ncols=True,
    )
    last_loss = float("nan")
    for batch in step_batches(make_batch, state["step"], cfg.max_steps, cfg.workers):
        step = state["step"]
        spec, t, z = to_device(batch, device)
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg)
        beta = min(cfg.ema, (1 + step) / (10 + step))
        loss = optimizer_step(model, net, ema, opt, (spec, t, z), prior_cfg, autocast(device, cfg.precision), beta)
        state["step"] = step + 1
        last_loss = loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{learning_rate(step, cfg):.2e}")

        done = state["step"] >= cfg.max_steps
        stop = False
        if cfg.max_minutes is not None or cfg.max_cpu_minutes is not None:
            wall = time.time() - start_wall
            cpu = training_cpu() - start_training_cpu
            over = (cfg.max_minutes is not None and wall > cfg.max_minutes * 60) or (
                cfg.max_cpu_minutes is not None and cpu > cfg.max_cpu_minutes * 60
            )
            flag = torch.tensor([float(over)], device=device)
            if world > 1:
                dist.broadcast(flag, src=0)  # every rank stops at the same step
            stop = bool(flag.item())
        record = validator is not None and (state["step"] % cfg.valid_every == 0 or done or stop)
        if record:
            train_cpu = training_cpu()
            v_cpu = time.process_time()
            v_loss, v_mse = validator(ema)
            state["valid_cpu_seconds"] += time.process_time() - v_cpu
            state["history"].append(
                {
                    "step": state["step"],
                    "train_loss": last_loss,
                    "valid_loss": v_loss,
                    "valid_mse": v_mse,
                    "train_cpu_seconds": train_cpu,
                }
            )
            bar.write(f"step {state['step']}: train {last_loss:.4f}  valid loss {v_loss:.4f}  mse {v_mse:.4f}")
        if state["step"] % cfg.checkpoint_every == 0 or done or stop:
            save()
        if done or stop or time.time() - last_snapshot > 60 * cfg.snapshot_minutes:
            snapshot()
            last_snapshot = time.time()
        if stop:
            break
    bar.close()
    if world > 1:
        dist.barrier()
    summary = {
        "step": state["step"],
        "cpu_seconds": state["cpu_seconds"],
        "wall_seconds": state["wall_seconds"],
        "train_seconds_of_audio": bank.seconds,
        "valid_init": state["valid_init"],
        "valid_last": state["history"][-1] if state["history"] else None,
        "history": state["history"],
    }
    if rank == 0:
        write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _load_init(net: ScorePrior, name: str, prior_cfg: PriorConfig) -> None:
    """Copy the weights of the prior ``name`` into ``net`` (same architecture required)."""
    from ..method.prior import load_prior

    start = load_prior(name)
    if start.config.to_dict() != prior_cfg.to_dict():
        raise TrainingError(f"The prior {name} has another network configuration than the one to train.")
    net.load_state_dict(start.state_dict(), strict=True)


def export(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    card_body: str = "",
    dtype: torch.dtype = torch.float32,
    **card_kwargs: Any,
) -> Path:
    """Write the EMA weights of a training run as a prior folder.

    Args:
        checkpoint: a run folder or its ``checkpoint.pt``, or a snapshot file (``.safetensors``,
            written by ``snapshot=``; float16 snapshots are loaded into the float32 network).
        out_dir: the prior folder to write.
        card_body: Markdown appended to the model card (data, compute, validation numbers).
        dtype: of the written weights (:meth:`ScorePrior.save_pretrained`).
    """
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        checkpoint = checkpoint / CHECKPOINT_NAME
    if checkpoint.suffix == ".safetensors":
        weights, info = read_snapshot(checkpoint)
        if info.get("kind") != SNAPSHOT_KIND:
            raise TrainingError(f"{checkpoint} is a snapshot of {info.get('kind')!r}, not of a prior.")
        config = info["prior_config"]
    elif checkpoint.is_file():
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
        weights, config = ckpt["ema"], ckpt["prior_config"]
    else:
        raise TrainingError(f"No training checkpoint at {checkpoint}.")
    prior = ScorePrior(PriorConfig.from_dict(config))
    prior.load_state_dict(weights, strict=True)
    return prior.save_pretrained(out_dir, card=model_card(prior, body=card_body, **card_kwargs), dtype=dtype)
