"""What the data pack's lossy codec does to priors: the measurements behind choosing Opus.

    python priors/gpu/codec_check.py CORPUS PACK [RUNS]

1. A converged prior (the embedded default) scored on the same validation crops of the
   validation voices, original vs decoded from the pack (the crops coincide: Opus keeps every
   file's length). A gap means the prior sees the codec's artefacts as off-distribution.
2. With RUNS (the run folders ``original`` and ``opus`` of ``codec_experiment.sh``, the same
   network, seed and crops trained on original vs decoded audio), their validation losses on the
   original audio at the steps both reached: what training on decoded audio costs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import sips
from sips.training.corpus import VALID_VOICES, ClipBank
from sips.training.train import TrainConfig, _Validator


def _dirs(root: Path) -> list[str]:
    return [
        str(root / "clean" / s / v)
        for s in ("valid", "test")
        for v in VALID_VOICES
        if (root / "clean" / s / v).is_dir()
    ]


def main(corpus: str, pack: str, runs: str | None = None) -> None:
    prior = sips.load_prior()
    torch.set_num_threads(2)
    cfg = TrainConfig(train_dirs=[], out_dir="", valid_items=256, batch_size=32)
    scores = {}
    for name, root in (("original", Path(corpus)), ("decoded", Path(pack))):
        validator = _Validator(ClipBank(_dirs(root), progress=False), cfg, prior.config)
        scores[name] = validator(prior)
        print(f"embedded prior on {name:8s} validation audio: loss {scores[name][0]:.4f}  MSE {scores[name][1]:.4f}")
    print(
        f"decoded - original: loss {scores['decoded'][0] - scores['original'][0]:+.4f}, "
        f"MSE {100 * (scores['decoded'][1] / scores['original'][1] - 1):+.2f} %"
    )
    if runs:
        hist = {
            n: {
                r["step"]: r
                for r in torch.load(Path(runs) / n / "checkpoint.pt", weights_only=True)["state"]["history"]
            }
            for n in ("original", "opus")
        }
        print("step  loss(original-trained)  loss(opus-trained)  diff    MSE diff")
        for step in sorted(set(hist["original"]) & set(hist["opus"])):
            a, b = hist["original"][step], hist["opus"][step]
            print(
                f"{step:5d}  {a['valid_loss']:+.4f}  {b['valid_loss']:+.4f}  {b['valid_loss'] - a['valid_loss']:+.4f}  "
                f"{100 * (b['valid_mse'] / a['valid_mse'] - 1):+.2f} %"
            )


if __name__ == "__main__":
    main(*sys.argv[1:])
