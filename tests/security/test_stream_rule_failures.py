"""A read rule that fails in the database for one caller (seventh review of issue 16).

OWASP API Security Top 10 (2023):
- API4 Unrestricted Resource Consumption: delivery checked each change against its
  subscribers one after another, and one whose rule raised (a "my team" scalar subquery that
  returns two rows once its caller joins two teams) ended the change's delivery: the
  subscribers after it never got it, and the dispatcher waited a second per change, for
  everyone, for as long as that caller kept a stream open.

Now that subscriber's stream ends ("unavailable", resume later) and the others get every
change. PostgreSQL and MariaDB, where such a subquery fails; SQLite takes its first row.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase
from tests.realtime._app import header_auth, who
from tests.realtime._live import SSEStream, WSStream, dispatched, serve, wait_until

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
