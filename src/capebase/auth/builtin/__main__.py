"""Entry point of ``python -m capebase.auth.builtin``."""

import sys

from .cli import main

sys.exit(main())
