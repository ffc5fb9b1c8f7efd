"""Read rules that read a secret field, on streams (ninth review, a02).

OWASP API Security Top 10 (2023):
- API1 Broken Object Level Authorization: the change log leaves secret fields out, and a
  stream judged each change's images with the secret field as NULL. A rule "public unless it
  has an access code" (``access_code IS NULL``) was then true for every row: every
  subscriber got the protected document's title, which GET answered 404.

Now a rule that reads a column the images do not hold is judged like a rule that reads more
than the row: the row is read again from the database under the rule when the event is
delivered (no ``old``), a protected row sends nothing, and a resumed stream resets. Each rule
form below (``is_(None)``, ``==`` a claim, ``in_``, ``!=``, a form only SQL evaluates, one
combined with a plain column, ``context_fields`` and ``owner_field`` on the secret field) is
run on SSE and WebSocket, on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase, secret_field
from tests.realtime._app import header_auth, who
from tests.realtime._live import SSEStream, WSStream, dispatched, serve, wait_until

ALICE, BOB = who("alice", org="k1"), who("bob")
CODES = (None, "k1", "k2", "s3cret")


class Base(SQLModel, registry=registry()):
    pass


class Doc(Base, table=True):
    __tablename__ = "sr_doc"
    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(max_length=36)
    title: str
    access_code: str | None = secret_field(default=None, max_length=40)


@dataclass(frozen=True)
class Form:
    """A read rule on the secret field, and whether alice (claim ``org_id`` = k1) may read a
    row with a given ``access_code``."""

    rule: dict[str, Any]
    visible: Callable[[str | None], bool]
    needs: set[str] = field(default_factory=set)


FORMS = {
    "is_(None)": Form({"where": lambda ctx: Doc.access_code.is_(None)}, lambda c: c is None),
    "== a claim": Form(
        {"where": lambda ctx: Doc.access_code == ctx.context["org_id"]}, lambda c: c == "k1"
    ),
    "in_ a list": Form(
        {"where": lambda ctx: Doc.access_code.in_(["k1", "k2"])}, lambda c: c in ("k1", "k2")
    ),
    "!= a value": Form(
        {"where": lambda ctx: Doc.access_code != "s3cret"},
        lambda c: c is not None and c != "s3cret",
    ),
    "only SQL evaluates it": Form(
        {"where": lambda ctx: func.coalesce(Doc.access_code, "") == ""}, lambda c: c is None
    ),
    "and a plain column": Form(
        {"where": lambda ctx: Doc.access_code.is_(None) & (Doc.title != "")},
        lambda c: c is None,
    ),
    "context_fields": Form({"context_fields": {"access_code": "org_id"}}, lambda c: c == "k1"),
    "owner_field": Form({"owner_field": "access_code"}, lambda c: c == "alice"),
}


def make_app(db_url: str, form: Form) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    cape.publish(Doc)
    cape.permission_required(Doc, owner_field="owner_id", actions=["*"])
    cape.permission_required(Doc, actions=["read"], **form.rule)
    return app, cape


def codes_for(form: Form) -> tuple[str | None, ...]:
    return (*CODES, "alice") if form is FORMS["owner_field"] else CODES


@pytest.mark.parametrize("name", list(FORMS))
async def test_a_rule_on_a_secret_field_streams_what_rest_shows(db_url: str, name: str) -> None:
    form = FORMS[name]
    codes = codes_for(form)
    shown = next(c for c in codes if form.visible(c))
    app, cape = make_app(db_url, form)
    async with serve(app) as live, AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=live.url))
        streams = [
            await stack.enter_async_context(SSEStream(live.url, "/sr_doc/subscribe", ALICE)),
            await stack.enter_async_context(WSStream(live.ws_url, "/sr_doc/subscribe", ALICE)),
        ]
        opened = streams[0].ready[0]["id"]

        async def rest_view() -> dict[int, str]:
            listed = (await client.get("/sr_doc", headers=ALICE)).json()
            return {row["id"]: row["title"] for row in listed}

        async def step(*writes: tuple[str, str, dict[str, Any]]) -> list[dict[str, Any]]:
            """Bob's writes, then what each stream got of them (the same on both)."""
            before = [len(s.messages) for s in streams]
            for method, path, body in writes:
                response = await client.request(method, path, json=body or None, headers=BOB)
                assert response.status_code < 300, response.text
            await dispatched(cape)
            # Bob's own marker row, which every form shows alice, ends the step.
            marker = (await client.post(
                "/sr_doc", json={"title": "marker", "access_code": shown}, headers=BOB
            )).json()["id"]
            for s in streams:
                await wait_until(lambda s=s: marker in [m["payload"]["id"] for m in s.messages],
                                 what=f"the marker on {s}")
            got = [[m for m in s.messages[n:] if m["payload"]["id"] != marker]
                   for s, n in zip(streams, before, strict=True)]
            assert got[0] == got[1]
            return got[0]

        # Rows written with each code: alice hears of the ones REST shows her.
        created = [
            (code, (await client.post(
                "/sr_doc", json={"title": f"v1 {code}", "access_code": code}, headers=BOB
            )).json()["id"])
            for code in codes
        ]
        await dispatched(cape)
        await wait_until(lambda: all(len(s.messages) >= sum(map(form.visible, codes))
                                     for s in streams), what="the visible rows")
        first = streams[0].messages[:]
        assert [(m["event"], m["payload"]["title"], m["old"]) for m in first] == [
            ("INSERT", f"v1 {code}", None) for code in codes if form.visible(code)
        ]
        assert set((await rest_view()).values()) == {f"v1 {c}" for c in codes if form.visible(c)}

        # Their titles change: updates of the visible rows only, and no old image.
        got = await step(*[("PATCH", f"/sr_doc/{i}", {"title": f"v2 {c}"}) for c, i in created])
        assert [(m["event"], m["payload"]["title"], m["old"]) for m in got] == [
            ("UPDATE", f"v2 {c}", None) for c, _ in created if form.visible(c)
        ]
        # A hidden row deleted: nothing (not even its key).
        hidden = [(c, i) for c, i in created if not form.visible(c)]
        got = await step(("DELETE", f"/sr_doc/{hidden[0][1]}", {}))
        assert got == []
        # A hidden row opened to alice: the row as REST now shows it (an UPDATE may name a
        # row the stream has not shown: clients apply it as an upsert).
        code, opened_id = hidden[1]
        got = await step(("PATCH", f"/sr_doc/{opened_id}", {"access_code": shown}))
        assert [m["payload"] for m in got] == [
            {"id": opened_id, "owner_id": "bob", "title": f"v2 {code}"}
        ]
        assert got[0]["event"] in ("INSERT", "UPDATE")
        # A resumed stream cannot be replayed: a reset.
        resumed = await stack.enter_async_context(
            SSEStream(live.url, "/sr_doc/subscribe", ALICE, {"last_event_id": opened})
        )
        await wait_until(lambda: resumed.controls, what="a reset")
        view = await rest_view()
    assert [c["event"] for c in resumed.controls] == ["reset"]
    assert resumed.messages == []
    never_shown = {f"v{n} {c}" for n in (1, 2) for c, _ in hidden if c != code}
    for s in streams:
        assert all(m["old"] is None for m in s.messages)
        assert not {m["payload"].get("title") for m in s.messages} & never_shown
    assert f"v2 {code}" in view.values()


def test_rules_that_read_a_secret_field_are_undecided_in_python() -> None:
    """The Python check answers "ask the database" for a row image without the secret field,
    rather than judging the field NULL (which passed ``IS NULL`` for every protected row)."""
    from capebase.policy.registry import Policy

    alice = AuthContext("alice", context={"org_id": "k1"})
    image = {"id": 1, "owner_id": "bob", "title": "t"}
    for name, form in FORMS.items():
        policy = Policy()
        policy.add(Doc, actions=["read"], **form.rule)
        assert policy.check_row(Doc, "read", alice, image) is None, name
        for code in codes_for(form):
            verdict = policy.check_row(Doc, "read", alice, {**image, "access_code": code})
            assert verdict in (form.visible(code), None), (name, code)


def test_registering_such_a_rule_warns(caplog: pytest.LogCaptureFixture) -> None:
    from capebase.policy.registry import Policy

    for name, form in FORMS.items():
        caplog.clear()
        Policy().add(Doc, actions=["read"], **form.rule)
        warned = [r.getMessage() for r in caplog.records if "secret field" in r.getMessage()]
        assert len(warned) == 1 and "access_code" in warned[0], (name, caplog.records)
    caplog.clear()
    Policy().add(Doc, actions=["read"], where=lambda ctx: Doc.title != "")
    Policy().add(Doc, actions=["update"], where=lambda ctx: Doc.access_code.is_(None))
    assert not [r for r in caplog.records if "secret field" in r.getMessage()]
