"""Training: clean-speech priors, and the predictors of the adapters' recipes.

Owns the corpus (clean speech and noise crops, noisy and two-speaker mixtures, the split of voices;
:mod:`.corpus`), voice-widening augmentation (:mod:`.augment`), step-indexed batches made in the
loop or by worker processes (:mod:`.batches`), the small resumable fit loop of predictor recipes
(:mod:`.fit`) and prior training with EMA, checkpoints, resume and ``torch.distributed``
(:mod:`.train`).

May use the shared modules, :mod:`sips.prediction`, :mod:`sips.pretrained` (snapshots),
:mod:`sips.method` (the prior, the training corruption, the encoder) and :mod:`sips.io` (reading
the corpus). Must not know evaluation or the command line.
"""

from .._lazy import lazy_modules

__getattr__, __dir__ = lazy_modules(__name__, __path__)
