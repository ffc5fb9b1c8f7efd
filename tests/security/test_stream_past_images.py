"""Past row images under rules that read more than the row (sixth review of issue 16).

OWASP API Security Top 10 (2023):
- API1 Broken Object Level Authorization: a ``where=`` rule that reads another table (a share,
  a team) was checked, at delivery, against that table as it is *then*, on the change's
  images as they were *before*. A document written confidential, edited, then shared reached
  the new reader's replay with its confidential first version, and a route that redacted and
  shared in one transaction sent the unredacted text as ``old`` on live streams: text that
  REST never showed that reader.

Now such a rule's subscribers get the row as they may read it when the event is delivered
(what a GET returns then) and no ``old``, and a resumed stream gets a reset (reload) rather
than a replay, which could name a row that left the view before the reader was admitted; a
rule of the row alone keeps the images and the replay. Real
servers, real commits, SSE and WebSocket, on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import DateTime, String, bindparam, cast, event, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase
from tests.realtime._app import header_auth, who
from tests.realtime._live import SSEStream, WSStream, dispatched, serve, wait_until

SECRET = "CONFIDENTIAL merger terms"
PUBLIC = "public version"
ALICE, BOB = who("alice"), who("bob")


class Base(SQLModel, registry=registry()):
    pass


class Doc(Base, table=True):
    __tablename__ = "pi_doc"
    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True, max_length=36)
    title: str


class Share(Base, table=True):
    __tablename__ = "pi_share"
    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True, max_length=36)
    doc_id: int = Field(index=True)
    user_id: str = Field(max_length=36)


def shared_with_caller(ctx: AuthContext) -> Any:
    return Doc.id.in_(select(Share.doc_id).where(Share.user_id == ctx.id))


def make_app(db_url: str) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    cape.publish(Doc)
    cape.publish(Share)
    cape.permission_required(Doc, owner_field="owner_id", actions=["*"])
    cape.permission_required(Doc, actions=["read"], where=shared_with_caller)
    cape.permission_required(Share, owner_field="owner_id", actions=["*"])

    @app.post("/publish/{doc_id}")
    async def publish(
        doc_id: int, to: str, session: AsyncSession = Depends(cape.get_db_dependency())
    ) -> None:
        """Redact and share in one transaction, as the caller."""
        doc = await session.get(Doc, doc_id)
        assert doc is not None
        doc.title = PUBLIC
        session.add(Share(doc_id=doc_id, user_id=to))
        await session.commit()

    return app, cape


def sse(live: Any, headers: dict[str, str], **params: str) -> SSEStream:
    return SSEStream(live.url, "/pi_doc/subscribe", headers, params)


def ws(live: Any, headers: dict[str, str]) -> WSStream:
    return WSStream(live.ws_url, "/pi_doc/subscribe", headers, {})


def alice_before_any_change(cape: CapeBase) -> str:
    binding = cape.hub.binding("pi_doc", AuthContext("alice"), [])
    return cape.hub.tokens.issue(binding, "0")


async def test_no_past_image_reaches_a_reader_the_rule_admitted_later(db_url: str) -> None:
    app, cape = make_app(db_url)
    async with serve(app) as live, AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=live.url, timeout=10)
        )
        live_sse = await stack.enter_async_context(sse(live, ALICE))
        live_ws = await stack.enter_async_context(ws(live, ALICE))
        # Written confidential, edited, then shared with alice (three REST calls of bob's).
        doc = (await client.post("/pi_doc", json={"title": SECRET}, headers=BOB)).json()
        assert (await client.get(f"/pi_doc/{doc['id']}", headers=ALICE)).status_code == 404
        await client.patch(f"/pi_doc/{doc['id']}", json={"title": PUBLIC}, headers=BOB)
        shared = {"doc_id": doc["id"], "user_id": "alice"}
        assert (await client.post("/pi_share", json=shared, headers=BOB)).status_code == 201
        # Redacted and shared in one transaction.
        second = (await client.post("/pi_doc", json={"title": SECRET}, headers=BOB)).json()
        response = await client.post(f"/publish/{second['id']}?to=alice", headers=BOB)
        assert response.status_code == 200, response.text
        await dispatched(cape)
        replayed = await stack.enter_async_context(
            sse(live, ALICE, last_event_id=alice_before_any_change(cape))
        )
        # Live, alice hears of the second document only: the share that admitted the
        # first was a change to another table.
        for got in (live_sse, live_ws):
            await wait_until(
                lambda got=got: {m["payload"]["id"] for m in got.messages} >= {second["id"]},
                what=f"the second document: {got}",
            )
        # A replay cannot tell what alice could see of a past image: she reloads instead.
        await wait_until(lambda: replayed.controls, what=f"a reset: {replayed}")
    for got in (live_sse, live_ws):
        assert SECRET not in json.dumps(got.messages), got.messages
        assert all(m["old"] is None for m in got.messages)
        assert {m["payload"]["title"] for m in got.messages} == {PUBLIC}
    assert replayed.messages == []
    assert [c["event"] for c in replayed.controls] == ["reset"]
    assert "reads more than the row" in replayed.controls[0]["reason"]


ROW_ALONE: dict[str, Callable[[AuthContext], Any]] = {
    "a function of the row": lambda ctx: func.lower(Doc.title).like("sql%"),
}


async def test_a_rule_of_the_row_alone_still_sends_old_images(db_url: str) -> None:
    """The near-miss: a rule the database judges from the row alone keeps the images."""
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    cape.publish(Doc)
    cape.permission_required(Doc, owner_field="owner_id", actions=["*"])
    cape.permission_required(Doc, actions=["read"], where=ROW_ALONE["a function of the row"])
    async with serve(app) as live, sse(live, ALICE) as got:
        async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
            doc = (await client.post("/pi_doc", json={"title": "SQL a"}, headers=BOB)).json()
            await client.patch(f"/pi_doc/{doc['id']}", json={"title": "sql b"}, headers=BOB)
        await got.wait_for_title("sql b")
    assert got.messages[-1]["old"] == {"id": doc["id"], "owner_id": "bob", "title": "SQL a"}


@pytest.mark.parametrize(
    ("rule", "row_alone"),
    [
        (lambda: Doc.owner_id == "a", True),
        (lambda: func.lower(Doc.title).like("sql%"), True),
        (lambda: func.coalesce(Doc.title, "") != "", True),
        (lambda: Doc.id.in_([1, 2]), True),
        (lambda: Doc.id.in_(select(Share.doc_id)), False),
        (lambda: Doc.title < func.now(), False),
        (lambda: Doc.title < func.current_timestamp(), False),
        (lambda: Doc.title < func.date("now"), False),
        (lambda: Doc.id < select(func.max(Doc.id)).scalar_subquery(), False),
        (lambda: Doc.id == Share.doc_id, False),
        # the eighth review: a schema's function, a cast of a clock's name, a computed bind
        (lambda: func.app.trim(Doc.title) == "x", False),
        (lambda: cast(literal("now", String), DateTime) > literal("2020-01-01"), False),
        (lambda: Doc.title < bindparam("t", callable_=lambda: "clock"), False),
    ],
)
def test_which_rules_read_the_row_alone(rule: Callable[[], Any], row_alone: bool) -> None:
    from capebase.policy.sqlexpr import reads_only_the_row

    assert reads_only_the_row(rule(), Doc.__table__) is row_alone


async def test_the_streams_of_one_caller_cost_one_query_per_change(db_url: str) -> None:
    """Eighth review, F3: each stream was judged with its own query, so one user holding
    many streams multiplied the dispatcher's work for everyone."""
    app, cape = make_app(db_url)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if "pi_share" in statement and "alice" in str(parameters):  # alice's judgments
            statements.append(statement)

    async with serve(app) as live, AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=live.url))
        streams = [await stack.enter_async_context(sse(live, ALICE)) for _ in range(5)]
        doc = (await client.post("/pi_doc", json={"title": PUBLIC}, headers=BOB)).json()
        shared = {"doc_id": doc["id"], "user_id": "alice"}
        assert (await client.post("/pi_share", json=shared, headers=BOB)).status_code == 201
        await dispatched(cape)
        event.listen(cape.engine.sync_engine, "before_cursor_execute", count)
        await client.patch(f"/pi_doc/{doc['id']}", json={"title": "v2"}, headers=BOB)
        await dispatched(cape)
        for got in streams:
            await got.wait_for_title("v2")
        event.remove(cape.engine.sync_engine, "before_cursor_execute", count)
    # One judgment for alice's five streams: the row as she may read it, and whether she
    # saw it before.
    assert len(statements) == 2, statements
