"""Entry point of ``python -m capebase.cli`` (the ``capebase`` command)."""

import sys

from . import main

sys.exit(main())
