"""Start the todo demo: ``python -m examples.todo`` (PORT overrides 8000, HOST 127.0.0.1)."""

from __future__ import annotations

import logging
import os

import uvicorn

from .app import DEMO_ACCOUNTS, SECRET_IS_GENERATED, SECRET_VARIABLE, app, database_url


def banner(url: str) -> str:
    """What the demo prints at start: where it lives and how to sign in."""
    accounts = "\n".join(
        f"    {username:<6} password: {password}" for username, password in DEMO_ACCOUNTS
    )
    secret = (
        f"Token secret: a development secret generated for this run (set {SECRET_VARIABLE} "
        "to keep sign-ins across restarts)."
        if SECRET_IS_GENERATED
        else f"Token secret: from ${SECRET_VARIABLE}."
    )
    return (
        f"capebase todo demo: open {url}/  (database: {database_url()})\n"
        f"  demo accounts (sign in with the name or <name>@example.com):\n{accounts}\n"
        f"  API docs: {url}/docs\n"
        f"  {secret}\n"
        "  Open the page in two browser windows (one private) as alice and as bob.\n"
    )


def main() -> None:
    """Print where the demo lives and its accounts, then serve it until Ctrl+C."""
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    print(banner(f"http://{host}:{port}"), flush=True)
    # A short keep-alive grace at shutdown: open event streams end by themselves and the
    # page resumes them when the server is back.
    uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
