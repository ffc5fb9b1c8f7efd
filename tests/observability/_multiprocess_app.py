"""The app the multiprocess test serves with ``uvicorn --workers 2`` (database from the env)."""

from __future__ import annotations

import os

from tests.observability._app import make_app

app, cape = make_app(os.environ["CAPEBASE_OBS_TEST_DB"], metrics=True, create_tables=False)
