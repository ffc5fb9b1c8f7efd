"""Noticing that a stream's client left: ASGI says so only through ``receive()``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.types import Receive


def watch_disconnect(
    receive: Receive, on_disconnect: Callable[[], None], disconnect_type: str
) -> asyncio.Task[None]:
    """A task that calls ``on_disconnect`` once ``receive()`` gives ``disconnect_type``
    (or fails); cancel it when the stream ends first."""
    return asyncio.create_task(_watch(receive, on_disconnect, disconnect_type))


async def _watch(receive: Receive, on_disconnect: Callable[[], None], disconnect_type: str) -> None:
    with contextlib.suppress(Exception):
        while (await receive())["type"] != disconnect_type:
            pass
    on_disconnect()


async def stop_watching(watcher: asyncio.Task[None]) -> None:
    """Cancel ``watcher`` and wait for it, so that no task outlives its stream."""
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
