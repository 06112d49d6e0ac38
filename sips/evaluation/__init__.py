"""Evaluation: how good an output is, in numbers, pictures and a listening page.

Owns the metrics (SI-SDR in torch; PESQ, ESTOI, DNSMOS and NISQA as optional extras;
:mod:`.metrics`), scoring folders or files against references for ``sips eval``
(:mod:`.evaluate`), the reference-free quality meter read from the prior (:mod:`.quality`),
pictures (:mod:`.plot`) and the offline report page with its blind test (:mod:`.report`, its page
in ``report_assets/``).

May use the shared modules, :mod:`sips.prediction`, :mod:`sips.pretrained`, :mod:`sips.method`
and :mod:`sips.io`. Must not know training or the command line.
"""

from .._lazy import lazy_modules

__getattr__, __dir__ = lazy_modules(__name__, __path__)
