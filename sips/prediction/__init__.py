"""Prediction: what hands the method an estimate to refine.

Owns the ``Predictor`` protocol, the adapter registry and the wrapping of plain models
(:mod:`.predictors`), the weights-free Wiener enhancer registered as ``"wiener"`` (:mod:`.wiener`),
the sample rates and bands where a recording, a predictor and the prior meet, with the resampler
the audio files use too (:mod:`.bands`), and the reading of a predictor's settings file shared by
the adapters (:mod:`.configfile`).

May use the shared modules at the top of ``sips`` only. Must not know priors, weights of priors or
the Hub (:mod:`sips.pretrained`), sampling, audio files, training, evaluation or the command line.
An adapter needs no more than this group, the shared modules (``sips.errors``, ``sips.arrays``) and
:mod:`sips.pretrained.weights` for its checkpoints.
"""

from .._lazy import lazy_modules

__getattr__, __dir__ = lazy_modules(__name__, __path__)
