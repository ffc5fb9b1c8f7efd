"""A delivery the database interrupts, and its retry (ninth review of issue 16).

The dispatcher offers each change to its subscribers one after another; when the connection
a read rule runs on is lost, it retries the change. It offered the change again to every
subscriber it had reached before the loss (a stream got change ids [2, 2, 2, 2]), against
"each subscriber has every change it may see, exactly once"; and a late commit (a change
whose id was skipped, delivered when it commits) interrupted that way was never retried: the
subscribers after the loss never got it.

Here the database kills the dispatcher's connection while a rule runs on it, at chosen
judgments: the second and third of a change, and the second of a late commit. Every stream
then has every change exactly once, and other tables' streams carry on. PostgreSQL and
MariaDB: an SQLite connection cannot be killed from outside, and SQLite's writers, one at a
time, never commit late.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncmy  # type: ignore[import-untyped]
import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Sequence, Text, case, cast, func
from sqlalchemy.engine import make_url
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase
from capebase.realtime.config import RealtimeConfig
from tests.realtime._app import header_auth, who
from tests.realtime._live import SSEStream, WSStream, serve, wait_until

JUDGED = 4
"""Callers whose read rule runs in the database, one stream each: one statement each per
change, plus one for the judgment a kill interrupted."""
KILLED_AT = (2, 8, 16)
"""The rule's evaluations (counted by a sequence) whose connection the database kills:
change 1's second judgment (#1-#5), change 2's third (#6-#10), then after change 3 (#11-#14)
the late commit's second (#15-#18)."""
SEQUENCE = Sequence("sf_judgments")


class Base(SQLModel, registry=registry()):
    pass


class Doc(Base, table=True):
    __tablename__ = "sf_doc"
    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(max_length=36)
    title: str = Field(max_length=40)


class Note(Base, table=True):
    __tablename__ = "sf_note"
    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(max_length=36)
    body: str = Field(max_length=40)


def stalling_rule(dialect: str) -> Any:
    """A read rule the database judges, which stalls at the evaluations in KILLED_AT (until
    the killer ends its connection) and passes every row."""
    seconds = case((SEQUENCE.next_value().in_(KILLED_AT), 60), else_=0)
    if dialect == "postgresql":
        return lambda ctx: cast(func.pg_sleep(seconds), Text) == ""
    return lambda ctx: func.sleep(seconds) == 0


@contextlib.asynccontextmanager
async def killer(db_url: str) -> AsyncIterator[list[int]]:
    """Kill every connection of ``db_url``'s database whose statement sleeps, from a
    connection of its own, while the block runs; yields the list of those killed."""
    url = make_url(db_url)
    killed: list[int] = []
    if url.get_backend_name() == "postgresql":
        admin = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, database=url.database
        )

        async def sleeping() -> list[int]:
            rows = await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()"
            )
            return [row["pid"] for row in rows]

        async def kill(pid: int) -> None:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)

        close: Any = admin.close
    else:
        maria = await asyncmy.connect(
            host=url.host, port=url.port, user=url.username, password="", db=url.database,
            autocommit=True,
        )

        async def sleeping() -> list[int]:
            async with maria.cursor() as cursor:
                await cursor.execute(
                    "SELECT id FROM information_schema.processlist WHERE db = DATABASE() "
                    "AND state = 'User sleep' AND id <> CONNECTION_ID()"
                )
                return [row[0] for row in await cursor.fetchall()]

        async def kill(pid: int) -> None:
            async with maria.cursor() as cursor:
                with contextlib.suppress(asyncmy.errors.OperationalError):  # ended meanwhile
                    await cursor.execute(f"KILL CONNECTION {int(pid)}")

        async def close() -> None:
            maria.close()

    async def run() -> None:
        while True:
            for pid in await sleeping():
                await kill(pid)
                killed.append(pid)
            await asyncio.sleep(0.02)

    task = asyncio.create_task(run())
    try:
        yield killed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await close()


def make_app(db_url: str, dialect: str) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth,
                    realtime=RealtimeConfig(poll_interval=0.2))
    cape.publish(Doc)
    cape.publish(Note)
    cape.permission_required(Doc, owner_field="owner_id", actions=["create"])
    cape.permission_required(Doc, role="judged", actions=["read"], where=stalling_rule(dialect))
    cape.permission_required(Note, owner_field="owner_id", actions=["*"])
    return app, cape


async def test_an_interrupted_delivery_reaches_every_stream_exactly_once(
    db_url: str, db_kind: str
) -> None:
    if db_kind == "sqlite":
        pytest.skip("an SQLite connection cannot be killed from outside")
    app, cape = make_app(db_url, db_kind)
    alice = who("alice")
    async with serve(app) as live, contextlib.AsyncExitStack() as stack:
        async with cape.engine.begin() as connection:
            await connection.run_sync(lambda c: SEQUENCE.create(c))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=live.url))
        judged = [
            await stack.enter_async_context(
                SSEStream(live.url, "/sf_doc/subscribe", who(f"j{i}", role="judged"))
                if i % 2 == 0
                else WSStream(live.ws_url, "/sf_doc/subscribe", who(f"j{i}", role="judged"))
            )
            for i in range(JUDGED)
        ]
        notes = [
            await stack.enter_async_context(SSEStream(live.url, "/sf_note/subscribe", alice)),
            await stack.enter_async_context(WSStream(live.ws_url, "/sf_note/subscribe", alice)),
        ]
        killed = await stack.enter_async_context(killer(db_url))

        async def everyone_has(title: str) -> None:
            for got in judged:
                await got.wait_for_title(title, within=10)

        for title in ("c1", "c2"):
            response = await client.post("/sf_doc", json={"title": title}, headers=alice)
            assert response.status_code == 201, response.text
            await everyone_has(title)
        response = await client.post("/sf_note", json={"body": "n1"}, headers=alice)
        assert response.status_code == 201, response.text
        # A late commit: "late" takes its change id, "early" commits after it and first.
        async with cape.get_session(AuthContext(id="writer")) as late:
            late.add(Doc(title="late"))
            await late.flush()
            async with cape.get_session(AuthContext(id="writer")) as early:
                early.add(Doc(title="early"))
                await early.commit()
            await everyone_has("early")
            await late.commit()
        await everyone_has("late")
        for got in notes:
            await wait_until(lambda got=got: got.messages, what=f"the note: {got}")
        await wait_until(lambda: len(killed) == len(KILLED_AT), what=f"kills: {killed}")
    titles = ["c1", "c2", "early", "late"]
    for got in judged:
        assert [title for _event, title in got.titles()] == titles, got
        assert len(set(got.ids)) == len(got.ids) == len(titles), got
        assert got.controls == [], got
    for got in notes:
        assert [m["payload"]["body"] for m in got.messages] == ["n1"], got
