"""Audio files: the file and folder layer around the method.

Owns reading and writing audio with soundfile (any file name, rate, channel count and format the
installed libsndfile reads), resampling to the prior's rate and back, finding the audio in a folder
(:mod:`.audio`), refining files and whole folders in bounded memory (:mod:`.files`) and the mixture
tag that records which input an output came from (:mod:`.provenance`). Writes are atomic through
``sips._atomic``, shared with every group that writes a file.

May use the shared modules, :mod:`sips.prediction`, :mod:`sips.pretrained` and :mod:`sips.method`.
Must not know training, evaluation or the command line: it raises ``SipsError`` sentences, and
printing them is the command's business.
"""

from .._lazy import lazy_modules

__getattr__, __dir__ = lazy_modules(__name__, __path__)
