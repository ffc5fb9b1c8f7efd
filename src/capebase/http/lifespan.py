"""How ``CapeBase`` hooks into the FastAPI app: its start-up and shutdown around the app's own
lifespan, and its generated routes after the app's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI


def install_lifespan(
    app: FastAPI, startup: Callable[[], Awaitable[None]], shutdown: Callable[[], Awaitable[None]]
) -> None:
    """Run ``startup`` before the app's own lifespan and ``shutdown`` after it."""
    user_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        await startup()
        try:
            async with user_lifespan(app) as state:
                yield state
        finally:
            await shutdown()

    app.router.lifespan_context = lifespan


def move_routes_last(app: FastAPI, generated: Iterable[Any]) -> None:
    """Keep generated routes after the user's, so ``/todo/filter`` is never shadowed by
    ``/todo/{id}`` whichever was declared first."""
    ids = {id(route) for route in generated}
    routes = app.router.routes
    routes[:] = [r for r in routes if id(r) not in ids] + [r for r in routes if id(r) in ids]
