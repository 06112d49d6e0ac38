"""``python -m sips``: the ``sips`` command (:func:`sips.cli.main`), for environments without the script."""

import sys

from .cli import main

sys.exit(main())
