"""Start the todo demo: ``python -m examples.todo`` (PORT overrides 8000)."""

from __future__ import annotations

import logging
import os

import uvicorn

from .app import app, database_url

HOST = "127.0.0.1"


def main() -> None:
    """Print where the demo lives and how to call it, then serve it until Ctrl+C."""
    port = int(os.environ.get("PORT", "8000"))
    url = f"http://{HOST}:{port}"
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    print(
        f"capebase todo demo on {url}  (database: {database_url()})\n"
        f"  API docs:      {url}/docs\n"
        f"  create a todo: curl -X POST {url}/todo -H 'X-User-Id: alice' "
        "-H 'Content-Type: application/json' -d '{\"task\": \"buy milk\"}'\n"
        f"  list todos:    curl '{url}/todo?order_by=-inserted_at'\n"
        "Demo auth: X-User-Id / X-User-Role headers are trusted as is — never deploy this.\n",
        flush=True,
    )
    uvicorn.run(app, host=HOST, port=port)


if __name__ == "__main__":
    main()
