"""uvicorn internals capebase relies on (bounded in the ``server`` extra).

uvicorn tells a streaming response nothing when it starts shutting down; capebase finds the
running ``uvicorn.Server`` through the SIGTERM handler it installs (its bound ``handle_exit``)
and watches its ``should_exit`` flag, as sse-starlette does.
"""

from __future__ import annotations

import signal
from typing import Any


def running_server() -> Any | None:
    """The uvicorn ``Server`` whose signal handler is installed, if any (else None: another
    server, or a uvicorn that no longer installs a bound method)."""
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    return server if hasattr(server, "should_exit") else None


def missing() -> list[str]:
    """What this uvicorn lacks of the above: ``Server.handle_exit`` and ``should_exit``."""
    try:
        import uvicorn
    except ImportError:
        return []  # not installed: nothing relies on it
    server = uvicorn.Server(uvicorn.Config(app="unused:app"))
    return [
        f"uvicorn {uvicorn.__version__}: Server.{name}"
        for name in ("handle_exit", "should_exit")
        if not hasattr(server, name)
    ]
