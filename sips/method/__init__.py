"""The method (DESIGN §1): a mixture and a predictor's estimate in, the refined estimate out, as tensors.

Owns the spectral representation the prior works in (:mod:`.spectral`), the interpolant and its
time grids (:mod:`.interpolant`), the samplers (:mod:`.sampler`), the prior networks
(:mod:`.nets`), :class:`~sips.method.prior.ScorePrior` with its configuration, saving and loading
(:mod:`.prior`, which also finds the embedded prior ``sips/default_prior/``), bringing estimates to
the mixture's scale (:mod:`.scaling`), the windows of long audio (:mod:`.chunks`) and the
tensor-level entry points ``refine``, ``refine_estimates`` and ``refine_stream`` (:mod:`.refine`).

May use the shared modules at the top of ``sips`` (``errors``, ``defaults``, ``checks``,
``arrays``, ``_atomic``), :mod:`sips.prediction` (the predictor it refines) and
:mod:`sips.pretrained` (where a prior's weights come from). Must not know audio files
(:mod:`sips.io`), training, evaluation or the command line: it sees tensors, never paths of audio.
"""

from .._lazy import lazy_modules

__getattr__, __dir__ = lazy_modules(__name__, __path__)
