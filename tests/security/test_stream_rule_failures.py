"""A read rule that fails for one caller (seventh and ninth reviews of issue 16).

OWASP API Security Top 10 (2023):
- API4 Unrestricted Resource Consumption: delivery checked each change against its
  subscribers one after another, and one whose rule raised (a "my team" scalar subquery that
  returns two rows once its caller joins two teams) ended the change's delivery: the
  subscribers after it never got it, and the dispatcher waited a second per change, for
  everyone, for as long as that caller kept a stream open.

Now that subscriber's stream ends ("unavailable", resume later) and the others get every
change. PostgreSQL and MariaDB, where such a subquery fails; SQLite takes its first row.

Ninth review:
- API4 again: an error whose text quoted a row's "not connected" (MariaDB) or "connection
  closed" (SQLite) was taken for a lost connection, and the dispatcher retried the change
  forever: every stream stalled. Now the connection itself is asked (tests/db/
  test_disconnects.py); the rule's stream ends, as on PostgreSQL.
- API4 again: only a database error was caught. A ``where=`` that raised in Python for one
  caller's context (``int(ctx.context[...])`` of a claim that is not a number,
  ``uuid.UUID(ctx.id)``, a ``where=`` returning None) escaped the dispatcher, which retried
  the change once a second for as long as that caller's stream stayed open: no stream of any
  table got anything. Now any exception ends that caller's stream alone, on every database.
- A resumed stream whose replay met a rule failing in the database with an error that is not
  about reaching it (PostgreSQL's DataError) was cut mid-response (SSE: "response already
  started", WebSocket: no close code); so was one whose rule raised in Python. Both now end
  with ``unavailable`` / 1013 and a token to resume from.
"""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import BigInteger, Column, func, literal, select
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase
from capebase.http.streams.stream import RULE_FAILED
from tests.realtime._app import header_auth, who
from tests.realtime._live import Recorded, SSEStream, WSStream, dispatched, serve, wait_until

DOCS = 5
HONEST = 4
TRY_AGAIN_LATER = 1013


class Base(SQLModel, registry=registry()):
    pass


class Doc(Base, table=True):
    __tablename__ = "rf_doc"
    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True, max_length=36)
    team_id: int = 0
    title: str = ""


class Note(Base, table=True):
    __tablename__ = "rf_note"
    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True, max_length=36)
    body: str = ""


class Quota(Base, table=True):
    __tablename__ = "rf_quota"
    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(max_length=36)
    title: str = Field(max_length=60)
    quota: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class Member(Base, table=True):
    __tablename__ = "rf_member"
    id: int | None = Field(default=None, primary_key=True)
    user_id: FROM_AUTH_ID = Field(index=True, max_length=36)
    team_id: int


def my_team(ctx: AuthContext) -> Any:
    return Doc.team_id == select(Member.team_id).where(Member.user_id == ctx.id).scalar_subquery()


def make_app(db_url: str) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    cape.publish(Doc)
    cape.publish(Member)
    cape.permission_required(Doc, owner_field="owner_id", actions=["*"])
    cape.permission_required(Doc, actions=["read"], where=my_team)
    cape.permission_required(Member, owner_field="user_id", actions=["*"])
    return app, cape


async def test_a_rule_failing_for_one_caller_ends_only_that_callers_streams(
    db_url: str,
) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite takes a scalar subquery's first row: the rule does not fail")
    app, cape = make_app(db_url)
    mallory, alice = who("mallory"), who("alice")
    async with serve(app) as live, AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=live.url))
        for team in (1, 2):  # her "my team" subquery now returns two rows
            response = await client.post("/rf_member", json={"team_id": team}, headers=mallory)
            assert response.status_code == 201
        # mallory's streams come first in the hub, alice's after them.
        failing = [
            await stack.enter_async_context(stream)
            for stream in (
                SSEStream(live.url, "/rf_doc/subscribe", mallory, {}),
                WSStream(live.ws_url, "/rf_doc/subscribe", mallory, {}),
            )
        ]
        honest = [
            await stack.enter_async_context(
                SSEStream(live.url, "/rf_doc/subscribe", alice, {}) if i % 2
                else WSStream(live.ws_url, "/rf_doc/subscribe", alice, {})
            )
            for i in range(HONEST)
        ]
        for i in range(DOCS):
            body = {"title": f"d{i}", "team_id": 1}
            assert (await client.post("/rf_doc", json=body, headers=alice)).status_code == 201
        await dispatched(cape)
        for got in honest:
            await wait_until(lambda got=got: len(got.messages) == DOCS, what=f"{DOCS}: {got}")
        for got in failing:
            await wait_until(got.ended.is_set, what=f"mallory's stream to end: {got}")
    sse, ws = failing
    assert [c["event"] for c in sse.controls] == ["unavailable"], sse
    assert ws.close_code == TRY_AGAIN_LATER, ws
    assert sse.messages == ws.messages == []


# -- rules that raise in Python --------------------------------------------------------------

BOB = str(uuid.UUID(int=7))


def by_team(ctx: AuthContext) -> Any:
    return Doc.team_id == int(ctx.context["org_id"])  # ValueError for org "one"


def by_uuid(ctx: AuthContext) -> Any:
    return Doc.title != str(uuid.UUID(str(ctx.id)))  # ValueError for an id that is not one


def none_for_m3(ctx: AuthContext) -> Any:
    return None if ctx.id == "m3" else Doc.team_id == 1  # ConfigurationError for m3


RAISING = {"team": by_team, "uuid": by_uuid, "none": none_for_m3}
HONEST_CALLERS = [who("alice", role="team", org="1"), who(BOB, role="uuid"),
                  who("carol", role="none")]
RAISING_CALLERS = [who("m1", role="team", org="one"), who("m2", role="uuid"),
                   who("m3", role="none")]


def make_raising_app(db_url: str) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    cape.publish(Doc)
    cape.publish(Note)
    cape.permission_required(Doc, owner_field="owner_id", actions=["create"])
    for role, rule in RAISING.items():
        cape.permission_required(Doc, role=role, actions=["read"], where=rule)
    cape.permission_required(Note, owner_field="owner_id", actions=["*"])
    return app, cape


def both(live: Any, headers: dict[str, str], table: str = "rf_doc", **params: str) -> list[Any]:
    """An SSE and a WebSocket stream of ``table`` as ``headers``' caller."""
    path = f"/{table}/subscribe"
    return [
        SSEStream(live.url, path, headers, params), WSStream(live.ws_url, path, headers, params)
    ]


def ended_unavailable(got: Recorded) -> str:
    """Check that ``got`` ended with the rule's ``unavailable`` (WebSocket: then 1013) and
    nothing else; return its resume token."""
    assert got.messages == [], got
    assert [c["event"] for c in got.controls] == ["unavailable"], got
    assert got.controls[0]["reason"] == RULE_FAILED, got
    assert got.close_code in (None, TRY_AGAIN_LATER) and (got.status == 200) == (
        got.close_code is None
    ), got
    token: str = got.controls[0]["resume"]
    assert token, got  # where to resume from, even before a first change
    return token


async def test_a_where_that_raises_for_one_caller_ends_only_that_callers_streams(
    db_url: str,
) -> None:
    app, cape = make_raising_app(db_url)
    writer = who("writer")
    async with serve(app) as live, AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=live.url))

        async def opened(streams: list[Any]) -> list[Recorded]:
            return [await stack.enter_async_context(stream) for stream in streams]

        failing = await opened([s for h in RAISING_CALLERS for s in both(live, h)])
        honest = await opened([s for h in HONEST_CALLERS for s in both(live, h)])
        notes = await opened(both(live, writer, "rf_note"))
        titles = []
        for i in range(3):
            titles.append(f"d{i}")
            r = await client.post("/rf_doc", json={"title": f"d{i}", "team_id": 1}, headers=writer)
            assert r.status_code == 201, r.text
            r = await client.post("/rf_note", json={"body": f"n{i}"}, headers=writer)
            assert r.status_code == 201, r.text
        for got in failing:
            await wait_until(got.ended.is_set, what=f"a raising caller's stream to end: {got}")
        tokens = [ended_unavailable(got) for got in failing]
        # Resumed: a rule that cannot be built for the caller cannot be bound to the token
        # either, so nothing is replayed (reset); the next change it judges ends the stream
        # with unavailable again, never a cut response.
        resumed = await opened([
            stream
            for headers, token in zip(
                [h for h in RAISING_CALLERS for _ in (0, 1)], tokens, strict=True
            )
            for stream in both(live, headers, last_event_id=token)
        ])
        for got in resumed:
            await wait_until(lambda got=got: bool(got.controls), what=f"a reset: {got}")
        titles.append("after")
        r = await client.post("/rf_doc", json={"title": "after", "team_id": 1}, headers=writer)
        assert r.status_code == 201, r.text
        for got in resumed:
            await wait_until(got.ended.is_set, what=f"a resumed stream to end: {got}")
            assert [c["event"] for c in got.controls] == ["reset", "unavailable"], got
            assert got.messages == [] and got.controls[1]["reason"] == RULE_FAILED, got
            assert got.close_code in (None, TRY_AGAIN_LATER), got
        for got in honest:
            await got.wait_for_title("after")
        for got in notes:
            await wait_until(lambda got=got: len(got.messages) == 3, what=f"notes: {got}")
    for got in honest:
        assert [title for _event, title in got.titles()] == titles, got
        assert len(set(got.ids)) == len(got.ids), got
    assert cape.hub.subscriber_count == 0


# -- a resumed stream whose replay fails in the database -------------------------------------


def cleared(ctx: AuthContext) -> Any:
    return Doc.team_id <= func.abs(literal(ctx.context["clearance"], BigInteger))


async def test_a_replay_failing_in_the_database_ends_unavailable(db_url: str) -> None:
    """abs(-2**63) overflows on every database: PostgreSQL raises a DataError, SQLite and
    MariaDB an OperationalError."""
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    cape.publish(Doc)
    cape.permission_required(Doc, owner_field="owner_id", actions=["create"])
    cape.permission_required(Doc, role="cleared", actions=["read"], where=cleared)
    mallory = who("mallory", role="cleared", clearance=-(2**63))
    alice = who("alice", role="cleared", clearance=5)
    async with serve(app) as live, AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=live.url))
        fine = [await stack.enter_async_context(s) for s in both(live, alice)]
        live_ones = [
            await stack.enter_async_context(s) for s in both(live, mallory)
        ]
        r = await client.post("/rf_doc", json={"title": "d0", "team_id": 1}, headers=alice)
        assert r.status_code == 201, r.text
        for got in live_ones:
            await wait_until(got.ended.is_set, what=f"mallory's live stream to end: {got}")
        tokens = [got.controls[0]["resume"] for got in live_ones]
        assert all(tokens), live_ones
        resumed = [
            await stack.enter_async_context(stream)
            for token in tokens
            for stream in both(live, mallory, last_event_id=token)
        ]
        for got in resumed:
            await wait_until(got.ended.is_set, what=f"mallory's replay to end: {got}")
            assert got.error is None, got
            assert [c["event"] for c in got.controls] == ["unavailable"], got
            assert got.controls[0]["resume"], got
            assert got.status == 200 or got.close_code == TRY_AGAIN_LATER, got
        r = await client.post("/rf_doc", json={"title": "d1", "team_id": 1}, headers=alice)
        for got in fine:
            await got.wait_for_title("d1")
    for got in live_ones:
        ended_unavailable(got)
    for got in fine:
        assert [title for _event, title in got.titles()] == ["d0", "d1"], got


# -- an error that quotes a row's words for a lost connection --------------------------------


def quoting_rule(db_kind: str) -> Any:
    """A row-only rule whose error quotes the row's title: SQLite's JSON path error, the
    others' BIGINT overflow (PostgreSQL's message quotes nothing)."""
    if db_kind == "sqlite":
        return lambda ctx: func.json_extract("{}", Quota.title).is_(None)
    return lambda ctx: Quota.quota + func.length(Quota.title) <= 10**6


async def test_a_rule_error_quoting_disconnect_words_ends_only_its_stream(
    db_url: str, db_kind: str
) -> None:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    cape.publish(Quota)
    cape.publish(Note)
    cape.permission_required(Quota, owner_field="owner_id", actions=["create"])
    cape.permission_required(Quota, actions=["read"], where=quoting_rule(db_kind))
    cape.permission_required(Note, owner_field="owner_id", actions=["*"])
    alice, mallory = who("alice"), who("mallory")
    poison = (
        {"title": "connection closed, lol"} if db_kind == "sqlite"
        else {"title": "not connected, lol", "quota": 2**63 - 8}
    )
    async with serve(app) as live, AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=live.url))
        docs = [await stack.enter_async_context(s) for s in both(live, alice, "rf_quota")]
        notes = [await stack.enter_async_context(s) for s in both(live, alice, "rf_note")]
        r = await client.post("/rf_quota", json={"title": "$.fine"}, headers=alice)
        assert r.status_code == 201, r.text
        r = await client.post("/rf_quota", json=poison, headers=mallory)
        assert r.status_code == 201, r.text
        r = await client.post("/rf_note", json={"body": "n1"}, headers=alice)
        assert r.status_code == 201, r.text
        for got in notes:
            await wait_until(lambda got=got: got.messages, what=f"alice's note: {got}")
        for got in docs:
            await wait_until(got.ended.is_set, what=f"alice's quota stream to end: {got}")
    for got in docs:
        assert [title for _event, title in got.titles()] == ["$.fine"], got
        assert [c["event"] for c in got.controls] == ["unavailable"], got
        assert got.status == 200 or got.close_code == TRY_AGAIN_LATER, got
