"""The sampler's default settings, in one light module (no torch import), shared by
:func:`sips.refine`, :func:`sips.refine_estimates`, the file layer and the CLI.

Chosen by measurement on the held-out validation voices with the embedded prior
(``benchmarks/sweep.py``; docs/benchmarks.md, "Choosing the defaults"): Heun's method with 4 steps (6 network
calls) gave the best DNSMOS OVRL and PESQ of the settings within the speed goal (refine RTF <= 0.5
on 2 CPU threads). The published system used 15 Euler steps (14 calls) with kappa 0; pass
``steps=15, method="euler"`` (CLI: ``--steps 15 --method euler``) to reproduce it.
"""

STEPS = 4
METHOD = "auto"  # Heun for kappa = 0, Euler-Maruyama for kappa > 0 (sips.sampler.resolve_method)
KAPPA = 0.0
STRENGTH = 1.0  # the prior's correction at full weight (the published method)
ENSEMBLE = 1
RESCALE = "auto"
RESCALE_MODES = ("auto", "none", "gain")

SAMPLER = {
    "steps": STEPS,
    "method": METHOD,
    "kappa": KAPPA,
    "strength": STRENGTH,
    "ensemble": ENSEMBLE,
    "rescale": RESCALE,
}

#: Enhancers ranked by measurement on the held-out test voices (docs/benchmarks.md: DNSMOS OVRL,
#: PESQ-WB and ESTOI alone and refined); ``sips refine`` without ``--predictor`` uses the first
#: one installed. ``wiener`` ships with the core, so the list always ends with an installed one.
PREDICTORS = ("deepfilternet", "gtcrn", "nsnet2", "rnnoise", "wiener")
