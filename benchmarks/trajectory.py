"""Where the prior's error arises: t-range, step size and spectral drift of the refinement (issue 21).

    python benchmarks/trajectory.py CORPUS [--items 12] [--seconds 4] [--predictors deepfilternet gtcrn oracle]
        [--steps 4] [--method heun] [--prior P] [--json F] [--threads N]

On the held-out validation voices (``sips.corpus.VALID_VOICES``; as ``sweep.py``) each
predictor's estimate is refined (rescale none) with the prior's term switched on over the whole
trajectory (``all``), over ``t < 0.5`` only (where ``gamma_dot > 0``: the prior's ``z_hat`` is
added), or over ``t >= 0.5`` only (where it is subtracted). The ``oracle`` hands in the clean
reference as the estimate. For each variant the script prints the paired change of PESQ-WB,
ESTOI, SI-SDR and DNSMOS OVRL against the estimate (mean and 95 % CI), the size of the correction
(estimate-to-correction ratio in dB: ``10 log10(|x_hat|^2 / |refined - x_hat|^2)``), and the
energy change per band (refined - estimate, dB; and estimate - reference) in 0-1, 1-4, 4-7 and
7-8 kHz: a prior that drifts toward its training data's colour (e.g. G.722's 7 kHz band limit)
shows it there. A second table gives the RMS of the prior's ``z_hat`` at every network call of the
``all`` variant (what the sampler scales by ``gamma_dot(t) dt``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench import enhancement_set, predict  # noqa: E402

import sips  # noqa: E402
from sips import metrics as M  # noqa: E402
from sips.evaluation.evaluate import score_sources  # noqa: E402

BANDS = ((0, 1000), (1000, 4000), (4000, 7000), (7000, 8000))
VARIANTS = {"all": (0.0, 1.01), "t<0.5": (0.0, 0.5), "t>=0.5": (0.5, 1.01)}
KEYS = ("pesq", "estoi", "si_sdr", "dnsmos_ovrl")


def band_energy_db(wav: torch.Tensor, rate: int = 16000) -> torch.Tensor:
    """Energy (dB) of ``wav [S]`` in each of :data:`BANDS`, from a 512-point Hann STFT."""
    spec = (
        torch.stft(
            wav.double().flatten(), 512, 128, window=torch.hann_window(512, dtype=torch.float64), return_complex=True
        )
        .abs()
        .square()
        .sum(-1)
    )
    freqs = torch.fft.rfftfreq(512, 1 / rate)
    return torch.stack([10 * torch.log10(spec[(freqs >= lo) & (freqs < hi)].sum() + 1e-12) for lo, hi in BANDS]).float()


class Gate:
    """Patches ``prior.forward``: the prior's output is zeroed for ``t`` outside ``[lo, hi)`` and the
    RMS of every call's output is recorded with its ``t``."""

    def __init__(self, prior) -> None:
        self.prior, self.forward = prior, prior.forward
        self.lo, self.hi = 0.0, 1.01
        self.calls: list[tuple[float, float]] = []
        prior.forward = self

    def __call__(self, x, t, *args, **kwargs):
        out = self.forward(x, t, *args, **kwargs)
        z = out[0] if isinstance(out, tuple) else out
        tv = float(t.flatten()[0])
        self.calls.append((tv, float(z.float().square().mean().sqrt())))
        if self.lo <= tv < self.hi:
            return out
        return (torch.zeros_like(z), *out[1:]) if isinstance(out, tuple) else torch.zeros_like(z)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus")
    p.add_argument("--items", type=int, default=12)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--predictors", nargs="+", default=["deepfilternet", "gtcrn", "oracle"])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--method", default="heun", choices=("euler", "heun"))
    p.add_argument("--prior", default=None, help="prior to study (default: the embedded one)")
    p.add_argument("--metrics", nargs="+", default=["si_sdr", "pesq", "estoi", "dnsmos"])
    p.add_argument("--json", default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    prior = sips.load_prior(args.prior)
    gate = Gate(prior)
    length = int(args.seconds * 16000)
    data = enhancement_set(args.corpus, args.items, length, "valid")
    results: dict = {}
    for name in args.predictors:
        if name == "oracle":
            estimates = [ref.clone() for _, ref in data]
        else:
            estimates = [predict(sips.load_predictor(name), mix) for mix, _ in data]
        base = [score_sources(est, ref, args.metrics) for est, (_, ref) in zip(estimates, data, strict=True)]
        keys = [k for k in KEYS if k in base[0]]
        bands = " | ".join(f"{lo // 1000}-{hi // 1000} kHz" for lo, hi in BANDS)
        print(f"\n{name}: {args.items} validation items of {args.seconds:g} s, {args.method} {args.steps} steps")
        print(f"| variant | {' | '.join('Δ' + k for k in keys)} | ECR dB | Δ energy dB: {bands} |")
        print("|---|" + "---|" * (len(keys) + 1 + len(BANDS)))
        ref_drift = torch.stack(
            [band_energy_db(est) - band_energy_db(ref) for est, (_, ref) in zip(estimates, data, strict=True)]
        ).mean(0)
        print(
            f"| estimate − reference | {' | '.join('' for _ in keys)} | | "
            + " | ".join(f"{v:+.2f}" for v in ref_drift.tolist())
            + " |"
        )
        results[name] = {"estimate_minus_reference_db": ref_drift.tolist(), "variants": {}}
        for variant, (lo, hi) in VARIANTS.items():
            gate.lo, gate.hi = lo, hi
            gate.calls = []
            rows, ecr, drift = [], [], []
            for est, (mix, ref) in zip(estimates, data, strict=True):
                out = sips.refine_estimates(
                    est, mix, prior=prior, rescale="none", steps=args.steps, method=args.method, seed=0
                )
                rows.append(score_sources(out, ref, args.metrics))
                ecr.append(10 * torch.log10(est.square().sum() / (out - est).square().sum().clamp(min=1e-20)))
                drift.append(band_energy_db(out) - band_energy_db(est))
            cells = []
            summary = {}
            for k in keys:
                diff, half = M.mean_ci([r[k] - b[k] for r, b in zip(rows, base, strict=True)])
                cells.append(f"{diff:+.3f} ± {half:.3f}")
                summary[k] = [diff, half]
            drift_mean = torch.stack(drift).mean(0)
            ecr_mean = float(torch.stack(ecr).mean())
            print(
                f"| {variant} | {' | '.join(cells)} | {ecr_mean:.1f} | "
                + " | ".join(f"{v:+.2f}" for v in drift_mean.tolist())
                + " |",
                flush=True,
            )
            results[name]["variants"][variant] = dict(summary, ecr_db=ecr_mean, drift_db=drift_mean.tolist())
            if variant == "all":
                per_t: dict[float, list[float]] = {}
                for t, rms in gate.calls:
                    per_t.setdefault(round(t, 4), []).append(rms)
                results[name]["z_hat_rms"] = {str(t): sum(v) / len(v) for t, v in sorted(per_t.items())}
        print("| t | " + " | ".join(results[name]["z_hat_rms"]) + " |")
        print("|---|" + "---|" * len(results[name]["z_hat_rms"]))
        print("| RMS z_hat | " + " | ".join(f"{v:.3f}" for v in results[name]["z_hat_rms"].values()) + " |")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
