"""``sqlite:///:memory:``: one in-memory database shared by every connection of the app.

Regression: each pooled connection got its own empty database, so rows written on one were
missing on the next, and change-log maintenance failed. Tests written by users (and those of
capebase 0.1) use exactly this URL.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event, func, inspect, select

from capebase import AuthContext, CapeBase, ModelChange
from capebase.changes.changelog import changes
from capebase.testing import app_client
from tests.realtime._app import Task, make_app, who
from tests.realtime._live import dispatched, serve, sse, wait_until, ws

MEMORY = "sqlite+aiosqlite:///:memory:"
ALICE = AuthContext(id="alice")


async def _count(cape: Any) -> int:
    async with cape.get_privileged_session() as session:
        return int((await session.execute(select(func.count()).select_from(Task))).scalar_one())


async def test_every_connection_sees_one_database() -> None:
    """Rows written through the generated routes (driver connection), a user session and a
    privileged session are read back through each of the others, and the pool's connections
    can all be replaced without losing the database."""
    app, cape = make_app(MEMORY)
    async with app_client(app) as client:
        created = await client.post("/rt_task", json={"title": "http"}, headers=who("alice"))
        assert created.status_code == 201, created.text
        async with cape.get_session(ALICE) as session:
            session.add(Task(title="session"))
            await session.commit()
        async with cape.get_privileged_session() as session:
            session.add(Task(title="privileged", owner_id="alice"))
            await session.commit()
        # held open at once: several connections of the pool, one database
        async with cape.get_session(ALICE) as one, cape.get_privileged_session() as two:
            mine = (await one.execute(select(Task.title).order_by(Task.id))).scalars().all()
            every = (await two.execute(select(Task.title).order_by(Task.id))).scalars().all()
        assert mine == every == ["http", "session", "privileged"]
        listed = await client.get("/rt_task", headers=who("alice"))
        assert [row["title"] for row in listed.json()] == ["http", "session", "privileged"]
        one_row = await client.get(f"/rt_task/{created.json()['id']}", headers=who("alice"))
        assert one_row.status_code == 200
        assert one_row.json()["title"] == "http"

        # every connection closed (the pool's, the driver-level reader's): the data stays
        await cape.engine.dispose()
        assert cape.direct is not None
        cape.direct.close()
        assert await _count(cape) == 3
        assert (await client.get("/rt_task", headers=who("alice"))).json() == listed.json()


async def test_concurrent_writers_all_succeed() -> None:
    """Writers on several connections wait for each other (SQLite's locking, as on a file)
    instead of failing with "database table is locked"."""
    app, cape = make_app(MEMORY)
    async with app_client(app) as client:

        async def by_route(i: int) -> int:
            response = await client.post("/rt_task", json={"title": f"r{i}"}, headers=who("bob"))
            return response.status_code

        async def by_session(i: int) -> int:
            async with cape.get_session(AuthContext(id="bob")) as session:
                session.add(Task(title=f"s{i}"))
                await session.commit()
            return 201

        statuses = await asyncio.gather(
            *(by_route(i) for i in range(10)), *(by_session(i) for i in range(10))
        )
        assert statuses == [201] * 20
        assert await _count(cape) == 20


async def test_streams_handlers_and_change_log_maintenance() -> None:
    """SSE and WebSocket streams and a handler get every change; the maintenance that prunes
    the change log runs on the same database."""
    app, cape = make_app(MEMORY, retention=timedelta(milliseconds=1))
    handled: list[ModelChange[Any]] = []

    @cape.subscribe(Task)
    async def record(change: ModelChange[Any]) -> None:
        handled.append(change)

    async with serve(app) as live, sse(live, who("alice")) as by_sse, ws(
        live, who("alice")
    ) as by_ws:
        async with httpx.AsyncClient(base_url=live.url) as client:
            created = await client.post("/rt_task", json={"title": "a"}, headers=who("alice"))
            assert created.status_code == 201
            row_id = created.json()["id"]
            patched = await client.patch(
                f"/rt_task/{row_id}", json={"title": "b"}, headers=who("alice")
            )
            assert patched.status_code == 200
        async with cape.get_session(ALICE) as session:
            session.add(Task(title="c"))
            await session.commit()
        last = await dispatched(cape)
        assert last == 3
        expected = [("INSERT", "a"), ("UPDATE", "b"), ("INSERT", "c")]
        for got in (by_sse, by_ws):
            await wait_until(lambda got=got: len(got.messages) == 3, what="three stream events")
            assert [(m["event"], m["payload"]["title"]) for m in got.messages] == expected
        await wait_until(lambda: len(handled) == 3, what="three handler calls")
        assert [(c.event, c.payload.title) for c in handled] == expected

        await wait_until(_handlers_done(cape), what="the handlers' work to be recorded")
        await cape.hub.prune()
        async with cape.engine.connect() as connection:
            left = (await connection.execute(select(func.count()).select_from(changes))).scalar()
        assert left == 0


def _handlers_done(cape: Any) -> Any:
    async def done() -> bool:
        async with cape.engine.connect() as connection:
            pending = await connection.execute(
                select(func.count()).select_from(changes).where(changes.c.handlers_pending)
            )
            return pending.scalar() == 0

    return done


CANCELLED_QUERIES_WANTED = 2
MAX_STARTS = 30


async def test_queries_cancelled_at_shutdown_leave_no_lock_behind() -> None:
    """A query cancelled while SQLite runs it (shutdown cancels the hub's background work)
    leaves its statement, and so a read lock, alive until garbage collection; shutdown
    collects, so a teardown can drop the tables at once (capebase 0.1's tests do).

    Apps are started and stopped at once until shutdown has cancelled a query mid-flight
    (seen as the pool invalidating a connection) ``CANCELLED_QUERIES_WANTED`` times.
    """
    cancelled = 0
    for _ in range(MAX_STARTS):
        app = FastAPI()
        cape = CapeBase(app, MEMORY, engine_options={"connect_args": {"timeout": 0.5}})
        cape.publish(Task)
        invalidated: list[type[BaseException]] = []  # not the errors: they hold the cursors
        event.listen(
            cape.engine.sync_engine,
            "invalidate",
            lambda _c, _r, error, seen=invalidated: seen.append(type(error)),
        )
        async with app.router.lifespan_context(app):
            pass
        async with cape.engine.begin() as connection:
            await connection.run_sync(Task.metadata.drop_all)
            names = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert "rt_task" not in names
        cancelled += asyncio.CancelledError in invalidated
        if cancelled >= CANCELLED_QUERIES_WANTED:
            return
    raise AssertionError(f"only {cancelled} of {MAX_STARTS} shutdowns cancelled a query")


async def test_each_app_has_its_own_memory_database() -> None:
    """Two apps on ``:memory:`` do not share rows, as two ``:memory:`` connections would not."""
    first_app, first = make_app(MEMORY)
    second_app, second = make_app(MEMORY)
    async with app_client(first_app) as one, app_client(second_app) as two:
        created = await one.post("/rt_task", json={"title": "x"}, headers=who("a"))
        assert created.status_code == 201
        assert (await two.get("/rt_task", headers=who("a"))).json() == []
        assert await _count(first) == 1
        assert await _count(second) == 0
