"""Helpers for testing apps built on capebase."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ..extras import MissingExtraError

if TYPE_CHECKING:
    import httpx


@asynccontextmanager
async def app_client(app: Any, base_url: str = "http://test") -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and yield an httpx client that calls it in-process.

    Example::

        async with app_client(app) as client:
            assert (await client.get("/todo")).status_code == 200
    """
    try:
        import httpx
    except ImportError as error:
        raise MissingExtraError(
            "capebase.testing.app_client needs httpx: pip install httpx"
        ) from error

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
