"""Stream resume tokens and replay, attacked as a client would (issue 16, items 1 and 2).

OWASP API Security Top 10 (2023):
- API1 Broken Object Level Authorization: a replay from ``0`` handed anyone the whole retention
  window, old images of deleted rows included.
- API2 Broken Authentication: resume tokens were plain numbers a client could write; now only
  the server issues them (signed), for one stream (table, filters, caller), for a limited time.
- API4 Unrestricted Resource Consumption: a forged token's ids joined the dispatcher's shared
  holes and were re-sent to every subscriber; repeating it flooded and disconnected everyone.

Real servers, real commits, real SSE and WebSocket streams, on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase
from capebase.realtime.config import RealtimeConfig
from capebase.realtime.signing import StreamBinding
from tests.realtime._app import header_auth, who
from tests.realtime._live import (
    LiveServer,
    SSEStream,
    Stream,
    WSStream,
    dispatched,
    minted,
    position,
    serve,
)

TTL = 600.0


class SecurityModel(SQLModel, registry=registry()):
    """Tables of this module, in a registry of their own."""

    __test__ = False


class SecTodo(SecurityModel, table=True):
    """Public rows are everyone's to read; owners do anything with theirs."""

    __tablename__ = "sec_todo"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True)
    title: str
    public: bool = False


class SecNote(SecurityModel, table=True):
    """Only the owner reads a note."""

    __tablename__ = "sec_note"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True)
    title: str


def make_app(db_url: str, **realtime: Any) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    config = RealtimeConfig(**{"resume_token_ttl": TTL, **realtime})
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth, realtime=config)
    cape.publish(SecTodo)
    cape.publish(SecNote)
    cape.permission_required(SecTodo, owner_field="owner_id", actions=["*"])
    cape.permission_required(SecTodo, where=lambda ctx: SecTodo.public == True, actions=["read"])  # noqa: E712
    cape.permission_required(SecNote, owner_field="owner_id", actions=["*"])
    return app, cape


def todo_stream(
    live: LiveServer,
    how: str,
    user: str | None,
    token: str | None = None,
    table: str = "sec_todo",
    filters: Mapping[str, str] | None = None,
) -> Stream:
    """A stream of ``table`` as ``user``, resuming from ``token`` the way ``how`` names."""
    headers, params = who(user), dict(filters or {})
    if token is not None:
        if how.endswith("header"):
            headers["Last-Event-ID"] = token
        else:
            params["last_event_id"] = token
    path = f"/{table}/subscribe"
    if how.startswith("sse"):
        return SSEStream(live.url, path, headers, params)
    return WSStream(live.ws_url, path, headers, params)


WAYS = ("sse header", "sse query", "ws header", "ws query")


async def add(cape: CapeBase, user: str, *rows: SecTodo | SecNote) -> None:
    """Commit ``rows`` as ``user``, in one transaction."""
    async with cape.get_session(AuthContext(id=user)) as session:
        session.add_all(rows)
        await session.commit()


async def test_a_tokens_ids_never_reach_other_subscribers(db_url: str) -> None:
    """Repro of item 1: ``GET /note/subscribe?last_event_id=33~1,2,...`` (a table the client
    reads nothing of) made the victim's ``/todo`` stream receive changes 1 and 2 again. A
    forged token now resumes nothing; and even a token the server did sign never adds its ids
    to what the dispatcher watches for everyone."""
    app, cape = make_app(db_url)
    async with serve(app) as live, AsyncExitStack() as stack:
        victim = await stack.enter_async_context(todo_stream(live, "sse header", None))
        await add(cape, "writer", SecTodo(title="one", public=True))
        await add(cape, "writer", SecTodo(title="two", public=True))
        await victim.wait_for_title("two")
        first_ids = victim.ids
        last = await dispatched(cape)
        holes = ",".join(str(i) for i in range(1, last))
        forged = f"{last}~{holes}"
        signed = minted(cape, forged, "mallory", table="sec_note")
        attackers = [
            await stack.enter_async_context(
                todo_stream(live, how, "mallory", token, table="sec_note")
            )
            for how in WAYS
            for token in (forged, signed)
        ]
        # Once their own live note arrives, every attacker's replay is over.
        await add(cape, "mallory", SecNote(title="ping"))
        for attacker in attackers:
            await attacker.wait_for_title("ping")
        await add(cape, "writer", SecTodo(title="after", public=True))
        await victim.wait_for_title("after")
    assert len(first_ids) == 2
    assert victim.ids == [*first_ids, last + 2], "each change exactly once"
    for attacker in attackers[::2]:  # the forged ones
        assert [c["event"] for c in attacker.controls] == ["reset"]
    for attacker in attackers:
        assert [m["payload"].get("title") for m in attacker.messages] == ["ping"]


async def test_a_replay_from_zero_shows_no_deleted_row(db_url: str) -> None:
    """Repro of item 2: a public todo "call bank, PIN 4321" is created and deleted (REST says
    404); an anonymous ``?last_event_id=0`` read its text from the replay."""
    app, cape = make_app(db_url)
    async with serve(app) as live, AsyncExitStack() as stack:
        async with httpx.AsyncClient(base_url=live.url) as client:
            created = await client.post(
                "/sec_todo", json={"title": "call bank, PIN 4321", "public": True}, headers=who("a")
            )
            assert created.status_code == 201
            todo_id = created.json()["id"]
            deleted = await client.delete(f"/sec_todo/{todo_id}", headers=who("a"))
            assert deleted.status_code == 204
            assert (await client.get(f"/sec_todo/{todo_id}")).status_code == 404
        await dispatched(cape)
        streams = [
            await stack.enter_async_context(todo_stream(live, how, user, token))
            for how in WAYS
            for user in (None, "eve")
            for token in ("0", "1", "0~")
        ]
        await add(cape, "writer", SecTodo(title="live", public=True))
        for stream in streams:
            await stream.wait_for_title("live")
    for stream in streams:
        assert [c["event"] for c in stream.controls] == ["reset"]
        assert [m["payload"].get("title") for m in stream.messages] == ["live"]


def rejected_tokens(cape: CapeBase, at: str) -> dict[str, str]:
    """Every kind of token that must resume nothing, for alice's unfiltered sec_todo stream."""
    good = minted(cape, at, "alice", table="sec_todo")
    issued, signature = good.split(".")[1:]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    past = time.time() - TTL - 5
    return {
        "a bare change id": at,
        "zero": "0",
        "garbage": "not a token~1,2,x.y.z" * 3,
        "empty signature": f"{at}.{issued}.",
        "an edited signature": f"{at}.{issued}.{flipped}",
        "an edited position": f"{int(at) - 1}.{issued}.{signature}",
        "an edited issue time": f"{at}.{int(issued) + 1}.{signature}",
        "holes added to a good token": f"{at}~1.{issued}.{signature}",
        "another table's": minted(cape, at, "alice", table="sec_note"),
        "another filter's": minted(cape, at, "alice", "sec_todo", {"public": "true"}),
        "another caller's": minted(cape, at, "bob", table="sec_todo"),
        "an anonymous caller's": minted(cape, at, None, table="sec_todo"),
        "expired": cape.hub.tokens.issue(_binding(cape, "alice"), at, issued_at=past),
        "from the future": cape.hub.tokens.issue(
            _binding(cape, "alice"), at, issued_at=time.time() + 3600
        ),
        "too long": good + "x" * 600,
    }


def _binding(cape: CapeBase, user: str) -> StreamBinding:
    return cape.hub.binding("sec_todo", AuthContext(id=user), [])


async def test_tokens_the_server_did_not_issue_for_this_stream_get_a_reset(db_url: str) -> None:
    """Forged, edited, expired, for another table, filter or caller: a ``reset`` whose own
    token resumes, no replay, then the live changes."""
    app, cape = make_app(db_url)
    async with serve(app) as live, AsyncExitStack() as stack:
        await add(cape, "alice", SecTodo(title="old 1"), SecTodo(title="old 2"))
        await add(cape, "alice", SecTodo(title="old 3"))
        last = await dispatched(cape)
        tokens = rejected_tokens(cape, str(last - 2))
        streams = {
            (name, how): await stack.enter_async_context(todo_stream(live, how, "alice", token))
            for name, token in tokens.items()
            for how in WAYS
        }
        await add(cape, "alice", SecTodo(title="new"))
        for stream in streams.values():
            await stream.wait_for_title("new")
        # The reset's token resumes: from where the stream opened, with what came since.
        reset_token = streams["zero", "sse header"].controls[0]["resume"]
        again = await stack.enter_async_context(todo_stream(live, "ws query", "alice", reset_token))
        await again.wait_for_title("new")
    assert len(tokens) == 15
    for (name, how), stream in streams.items():
        assert [c["event"] for c in stream.controls] == ["reset"], (name, how)
        reset = stream.controls[0]
        assert (reset["id"], position(reset["resume"])) == (last, str(last)), (name, how)
        assert [m["payload"]["title"] for m in stream.messages] == ["new"], (name, how)
    assert "expired" in streams["expired", "ws query"].controls[0]["reason"]
    assert not again.controls and [m["payload"]["title"] for m in again.messages] == ["new"]


async def test_a_valid_token_resumes_exactly_the_missed_changes(db_url: str) -> None:
    app, cape = make_app(db_url)
    async with serve(app) as live, AsyncExitStack() as stack:
        async with todo_stream(live, "sse header", "alice") as first:
            await add(cape, "alice", SecTodo(title="seen"))
            await first.wait_for_title("seen")
        token = first.tokens[-1]
        await add(cape, "alice", SecTodo(title="missed 1"))
        await add(cape, "bob", SecTodo(title="bob's"), SecNote(title="bob's note"))
        await add(cape, "alice", SecTodo(title="missed 2"), SecNote(title="alice's note"))
        await dispatched(cape)
        resumed = {
            how: await stack.enter_async_context(todo_stream(live, how, "alice", token))
            for how in WAYS
        }
        await add(cape, "alice", SecTodo(title="live"))
        for stream in resumed.values():
            await stream.wait_for_title("live")
    for how, stream in resumed.items():
        assert not stream.controls, how
        titles = [m["payload"]["title"] for m in stream.messages]
        assert titles == ["missed 1", "missed 2", "live"], how


async def test_processes_of_one_app_accept_each_others_tokens(db_url: str) -> None:
    """Two CapeBase instances on one database share the stored key; an app with a key of its
    own does not accept their tokens."""
    app_a, cape_a = make_app(db_url)
    app_b, cape_b = make_app(db_url)
    app_c, _cape_c = make_app(db_url, resume_token_secret=secrets.token_urlsafe(32))
    async with (
        serve(app_a) as live_a,
        serve(app_b) as live_b,
        serve(app_c) as live_c,
        AsyncExitStack() as stack,
    ):
        async with todo_stream(live_a, "ws query", "alice") as first:
            await add(cape_a, "alice", SecTodo(title="seen"))
            await first.wait_for_title("seen")
        token = first.tokens[-1]
        await add(cape_a, "alice", SecTodo(title="missed"))
        await dispatched(cape_b)
        on_b = [
            await stack.enter_async_context(todo_stream(live_b, how, "alice", token))
            for how in WAYS
        ]
        on_c = await stack.enter_async_context(todo_stream(live_c, "sse header", "alice", token))
        await add(cape_b, "alice", SecTodo(title="live"))
        for stream in [*on_b, on_c]:
            await stream.wait_for_title("live")
    for stream in on_b:
        assert not stream.controls
        assert [m["payload"]["title"] for m in stream.messages] == ["missed", "live"]
    assert [c["event"] for c in on_c.controls] == ["reset"]
    assert [m["payload"]["title"] for m in on_c.messages] == ["live"]
