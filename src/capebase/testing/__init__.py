"""Helpers for testing apps built on capebase."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


@asynccontextmanager
async def app_client(app: Any, base_url: str = "http://test") -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and yield an httpx client that calls it in-process.

    Example::

        async with app_client(app) as client:
            assert (await client.get("/todo")).status_code == 200
    """
    import httpx

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
