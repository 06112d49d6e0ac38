"""Quality benchmark on unseen voices: each predictor alone and refined by sips, fixed seeded sets.

    python benchmarks/bench.py CORPUS [--voices test|valid] [--items 20] [--seconds 4]
        [--steps N] [--method euler|heun] [--kappa K] [--strength S] [--ensemble K] [--rescale auto|none|gain]
        [--predictors deepfilternet gtcrn nsnet2 nsnet2:model=48k rnnoise convtasnet convtasnet:checkpoint=DIR]
        [--prior P] [--metrics si_sdr pesq estoi dnsmos] [--plots DIR] [--json F]

Speaker-disjoint: the speech comes only from voices that no shipped weights were trained on
(``sips.corpus.TEST_VOICES``, or ``VALID_VOICES`` for tuning: whole Tux Paint voices, 2 male and 2
female each, 4 languages each), with the corpus' test noises. Sets are drawn with fixed seeds, so
reruns are identical: enhancement mixes clean speech with test noise at -5, 0, 5, 10 and 15 dB (in
turn); separation mixes two different voices at -5..5 dB. Enhancement predictors (n_src = 1) run on
the first, separation predictors on the second. One table per task: the metric means of the
mixture, the predictor, predictor + sips, and the difference sips makes with its 95 % confidence
interval. The predictor alone is scored after the same rescaling (``--rescale``) that sips applies
before refining, so that a change of level is not counted as a gain of the prior. Sampler
settings default to the library's defaults.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import sips
from sips import bands, scaling
from sips import metrics as M
from sips.defaults import SAMPLER as DEFAULTS
from sips.evaluation.evaluate import score_sources
from sips.training.corpus import SPLITS, TEST_VOICES, VALID_VOICES, MixtureBank

SNRS = (-5.0, 0.0, 5.0, 10.0, 15.0)
# "studio": studio-grade game dubs (Fish Fillets, Nexuiz) that no shipped prior or enhancer was trained
# on: a check of the enhancers and the embedded prior on cleaner voices than the Tux Paint home
# recordings. They are not unseen by the shipped Conv-TasNet (v2) nor by the GPU recipe's networks,
# which train on sips.corpus.WIDE_SOURCES; measure those on the test voices only.
STUDIO_VOICES = ("fillets_cs_m", "fillets_cs_v", "fillets_nl_m", "fillets_nl_v", "nexuiz_tutorial")
VOICES = {"test": TEST_VOICES, "valid": VALID_VOICES, "studio": STUDIO_VOICES}


def enhancement_set(
    corpus: str, items: int, length: int, voices: str = "test"
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(mixture [T], references [1, T])]`` of the held-out ``voices`` (``"test"``, ``"valid"``
    or ``"studio"``) with test noise, SNRs cycling through ``SNRS``."""
    bank = MixtureBank(corpus, SPLITS, VOICES[voices], noise_split="test")
    g = torch.Generator().manual_seed(2024)
    out = []
    for k in range(items):
        snr = SNRS[k % len(SNRS)]
        mix, clean = bank.noisy(1, length, g, snr_db=(snr, snr))
        out.append((mix[0], clean))
    return out


def separation_set(
    corpus: str, items: int, length: int, voices: str = "test"
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(mixture [T], references [2, T])]`` of two different held-out voices."""
    bank = MixtureBank(corpus, SPLITS, VOICES[voices], noise_split="test")
    g = torch.Generator().manual_seed(2025)
    return [(m[0], s[0]) for m, s in (bank.two_speakers(1, length, g) for _ in range(items))]


def sampler_options(args) -> dict:
    """The refine keyword arguments chosen on the command line (library defaults otherwise)."""
    chosen = {k: getattr(args, k) for k in ("steps", "method", "kappa", "strength", "ensemble", "rescale")}
    return {**DEFAULTS, **{k: v for k, v in chosen.items() if v is not None}}


def predict(predictor, mix: torch.Tensor) -> torch.Tensor:
    """The predictor's estimate ``[K, T]`` of a 16 kHz mixture ``[T]``, as sips forms it: the
    mixture resampled to the predictor's own rate, the estimate back to 16 kHz (sips.bands)."""
    rate = predictor.sample_rate
    est = predictor(bands.resample(mix[None], 16000, rate))[0]
    return bands.resample(est, rate, 16000, length=mix.shape[-1])


def run_task(name, predictor, data, args, prior=None) -> dict:
    """Scores per item for mixture / predictor (rescaled as sips rescales) / predictor + sips,
    and the seconds spent in the predictor and in the refinement."""
    columns = {"mixture": [], name: [], f"{name} + sips": []}
    first = None
    options = sampler_options(args)
    seconds = {"audio": 0.0, "predictor": 0.0, "refine": 0.0}
    for mix, ref in data:
        start = time.perf_counter()
        est = scaling.rescale(predict(predictor, mix), mix, options["rescale"])
        middle = time.perf_counter()
        refined = sips.refine_estimates(est, mix, seed=0, prior=prior, **options)
        seconds["predictor"] += middle - start
        seconds["refine"] += time.perf_counter() - middle
        seconds["audio"] += mix.shape[-1] / 16000
        columns["mixture"].append(score_sources(mix.expand_as(ref), ref, args.metrics))
        columns[name].append(score_sources(est, ref, args.metrics))
        columns[f"{name} + sips"].append(score_sources(refined, ref, args.metrics))
        if first is None:
            k = int(M.pit_si_sdr(est, ref)[1][0])  # the estimate that goes with the first reference
            first = {"mixture": mix, name: est[k], f"{name} + sips": refined[k], "reference": ref[0]}
    rtf = {"predictor RTF": seconds["predictor"] / seconds["audio"], "refine RTF": seconds["refine"] / seconds["audio"]}
    return {"columns": columns, "example": first, "rtf": rtf}


def table(name: str, result: dict) -> str:
    columns = result["columns"]
    keys = list(columns["mixture"][0])
    plain, refined = columns[name], columns[f"{name} + sips"]
    lines = [f"| metric | mixture | {name} | {name} + sips | sips − {name} (95 % CI) |", "|---|---|---|---|---|"]
    for key in keys:
        means = [M.mean_ci([row[key] for row in columns[c]])[0] for c in columns]
        diff, half = M.mean_ci([b[key] - a[key] for a, b in zip(plain, refined, strict=True)])
        lines.append(f"| {key} | {means[0]:.3f} | {means[1]:.3f} | {means[2]:.3f} | {diff:+.3f} ± {half:.3f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus")
    p.add_argument("--voices", default="test", choices=tuple(VOICES), help="held-out voices to use (default test)")
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the library's)")
    p.add_argument("--method", default=None, choices=("auto", "euler", "heun"))
    p.add_argument("--kappa", type=float, default=None)
    p.add_argument("--strength", type=float, default=None, help="the prior's strength (default: the library's)")
    p.add_argument("--ensemble", type=int, default=None)
    p.add_argument("--rescale", default=None, choices=scaling.MODES)
    p.add_argument("--predictors", nargs="+", default=["deepfilternet", "gtcrn", "nsnet2", "rnnoise", "convtasnet"])
    p.add_argument("--prior", default=None, help="prior that refines: a name or folder (default: the embedded one)")
    p.add_argument("--metrics", nargs="+", default=["si_sdr", "pesq", "estoi", "dnsmos"])
    p.add_argument("--plots", default=None, help="write a spectrogram PNG of the first item per predictor here")
    p.add_argument("--json", default=None, help="write all per-item scores here")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    prior = sips.load_prior(args.prior)
    length = int(args.seconds * 16000)
    sets = {}
    results = {}
    for name in args.predictors:
        label, _, extra = name.partition(":")  # e.g. nsnet2:model=48k
        kwargs = dict(kv.split("=", 1) for kv in extra.split(",") if kv)
        predictor = sips.load_predictor(label, **kwargs)
        task = "enhancement" if predictor.n_src == 1 else "separation"
        if task not in sets:
            make = enhancement_set if task == "enhancement" else separation_set
            sets[task] = make(args.corpus, args.items, length, args.voices)
        result = run_task(name, predictor, sets[task], args, prior)
        results[name] = {**result["columns"], **result["rtf"]}
        settings = ", ".join(
            f"{k} {v}" for k, v in {"prior": args.prior or "embedded", **sampler_options(args)}.items()
        )
        print(
            f"\n{task}: {name}, {args.items} items of {args.seconds:g} s on the {args.voices} voices; sips: {settings}"
        )
        print(table(name, result))
        print(", ".join(f"{k} {v:.3f}" for k, v in result["rtf"].items()), f"({torch.get_num_threads()} threads)")
        if args.plots:
            from sips.evaluation.plot import spectrograms

            spectrograms(result["example"], path=Path(args.plots) / f"{name}.png", title=f"{task}: {name}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
