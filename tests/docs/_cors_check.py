"""Run in a folder holding the quick start's ``app.py`` with a CORS middleware block: checks the
answers a browser on ``ORIGIN`` gets (``python -m tests.docs._cors_check ORIGIN``).

A subprocess, because each app module defines SQLModel tables (``todo``) that must not meet
the suite's own in one process."""

from __future__ import annotations

import asyncio
import sys

from capebase.testing import app_client

ALICE = {"Authorization": "Bearer alice-token"}


async def check(origin: str) -> None:
    from app import app  # type: ignore[import-not-found]  # the folder's app.py

    async with app_client(app) as client:
        preflight = await client.options("/todo", headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,last-event-id",
        })
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == origin
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "last-event-id"} <= set(allowed.split(", "))

        await client.post("/todo", json={"task": "t"}, headers=ALICE)
        listed = await client.get("/todo?count=true&limit=1", headers={"Origin": origin})
        assert listed.headers["access-control-allow-origin"] == origin
        assert "X-Total-Count" in listed.headers["access-control-expose-headers"]
        assert listed.headers["x-total-count"] == "1"

        stranger = await client.get("/todo", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers

        too_big = await client.post("/todo", content=b"x" * (2 << 20), headers={
            "Origin": origin, "Content-Type": "application/json", **ALICE})
        assert too_big.status_code == 413
        assert too_big.headers["access-control-allow-origin"] == origin


if __name__ == "__main__":
    asyncio.run(check(sys.argv[1]))
