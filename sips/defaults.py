"""The sampler's default settings, in one light module (no torch import), shared by
:func:`sips.refine`, :func:`sips.refine_estimates`, the file layer and the CLI.

Chosen by measurement on the validation voices (README, "Choosing the defaults"); the
published system used 15 Euler steps with kappa 0.
"""

STEPS = 15
METHOD = "euler"
KAPPA = 0.0
ENSEMBLE = 1
RESCALE = "auto"
RESCALE_MODES = ("auto", "none", "gain")

SAMPLER = {"steps": STEPS, "method": METHOD, "kappa": KAPPA, "ensemble": ENSEMBLE, "rescale": RESCALE}
