"""Read rules that change with the clock, and resumed streams (eighth review of issue 16).

OWASP API Security Top 10 (2023):
- API1 Broken Object Level Authorization: a post visible once ``publish_at <= now`` was
  written with a draft title, edited before publication, and a reader who resumed after it
  got the draft in a replayed INSERT and as ``old``: text REST never showed. The rule read
  the clock through ``CAST('now' AS timestamp)`` (PostgreSQL), which looked like a rule of
  the row alone, or through ``datetime.now()`` in the ``where=`` lambda, which Python
  evaluates on each image with today's value.

Now both give the resumed stream a reset (reload) instead of a replay. Real servers, on
SQLite, PostgreSQL and MariaDB (the cast variant on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import DateTime, String, cast, literal
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase
from tests.realtime._app import header_auth, who
from tests.realtime._live import SSEStream, dispatched, serve, wait_until

SECRET = "DRAFT: layoffs list"
ALICE, BOB = who("alice"), who("bob")


class Base(SQLModel, registry=registry()):
    pass


class Post(Base, table=True):
    __tablename__ = "a1_post"
    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True, max_length=36)
    title: str
    publish_at: datetime


def sql_clock(ctx: AuthContext) -> Any:
    return Post.publish_at <= cast(literal("now", String), DateTime)


def python_clock(ctx: AuthContext) -> Any:
    return Post.publish_at <= datetime.now(UTC)


RULES = {"sql-cast-now": sql_clock, "python-now": python_clock}


@pytest.mark.parametrize("rule", list(RULES))
async def test_draft_replayed_after_publication(db_url: str, db_kind: str, rule: str) -> None:
    if rule == "sql-cast-now" and db_kind != "postgresql":
        pytest.skip("'now' input is PostgreSQL's")
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    cape.publish(Post)
    cape.permission_required(Post, owner_field="owner_id", actions=["*"])
    cape.permission_required(Post, actions=["read"], where=RULES[rule])
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        async with SSEStream(live.url, "/a1_post/subscribe", ALICE, {}) as got:
            # A post already published: alice gets it and keeps its resume token.
            r = await client.post("/a1_post", json={"title": "hello", "publish_at": past},
                                  headers=BOB)
            assert r.status_code == 201, r.text
            await wait_until(lambda: got.messages, what="first post")
            token = got.tokens[-1]
        # bob drafts a post to be published in 3 s, then redacts it before then.
        when = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
        d = (await client.post("/a1_post", json={"title": SECRET, "publish_at": when},
                               headers=BOB)).json()
        assert (await client.get(f"/a1_post/{d['id']}", headers=ALICE)).status_code == 404
        r = await client.patch(f"/a1_post/{d['id']}", json={"title": "Quarterly update"},
                               headers=BOB)
        assert r.status_code == 200, r.text
        await dispatched(cape)
        await asyncio.sleep(3.5)
        now = (await client.get(f"/a1_post/{d['id']}", headers=ALICE)).json()
        assert now["title"] == "Quarterly update"  # REST never shows the draft
        async with SSEStream(live.url, "/a1_post/subscribe", ALICE,
                             {"last_event_id": token}) as resumed:
            await asyncio.sleep(1.5)
        print("resumed messages:", json.dumps(resumed.messages)[:600])
        print("controls:", resumed.controls)
        assert SECRET not in json.dumps(resumed.messages), "LEAK: draft replayed"
