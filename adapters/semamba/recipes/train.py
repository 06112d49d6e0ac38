"""Train SEMamba (speech enhancement) on the development corpus or the GPU data pack.

    python adapters/semamba/recipes/train.py CORPUS RUN_DIR [--size small|published] [--minutes 60]
        [--split files|voices] [--device cuda --precision bf16 --workers 4 --ema 0.999]
        [--snapshot FILE.safetensors] [--export DIR] [--voice-set permissive|wide]

Noisy mixtures of clean speech and ``noise/train`` at -5..15 dB SNR. The loss follows the
SEMamba/MP-SENet recipe without the metric discriminator: compressed-magnitude MSE,
compressed-complex MSE, anti-wrapping phase losses and a waveform L1 (in float32, also under bf16
autocast). Validation: fixed mixtures (see ``--split``); the reported number is SI-SDR. Resumes
from ``RUN_DIR/checkpoint.pt``. Speech: the permissively licensed voices (Asterisk, festvox_ru;
the shipped default's), or ``--voice-set wide`` (``sips.corpus.WIDE_SOURCES``, GPL voices).
Sizes: ``small`` is the shipped CPU default (83 k parameters); ``published`` is the published
configuration (``SEMamba_advanced.yaml``, 2.25 M parameters), for the GPU recipe.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from sips_semamba import SEMamba, enhance, mag_phase_istft, mag_phase_stft, rms_norm_factor, save_default
from sips_semamba.config import PUBLISHED_CONFIG, resolve_config

from sips.evaluation.metrics import si_sdr
from sips.training.corpus import WIDE_SOURCES, recipe_banks
from sips.training.fit import add_recipe_options, fit, fit_options, recipe_snapshot, valid_batch_sizes

SOURCES = ["asterisk", "festvox_ru"]
SIZES = {
    "small": {
        "model_cfg": {"hid_feature": 16, "num_tfmamba": 1, "d_state": 4, "d_conv": 4, "expand": 2},
        "stft_cfg": {"sampling_rate": 16000, "n_fft": 400, "hop_size": 100, "win_size": 400},
    },
    "published": PUBLISHED_CONFIG,
}
SNAPSHOT_KIND = "semamba"


def _wrap(x: torch.Tensor) -> torch.Tensor:
    return torch.abs(x - 2 * math.pi * torch.round(x / (2 * math.pi)))


def loss_fn(model: SEMamba, batch) -> torch.Tensor:
    noisy, clean = batch
    factor = rms_norm_factor(noisy)
    noisy, clean = noisy * factor, clean * factor
    n_mag, n_pha, _ = mag_phase_stft(noisy)
    c_mag, c_pha, c_com = mag_phase_stft(clean)
    amp, pha, com = (x.float() for x in model(n_mag, n_pha))
    with torch.autocast(noisy.device.type, enabled=False):  # the loss in float32 under bf16 autocast
        return _loss(amp, pha, com, c_mag, c_pha, c_com, clean)


def _loss(amp, pha, com, c_mag, c_pha, c_com, clean) -> torch.Tensor:
    mag_loss = (amp - c_mag).square().mean()
    com_loss = 2 * (com - c_com).square().mean()
    ip = _wrap(pha - c_pha).mean()
    gd = _wrap(torch.diff(pha, dim=1) - torch.diff(c_pha, dim=1)).mean()
    iaf = _wrap(torch.diff(pha, dim=2) - torch.diff(c_pha, dim=2)).mean()
    wav = mag_phase_istft(amp, pha)
    time_loss = (wav - clean[..., : wav.shape[-1]]).abs().mean()
    return 0.9 * mag_loss + 0.1 * com_loss + 0.3 * (ip + gd + iaf) + 0.2 * time_loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_recipe_options(p, minutes=60, steps=800, batch=4, seconds=1.0)
    p.add_argument("--size", choices=sorted(SIZES), default="small", help="network size")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    config = resolve_config(SIZES[args.size])
    length = int(args.seconds * 16000)
    sources = {"permissive": SOURCES, "wide": WIDE_SOURCES}[args.voice_set]
    train, valid_bank = recipe_banks(args.corpus, args.split, sources, augment=args.augment, progress=not args.quiet)
    g = torch.Generator().manual_seed(4321)
    valid = [valid_bank.noisy(n, int(args.valid_seconds * 16000), g) for n in valid_batch_sizes(args.valid_items)]

    def batch(step: int):
        return train.noisy(args.batch, length, torch.Generator().manual_seed(step))

    torch.manual_seed(0)
    model = SEMamba(config)
    state = fit(
        model,
        batch,
        loss_fn,
        args.run,
        valid=valid,
        checkpoint_every=100,
        snapshot=recipe_snapshot(args.snapshot, SNAPSHOT_KIND, config, args.size),
        **fit_options(args),
    )
    if state["best_model"] is not None:
        model.load_state_dict(state["best_model"])
    model.eval()
    with torch.no_grad():
        mix = torch.cat([si_sdr(m.cpu(), c.cpu()) for m, c in valid]).mean()
        est = torch.cat([si_sdr(enhance(model, m.to(args.device)).cpu(), c) for m, c in valid]).mean()
    summary = {
        "step": state["step"],
        "best_step": state["best_step"],
        "minutes": state["seconds"] / 60,
        "parameters": sum(p.numel() for p in model.parameters()),
        "valid_sisdr_mixture": float(mix),
        "valid_sisdr_estimate": float(est),
        "config": config,
    }
    Path(args.run, "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    if args.export:
        save_default(model.cpu(), args.export)


if __name__ == "__main__":
    main()
