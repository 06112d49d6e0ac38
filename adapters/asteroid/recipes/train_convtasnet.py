"""Train the small default Conv-TasNet (asteroid) for two-speaker separation on the dev corpus.

    python adapters/asteroid/recipes/train_convtasnet.py CORPUS RUN_DIR [--minutes 60] [--export DIR]

Two-speaker mixtures of different speakers (relative level -5..5 dB), 2 s crops, permutation-
invariant negative SI-SDR, validated on fixed mixtures of ``clean/valid``. Resumes from
``RUN_DIR/checkpoint.pt``; ``--export`` writes the best weights as the adapter's default folder.
Speech sources: the permissively licensed voices only (Asterisk en/fr/ru, festvox_ru); the
Asterisk es voice is the same person as the en one and is left out so that the two speakers of a
mixture are always two people.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from sips_asteroid._lazy import import_asteroid

from sips.corpus import MixtureBank
from sips.fit import fit
from sips.metrics import pit_si_sdr, si_sdr

SOURCES = ["asterisk_en_US", "asterisk_fr_CA", "asterisk_ru_RU", "festvox_ru"]
CONFIG = dict(
    n_src=2,
    n_filters=128,
    kernel_size=16,
    stride=8,
    n_blocks=6,
    n_repeats=2,
    bn_chan=64,
    hid_chan=128,
    skip_chan=64,
    sample_rate=16000,
)


def build():
    return import_asteroid().ConvTasNet(**CONFIG)


def pit_loss():
    losses = import_asteroid("asteroid.losses")
    wrapper = losses.PITLossWrapper(losses.pairwise_neg_sisdr, pit_from="pw_mtx")
    return lambda model, b: wrapper(model(b[0]), b[1])


def improvement(model, valid) -> tuple[float, float]:
    """Mean SI-SDR of the mixture and of the best-permutation estimates over the validation set."""
    mix_scores, est_scores = [], []
    model.eval()
    with torch.no_grad():
        for mix, src in valid:
            est_scores.append(pit_si_sdr(model(mix), src)[0])
            mix_scores.append(si_sdr(mix.unsqueeze(1), src).mean(-1))
    return float(torch.cat(mix_scores).mean()), float(torch.cat(est_scores).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus")
    p.add_argument("run")
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--export", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    length = int(args.seconds * 16000)
    train = MixtureBank(args.corpus, "train", SOURCES)
    valid_bank = MixtureBank(args.corpus, "valid", SOURCES)
    g = torch.Generator().manual_seed(1234)
    valid = [valid_bank.two_speakers(8, 4 * 16000, g) for _ in range(4)]

    def batch(step: int):
        return train.two_speakers(args.batch, length, torch.Generator().manual_seed(step))

    model = build()
    state = fit(
        model,
        batch,
        pit_loss(),
        args.run,
        steps=args.steps,
        valid=valid,
        lr=1e-3,
        max_minutes=args.minutes,
        valid_every=250,
        checkpoint_every=100,
    )
    if state["best_model"] is not None:
        model.load_state_dict(state["best_model"])
    mix, est = improvement(model, valid)
    summary = {
        "step": state["step"],
        "best_step": state["best_step"],
        "minutes": state["seconds"] / 60,
        "valid_sisdr_mixture": mix,
        "valid_sisdr_estimate": est,
        "config": CONFIG,
    }
    Path(args.run, "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    if args.export:
        from sips_asteroid import save_default

        save_default(model, args.export, card_text=None)


if __name__ == "__main__":
    main()
