"""Turn what the GPU recipe returned into loadable folders with model cards.

    python priors/gpu/finish.py OUT DEST

OUT is the result folder of ``priors/gpu/train_all.sh`` (one ``.safetensors`` snapshot per
network, ``summary.json``, ``train.log``). DEST receives one folder per snapshot found:

- ``prior-cpu``, ``prior-large``: prior folders (:func:`sips.train.export`; the large one in
  float16, under the 20 MB limit of a committed file), loaded by ``sips.load_prior(folder)``;
- ``semamba``: a ``sips_semamba`` weights folder (``sips_semamba.load(folder)``);
- ``convtasnet``: a ``sips_asteroid`` weights folder (``sips_asteroid.load_convtasnet(folder)``).

Each card states the data, the compute (device, wall time, steps) and the validation numbers
of the run. Installing them as the defaults (``sips/default_prior``, the adapters' ``default/``
folders, the catalog) is a separate, reviewed step: see ``priors/gpu/README.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from sips.pretrained.weights import read_snapshot
from sips.training.train import export

LICENCE = (
    "GPL-2.0-only. The training audio is BSD-like (festvox_ru) and GPL-2 / GPL-2+ (Fish Fillets: version 2 "
    "only; Nexuiz, Kajongg, Tux Paint, KLettres, KTuberling); the CC-BY-SA Asterisk prompts were left out so "
    "that one licence covers the weights. Whether weights trained on GPL audio are a derivative work is "
    "unsettled; this card takes the cautious reading."
)


def _data(report: dict) -> str:
    """The card's data line, from the pack's voices that ``train_all.sh`` copied into summary.json."""
    pack = report.get("pack") or {}
    voices = pack.get("voices", {}).get("train", {})
    return (
        f"{len(voices)} voices of `sips.corpus.WIDE_SOURCES` (festvox_ru and GPL-licensed game and word-game "
        f"recordings), {sum(voices.values()):.0f} minutes, at most {pack.get('voice_minutes', '?')} minutes per "
        "voice, from the Opus data pack of `priors/gpu/pack.py`, with voice augmentation (speed/pitch 0.88-1.12, "
        "tilt, one EQ band) and random gains. Validation on the unseen validation voices (Tux Paint be/ca/fr/da; "
        "their Opus-decoded audio from the pack, on which a prior's loss reads lower than on the original audio); "
        "the test voices were never used."
    )


def _compute(info: dict, report: dict) -> str:
    seconds = info.get("wall_seconds", info.get("seconds", 0.0))
    return (
        f"{report.get('device', '?')}, {seconds / 60:.1f} min of training "
        f"(the lease's command ran {report.get('seconds', 0)} s for four networks at once), {info['step']} steps"
    )


def _card(title: str, info: dict, report: dict, valid: str) -> str:
    return (
        f"## Training\n\n- **Data:** {_data(report)}\n- **Compute:** {_compute(info, report)}\n"
        f"- **Validation:** {valid}\n- **Recipe:** `priors/gpu/train_all.sh` ({title})\n\n"
        f"## Licence\n\n{LICENCE}\n"
    )


def finish_prior(name: str, path: Path, dest: Path, report: dict) -> Path:
    info = read_snapshot(path)[1]
    last = info.get("valid_last") or {}
    valid = (
        f"loss {last.get('valid_loss', float('nan')):.4f}, MSE {last.get('valid_mse', float('nan')):.4f} (EMA weights)"
    )
    dtype = torch.float16 if name == "prior-large" else torch.float32
    return export(path, dest / name, card_body=_card(name, info, report, valid), dtype=dtype, license="gpl-2.0")


def finish_semamba(path: Path, dest: Path, report: dict) -> Path:
    from sips_semamba import SEMamba, save_default

    weights, info = read_snapshot(path)
    model = SEMamba(info["config"])
    model.load_state_dict(weights, strict=True)
    valid = f"best loss {info['best_valid']:.4f} at step {info['best_step']} (EMA weights)"
    card = f"# SEMamba ({info['size']} size) for sips\n\n" + _card("semamba", info, report, valid)
    return save_default(model, dest / "semamba", card_text=card)


def finish_convtasnet(path: Path, dest: Path, report: dict) -> Path:
    from sips_asteroid import save_default
    from sips_asteroid._lazy import import_asteroid

    weights, info = read_snapshot(path)
    model = import_asteroid().ConvTasNet(**info["config"])
    model.load_state_dict(weights, strict=True)
    valid = f"best negative SI-SDR {info['best_valid']:.2f} dB at step {info['best_step']} (EMA weights)"
    card = f"# Conv-TasNet ({info['size']} size) for sips\n\n" + _card("convtasnet", info, report, valid)
    return save_default(model, dest / "convtasnet", card_text=card)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("dest", type=Path)
    args = p.parse_args(argv)
    summary = args.out / "summary.json"
    report = json.loads(summary.read_text()) if summary.is_file() else {}
    done = []
    for name in ("prior-cpu", "prior-large", "semamba", "convtasnet"):
        path = args.out / f"{name}.safetensors"
        if not path.is_file():
            print(f"finish: no {path.name} in {args.out}", file=sys.stderr)
            continue
        if name.startswith("prior"):
            done.append(finish_prior(name, path, args.dest, report))
        elif name == "semamba":
            done.append(finish_semamba(path, args.dest, report))
        else:
            done.append(finish_convtasnet(path, args.dest, report))
    if not done:
        print(f"finish: {args.out} holds no snapshot; it should be the OUT folder of train_all.sh", file=sys.stderr)
        return 2
    print("\n".join(str(d) for d in done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
