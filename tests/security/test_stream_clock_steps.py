"""Read rules whose clock moves in steps, and resumed streams (ninth review, a03).

OWASP API Security Top 10 (2023):
- API1 Broken Object Level Authorization: a ``where=`` comparing with a clock that moves in
  steps (``Post.publish_at <= now rounded down to 10 s``, ``date.today()``) built the same
  twice in a row, so it passed for steady and a resumed stream replayed a draft's first
  title, written before publication and edited since, which REST never showed.

Now a resume token is bound to the read rule (its SQL and bound values) as built when its
stream opened: a resume after the clock stepped gets a ``reset``, a resume within the same
step replays (every change since was judged live by that same rule: a clock moves one way), and
a replay during which the clock steps ends with a reset before anything judged by the new
value is sent. Steps of several sizes and types (datetime, date, epoch seconds), a rule Python
evaluates and one only the database can, a clock the test moves and the real clock; SSE and
WebSocket, on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, CapeBase
from capebase.realtime.config import RealtimeConfig
from tests.realtime._app import header_auth, who
from tests.realtime._live import LiveServer, SSEStream, WSStream, dispatched, serve, wait_until

SECRET = "DRAFT: layoffs list"
ALICE, BOB = who("alice"), who("bob")


class Base(SQLModel, registry=registry()):
    pass


class Post(Base, table=True):
    __tablename__ = "cs_post"
    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True, max_length=36)
    title: str
    publish_at: datetime | None = None
    publish_on: date | None = None
    publish_ts: int | None = None


@dataclass(frozen=True)
class Clock:
    """A clock of one type and step: the column a rule compares it with, its reading at a
    given time (rounded down to the step), and the value a post published then holds."""

    column: str
    step: float
    reading: Callable[[float], Any]
    wire: Callable[[Any], Any]

    def at(self, t: float) -> Any:
        return self.reading(t // self.step * self.step)


def _datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


CLOCKS = {
    "datetime, 10 s": Clock("publish_at", 10, _datetime, datetime.isoformat),
    "datetime, a minute": Clock("publish_at", 60, _datetime, datetime.isoformat),
    "date.today()": Clock("publish_on", 86400, lambda t: _datetime(t).date(), date.isoformat),
    "epoch seconds, 10 s": Clock("publish_ts", 10, int, int),
    "epoch seconds, an hour": Clock("publish_ts", 3600, int, int),
}


class MovedClock:
    """The time the rule reads, which the test moves."""

    def __init__(self) -> None:
        self.now = time.time()


def make_app(db_url: str, clock: Clock, now: Callable[[], float], *, sql_only: bool = False,
             **realtime: Any) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth,
                    realtime=RealtimeConfig(**realtime))
    cape.publish(Post)
    column = getattr(Post, clock.column)

    def published(_ctx: Any) -> Any:
        # A rule only the database evaluates (Python does not evaluate coalesce).
        compared = func.coalesce(column, column) if sql_only else column
        return compared <= clock.at(now())

    cape.permission_required(Post, owner_field="owner_id", actions=["*"])
    cape.permission_required(Post, actions=["read"], where=published)
    return app, cape


async def write(client: httpx.AsyncClient, clock: Clock, title: str, t: float) -> int:
    """A post of bob's, published at ``t``."""
    body = {"title": title, clock.column: clock.wire(clock.at(t))}
    response = await client.post("/cs_post", json=body, headers=BOB)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def resumed(live: LiveServer, client: httpx.AsyncClient, clock: Clock, token: str,
                  t: float) -> list[Any]:
    """SSE and WebSocket streams resumed from ``token``, once a post published at ``t``,
    written after they opened, reached them."""
    async with AsyncExitStack() as stack:
        params = {"last_event_id": token}
        streams = [
            await stack.enter_async_context(cls(base, "/cs_post/subscribe", ALICE, params))
            for cls, base in ((SSEStream, live.url), (WSStream, live.ws_url))
        ]
        await write(client, clock, "marker", t)
        for s in streams:
            await s.wait_for_title("marker")
        return streams


@pytest.mark.parametrize("sql_only", [False, True], ids=["python", "sql"])
@pytest.mark.parametrize("name", list(CLOCKS))
async def test_a_resume_after_the_clock_stepped_is_reset(
    db_url: str, name: str, sql_only: bool
) -> None:
    clock, moved = CLOCKS[name], MovedClock()
    t0 = moved.now
    app, cape = make_app(db_url, clock, lambda: moved.now, sql_only=sql_only)
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        async with SSEStream(live.url, "/cs_post/subscribe", ALICE) as first:
            await write(client, clock, "hello", t0 - clock.step)
            await first.wait_for_title("hello")
            token = first.tokens[-1]
        # Within the same step, the resume replays (here: a post published already).
        await write(client, clock, "within the step", t0 - clock.step)
        draft = await write(client, clock, SECRET, t0 + clock.step)
        r = await client.patch(f"/cs_post/{draft}", json={"title": "Quarterly update"},
                               headers=BOB)
        assert r.status_code == 200, r.text
        await dispatched(cape)
        assert (await client.get(f"/cs_post/{draft}", headers=ALICE)).status_code == 404
        same_step = await resumed(live, client, clock, token, t0)
        # The clock steps: the draft is published, and a token from before resets.
        moved.now = t0 + clock.step
        assert (await client.get(f"/cs_post/{draft}", headers=ALICE)).json()["title"] == (
            "Quarterly update"
        )
        next_step = await resumed(live, client, clock, token, t0)
    for s in same_step:
        assert s.controls == [], s
        assert [m["payload"]["title"] for m in s.messages] == ["within the step", "marker"]
    for s in next_step:
        assert SECRET not in json.dumps(s.messages), "LEAK: the draft replayed"
        assert [c["event"] for c in s.controls] == ["reset"], s
        assert "clock" in s.controls[0]["reason"]
        assert [m["payload"]["title"] for m in s.messages] == ["marker"]


async def test_a_replay_the_clock_steps_during_is_cut_by_a_reset(db_url: str) -> None:
    """The replay judges each change by the rule as it is then: had the clock stepped after
    the first of them, the draft would be judged published. Nothing judged after the step is
    sent: the replay ends with a reset."""
    clock, moved = CLOCKS["epoch seconds, 10 s"], MovedClock()
    t0 = moved.now
    app, cape = make_app(db_url, clock, lambda: moved.now, replay_batch=1)
    real_replay = cape.hub.replay

    async def stepping(*args: Any) -> AsyncIterator[Any]:
        async for item in real_replay(*args):
            yield item
            moved.now = t0 + clock.step  # after the first replayed change

    async with serve(app) as live, httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        async with SSEStream(live.url, "/cs_post/subscribe", ALICE) as first:
            token = first.ready[0]["id"]
        await write(client, clock, "published", t0 - clock.step)
        draft = await write(client, clock, SECRET, t0 + clock.step)
        await client.patch(f"/cs_post/{draft}", json={"title": "Quarterly update"}, headers=BOB)
        await dispatched(cape)
        cape.hub.replay = stepping  # type: ignore[method-assign]  # the clock, not the replay
        streams = await resumed(live, client, clock, token, t0)
    for s in streams:
        assert SECRET not in json.dumps(s.messages), "LEAK: the draft replayed"
        assert [c["event"] for c in s.controls] == ["reset"], s
        assert [m["payload"]["title"] for m in s.messages] == ["marker"]
    # The clock stays stepped: a stream resumed after another's replay moved it is reset at
    # its start instead (no replay at all); the first is always cut during its replay.
    reasons = [s.controls[0]["reason"] for s in streams]
    assert any("during the replay" in reason for reason in reasons), reasons


@pytest.mark.parametrize("step", [1, 2])
async def test_the_real_clock_in_steps(db_url: str, step: int) -> None:
    """The review's attack with the real clock: ``now`` rounded down to ``step`` seconds,
    the resume early in a later step (both builds of the rule then agree)."""
    clock = Clock("publish_at", step, _datetime, datetime.isoformat)
    app, cape = make_app(db_url, clock, time.time)
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        async with SSEStream(live.url, "/cs_post/subscribe", ALICE) as first:
            token = first.ready[0]["id"]
        draft = await write(client, clock, SECRET, time.time() + step)
        await client.patch(f"/cs_post/{draft}", json={"title": "Quarterly update"}, headers=BOB)
        await dispatched(cape)

        async def visible() -> bool:
            answer = await client.get(f"/cs_post/{draft}", headers=ALICE)
            return answer.status_code == 200

        await wait_until(visible, within=step + 5, what="publication")
        into_step = time.time() % step
        if into_step > step / 2:
            await asyncio.sleep(step - into_step)  # early in a step
        streams = await resumed(live, client, clock, token, time.time() - step)
    for s in streams:
        assert SECRET not in json.dumps(s.messages), "LEAK: the draft replayed"
        assert [c["event"] for c in s.controls] == ["reset"], s
