"""Stream lifecycles: connect/disconnect leaves nothing behind, heartbeats on idle streams,
shutdown ends streams cleanly."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from capebase import AuthContext, CapeBase
from capebase.realtime.subscribers import Subscriber
from tests._databases import DbKind
from tests.realtime._app import Task, make_app, who
from tests.realtime._live import LiveServer, serve, sse, wait_until, ws

CYCLES: dict[DbKind, int] = {"sqlite": 1000, "postgresql": 100, "mariadb": 100}
CONCURRENCY = 10


async def sse_cycle(client: httpx.AsyncClient, number: int) -> None:
    """Open an SSE stream (the server has subscribed it once headers arrive), then drop it."""
    variants = [
        ({}, {}),
        (who("alice"), {"is_complete": "true"}),
        ({**who("root", role="admin"), "Last-Event-ID": "0"}, {}),
        (who("carol", org="o1"), {"id__in": "1,2", "last_event_id": "1"}),
    ]
    headers, params = variants[number % len(variants)]
    async with client.stream("GET", "/rt_task/subscribe", headers=headers, params=params) as r:
        assert r.status_code == 200


async def ws_cycle(live: LiveServer, number: int) -> None:
    variants = [
        ({}, ""),
        (who("alice"), "?is_complete=true"),
        ({**who("root", role="admin"), "Last-Event-ID": "0"}, ""),
        (who("dave", clearance=2), "?last_event_id=1"),
    ]
    headers, query = variants[number % len(variants)]
    async with ws_connect(
        f"{live.ws_url}/rt_task/subscribe{query}", additional_headers=headers, proxy=None
    ):
        pass


def live_subscribers() -> int:
    gc.collect()
    return sum(isinstance(o, Subscriber) for o in gc.get_objects())


async def quiet(live: LiveServer, cape: CapeBase) -> None:
    """Wait until the server has no connection and the hub no subscriber."""
    await wait_until(
        lambda: not live.server.server_state.connections and cape.hub.subscriber_count == 0,
        what="every connection and subscription to end",
    )


async def test_connect_disconnect_cycles_leave_nothing_behind(db_url: str, db_kind: DbKind) -> None:
    """Also pins a bug: an SSE client leaving during its replay got the replay cancelled again
    and again (anyio), so SQLAlchemy terminated the aiosqlite connection and left a task
    pending forever, one per such disconnect."""
    app, cape = make_app(db_url)
    cycles = CYCLES[db_kind]
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        async with cape.get_privileged_session() as session:
            session.add_all([Task(title="a", owner_id="alice"), Task(title="b", owner_id="bob")])
            await session.commit()
        # Warm up, so what starts on first use is counted in the baseline.
        await sse_cycle(client, 0)
        await ws_cycle(live, 0)
        await quiet(live, cape)
        baseline = len(asyncio.all_tasks())

        async def worker(offset: int) -> None:
            for number in range(offset, cycles, CONCURRENCY):
                if number % 2:
                    await ws_cycle(live, number // 2)
                else:
                    await sse_cycle(client, number // 2)
                if number % 100 == 0:  # some traffic while streams come and go
                    async with cape.get_session(AuthContext(id="alice")) as session:
                        session.add(Task(title=f"during {number}"))
                        await session.commit()

        await asyncio.gather(*(worker(offset) for offset in range(CONCURRENCY)))
        await quiet(live, cape)
        await wait_until(
            lambda: len(asyncio.all_tasks()) <= baseline, what="per-stream tasks to end"
        )
        assert len(asyncio.all_tasks()) == baseline
        # The dispatcher polls the log every second: wait out a poll that holds a connection.
        pool: Any = cape.engine.pool  # a QueuePool
        await wait_until(lambda: pool.checkedout() == 0, what="every connection to return")
        assert live_subscribers() == 0, "no subscriber (nor its queue) is left in memory"


async def test_idle_streams_get_heartbeats(db_url: str) -> None:
    app, cape = make_app(db_url, heartbeat=0.1)
    async with (
        serve(app) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
        client.stream("GET", "/rt_task/subscribe", headers=who("alice")) as response,
        ws_connect(
            f"{live.ws_url}/rt_task/subscribe", proxy=None, additional_headers=who("alice")
        ) as websocket,
    ):
        comments = 0
        async with asyncio.timeout(5):
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    comments += 1
                    if comments == 1:  # a change in between does not stop them
                        async with cape.get_session(AuthContext(id="alice")) as session:
                            session.add(Task(title="one"))
                            await session.commit()
                    if comments == 3:
                        break
        received = []
        async with asyncio.timeout(5):
            while [m["event"] for m in received].count("heartbeat") < 3:
                received.append(json.loads(await websocket.recv()))
    assert comments == 3
    assert received[0]["event"] == "ready"
    assert {m["event"] for m in received[1:]} == {"heartbeat", "INSERT"}


async def test_shutdown_ends_open_streams_cleanly(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, cape = make_app(db_url)
    async with (
        serve(app) as live,
        sse(live, who("alice")) as over_sse,
        ws(live, who("alice")) as over_ws,
    ):
        async with cape.get_session(AuthContext(id="alice")) as session:
            session.add(Task(title="before"))
            await session.commit()
        await over_sse.wait_for_title("before")
        await over_ws.wait_for_title("before")
        await live.stop()  # as on SIGTERM
        await asyncio.wait_for(over_sse.ended.wait(), 5)
        await asyncio.wait_for(over_ws.ended.wait(), 5)
    assert over_sse.error is None, "the SSE response ended properly, not cut off"
    assert over_ws.error is None and over_ws.close_code in (1001, 1012)
    assert cape.hub.subscriber_count == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_streams_beyond_max_subscriptions_are_refused(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url, max_subscriptions=1)
    async with serve(app) as live, sse(live, who("alice")) as first:
        async with sse(live, who("bob")) as over_sse, ws(live, who("bob")) as over_ws:
            await over_sse.ended.wait()
            await over_ws.ended.wait()
        assert first.status == 200 and cape.hub.subscriber_count == 1
    assert over_sse.status == 429
    assert over_ws.status == 101 and over_ws.close_code == 1013  # try again later
