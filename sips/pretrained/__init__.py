"""Weights and the Hub: where a prior's weights come from, and how any weights file is read.

Owns the safe reading of foreign checkpoints (``torch.load(weights_only=True)``), strict state-dict
checks and training snapshots (:mod:`.weights`, also used by the adapters), the catalog of named
priors (:mod:`.catalog`, read from the package data ``sips/catalog.json``) and downloads from and
uploads to the Hugging Face Hub (:mod:`.hub`). The embedded default prior ``sips/default_prior/``
stays package data at the top of ``sips``, where recipes and model cards name it; the prior's own
module (:mod:`sips.method.prior`) loads it.

May use the shared modules at the top of ``sips`` only. Must not know networks or priors (it moves
files and state dicts, not models), predictors, sampling, audio files, training, evaluation or the
command line.
"""

from .._lazy import lazy_modules

__getattr__, __dir__ = lazy_modules(__name__, __path__)
