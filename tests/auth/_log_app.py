"""An app for ``uvicorn tests.auth._log_app:app``: the built-in auth on ``$CAPEBASE_LOG_DB``."""

from __future__ import annotations

import os

from tests.auth._support import make_app

app = make_app(os.environ["CAPEBASE_LOG_DB"]).app
