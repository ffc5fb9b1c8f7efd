"""Noticing that the ASGI server is shutting down, so that open streams can end cleanly.

uvicorn waits for open responses to finish before it runs the lifespan shutdown, and tells
a streaming response nothing: without this, every open stream would hold shutdown up until
``--timeout-graceful-shutdown`` and then be cut off. The running ``uvicorn.Server`` is found
the way sse-starlette finds it, through the SIGTERM handler it installs (its bound
``handle_exit``); other servers run the lifespan shutdown first, which closes streams too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .._compat.uvicorn import running_server

POLL_INTERVAL = 0.25
"""Seconds between looks at the server's exit flag."""


async def on_server_exit(close_streams: Callable[[], None]) -> None:
    """Call ``close_streams`` once the server is exiting, and again at every poll after that
    (a request in flight may still open a stream); runs until cancelled."""
    while True:
        server = running_server()
        if server is not None and server.should_exit:
            close_streams()
        await asyncio.sleep(POLL_INTERVAL)
