"""Train Conv-TasNet (asteroid) for two-speaker separation on the dev corpus or the GPU data pack.

    python adapters/asteroid/recipes/train_convtasnet.py CORPUS RUN_DIR [--size small|large]
        [--minutes 60] [--split files|voices] [--device cuda --precision bf16 --workers 4 --ema 0.999]
        [--snapshot FILE.safetensors] [--export DIR] [--voice-set permissive|wide]

Two-speaker mixtures of different speakers (relative level -5..5 dB), permutation-invariant
negative SI-SDR (in float32, also under bf16 autocast), validated on fixed mixtures (see
``--split``). Resumes from ``RUN_DIR/checkpoint.pt``; ``--export`` writes the best weights as the
adapter's default folder. Speech sources (``--voice-set``): ``permissive``, the permissively
licensed voices (Asterisk en/fr/ru, festvox_ru; the Asterisk es voice is the same person as the en
one and is left out so that the two speakers of a mixture are always two people), or ``wide``
(``sips.corpus.WIDE_SOURCES``, festvox_ru and GPL voices: the shipped default's, whose weights are
GPL-2.0-only). Sizes: ``small`` is the shipped CPU default (0.34 M parameters); ``large`` is the
published architecture (Luo & Mesgarani 2019: N=512, L=16, B=Sc=128, P=3, X=8, R=3) with H=384
instead of 512 conv channels (3.84 M parameters, so that the float32 weights stay under 16 MiB).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from sips_asteroid._lazy import import_asteroid

from sips.evaluation.metrics import pit_si_sdr, si_sdr
from sips.training.corpus import WIDE_SOURCES, recipe_banks
from sips.training.fit import add_recipe_options, fit, fit_options, recipe_snapshot, valid_batch_sizes

SOURCES = ["asterisk_en_US", "asterisk_fr_CA", "asterisk_ru_RU", "festvox_ru"]
_COMMON = dict(n_src=2, kernel_size=16, stride=8, sample_rate=16000)
SIZES = {
    "small": dict(_COMMON, n_filters=128, n_blocks=6, n_repeats=2, bn_chan=64, hid_chan=128, skip_chan=64),
    "large": dict(_COMMON, n_filters=512, n_blocks=8, n_repeats=3, bn_chan=128, hid_chan=384, skip_chan=128),
}
SNAPSHOT_KIND = "convtasnet"


def build(size: str = "small"):
    return import_asteroid().ConvTasNet(**SIZES[size])


def pit_loss():
    losses = import_asteroid("asteroid.losses")
    wrapper = losses.PITLossWrapper(losses.pairwise_neg_sisdr, pit_from="pw_mtx")

    def loss(model, b):
        estimates = model(b[0])
        with torch.autocast(b[0].device.type, enabled=False):  # the loss in float32 under bf16 autocast
            return wrapper(estimates.float(), b[1].float())

    return loss


def improvement(model, valid, device) -> tuple[float, float]:
    """Mean SI-SDR of the mixture and of the best-permutation estimates over the validation set."""
    mix_scores, est_scores = [], []
    model.eval()
    with torch.no_grad():
        for mix, src in valid:
            est_scores.append(pit_si_sdr(model(mix.to(device)).float().cpu(), src)[0])
            mix_scores.append(si_sdr(mix.unsqueeze(1), src).mean(-1))
    return float(torch.cat(mix_scores).mean()), float(torch.cat(est_scores).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_recipe_options(p, minutes=60, steps=20000, batch=4, seconds=2.0)
    p.add_argument("--size", choices=sorted(SIZES), default="small", help="network size")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    length = int(args.seconds * 16000)
    sources = {"permissive": SOURCES, "wide": WIDE_SOURCES}[args.voice_set]
    train, valid_bank = recipe_banks(args.corpus, args.split, sources, augment=args.augment, progress=not args.quiet)
    g = torch.Generator().manual_seed(1234)
    valid = [
        valid_bank.two_speakers(n, int(args.valid_seconds * 16000), g) for n in valid_batch_sizes(args.valid_items)
    ]

    def batch(step: int):
        return train.two_speakers(args.batch, length, torch.Generator().manual_seed(step))

    model = build(args.size)
    state = fit(
        model,
        batch,
        pit_loss(),
        args.run,
        valid=valid,
        checkpoint_every=100,
        snapshot=recipe_snapshot(args.snapshot, SNAPSHOT_KIND, SIZES[args.size], args.size),
        **fit_options(args),
    )
    if state["best_model"] is not None:
        model.load_state_dict(state["best_model"])
    mix, est = improvement(model, valid, args.device)
    summary = {
        "step": state["step"],
        "best_step": state["best_step"],
        "minutes": state["seconds"] / 60,
        "parameters": sum(p.numel() for p in model.parameters()),
        "valid_sisdr_mixture": mix,
        "valid_sisdr_estimate": est,
        "config": SIZES[args.size],
    }
    Path(args.run, "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    if args.export:
        from sips_asteroid import save_default

        save_default(model.cpu(), args.export, card_text=None)


if __name__ == "__main__":
    main()
