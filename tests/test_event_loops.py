"""One app started again in a new event loop works as in the first: pytest-asyncio gives every
test a loop of its own, and a module-level ``cape = CapeBase(...)`` (the Quick start's) serves
them all. asyncio's events, queues and semaphores belong to the loop that first waits on them,
so each start makes its own (before, the second loop's dispatcher failed with "bound to a
different event loop", handlers stopped and sign-ins could fail)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from capebase import CapeBase
from capebase.auth.builtin import PasswordAuth
from tests.auth._support import FAST_HASH, SECRET, Memo, bearer, signed_up
from tests.realtime._live import SSEStream, serve, wait_until

LOOPS = 3


def build(db_url: str, broker: str) -> tuple[FastAPI, CapeBase, list[str]]:
    app = FastAPI()
    cape = CapeBase(
        app=app, db_url=db_url, broker=broker,
        auth=PasswordAuth(secret=SECRET, password_hash=FAST_HASH),
    )
    cape.publish(Memo)
    cape.permission_required(Memo, owner_field="owner_id", actions=["read", "create"])
    handled: list[str] = []

    @cape.subscribe(Memo)
    async def record(change: Any) -> None:
        handled.append(change.payload.text)

    return app, cape, handled


async def one_run(app: FastAPI, cape: CapeBase, handled: list[str], run: int) -> None:
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url) as client:
        tokens = await signed_up(client, f"user{run}@example.com")  # hashes on this loop
        headers = bearer(tokens["access_token"])
        async with SSEStream(live.url, "/auth_memo/subscribe", headers) as seen:
            await wait_until(lambda: seen.ready, what="the stream's ready event")
            created = await client.post("/auth_memo", json={"text": f"rest {run}"}, headers=headers)
            assert created.status_code == 201, created.text
            await wait_until(
                lambda: any(m["payload"]["text"] == f"rest {run}" for m in seen.messages),
                what=f"the stream's event of run {run}",
            )
        async with cape.get_privileged_session() as session:
            session.add(Memo(owner_id="someone", text=f"session {run}"))
            await session.commit()
        await wait_until(
            lambda: {f"rest {run}", f"session {run}"} <= set(handled),
            what=f"the handler calls of run {run}",
        )


@pytest.mark.parametrize("broker", ["memory", "redis"])
def test_an_app_serves_one_event_loop_after_another(
    db_url: str, broker: str, redis_url: str
) -> None:
    app, cape, handled = build(db_url, "memory://" if broker == "memory" else redis_url)
    for run in range(LOOPS):
        asyncio.run(one_run(app, cape, handled, run))
    assert sorted(handled) == sorted(
        f"{kind} {run}" for run in range(LOOPS) for kind in ("rest", "session")
    )
