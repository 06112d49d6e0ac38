"""Train the small default SEMamba (speech enhancement) on the development corpus.

    python adapters/semamba/recipes/train_small.py CORPUS RUN_DIR [--minutes 60] [--export DIR]

Noisy mixtures of ``clean/train`` and ``noise/train`` at -5..15 dB SNR, 2 s crops. The loss
follows the SEMamba/MP-SENet recipe without the metric discriminator: compressed-magnitude MSE,
compressed-complex MSE, anti-wrapping phase losses and a waveform L1. Validation: fixed
mixtures of ``clean/valid`` with noise clips drawn from ``noise/train`` (the corpus has no
``noise/valid``); the reported number is SI-SDR. Resumes from ``RUN_DIR/checkpoint.pt``.
Speech: the permissively licensed voices only (Asterisk, festvox_ru).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from sips_semamba import SEMamba, enhance, mag_phase_istft, mag_phase_stft, rms_norm_factor, save_default

from sips.corpus import MixtureBank
from sips.fit import fit
from sips.metrics import si_sdr

SOURCES = ["asterisk", "festvox_ru"]
CONFIG = {
    "model_cfg": {"hid_feature": 16, "num_tfmamba": 1, "d_state": 4, "d_conv": 4, "expand": 2},
    "stft_cfg": {"sampling_rate": 16000, "n_fft": 400, "hop_size": 100, "win_size": 400},
}


def _wrap(x: torch.Tensor) -> torch.Tensor:
    return torch.abs(x - 2 * math.pi * torch.round(x / (2 * math.pi)))


def loss_fn(model: SEMamba, batch) -> torch.Tensor:
    noisy, clean = batch
    factor = rms_norm_factor(noisy)
    noisy, clean = noisy * factor, clean * factor
    n_mag, n_pha, _ = mag_phase_stft(noisy)
    c_mag, c_pha, c_com = mag_phase_stft(clean)
    amp, pha, com = model(n_mag, n_pha)
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
    p.add_argument("corpus")
    p.add_argument("run")
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--export", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    length = int(args.seconds * 16000)
    train = MixtureBank(args.corpus, "train", SOURCES)
    valid_bank = MixtureBank(args.corpus, "valid", SOURCES, noise_split="train")
    g = torch.Generator().manual_seed(4321)
    valid = [valid_bank.noisy(8, 4 * 16000, g) for _ in range(4)]

    def batch(step: int):
        return train.noisy(args.batch, length, torch.Generator().manual_seed(step))

    torch.manual_seed(0)
    model = SEMamba(CONFIG)
    state = fit(
        model,
        batch,
        loss_fn,
        args.run,
        steps=args.steps,
        valid=valid,
        lr=1e-3,
        max_minutes=args.minutes,
        valid_every=200,
        checkpoint_every=100,
    )
    if state["best_model"] is not None:
        model.load_state_dict(state["best_model"])
    model.eval()
    with torch.no_grad():
        mix = torch.cat([si_sdr(m, c) for m, c in valid]).mean()
        est = torch.cat([si_sdr(enhance(model, m), c) for m, c in valid]).mean()
    summary = {
        "step": state["step"],
        "best_step": state["best_step"],
        "minutes": state["seconds"] / 60,
        "parameters": sum(p.numel() for p in model.parameters()),
        "valid_sisdr_mixture": float(mix),
        "valid_sisdr_estimate": float(est),
        "config": CONFIG,
    }
    Path(args.run, "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    if args.export:
        save_default(model, args.export)


if __name__ == "__main__":
    main()
