"""Collation: a ``where=`` rule admits exactly the text it names, on every database.

OWASP API Security Top 10 (2023): API1:2023 Broken Object Level Authorization. A rule that
compares text the database's way instead of the rule's lets a caller read or write rows the rule
excludes. Issue 16, item 6: ``where=lambda ctx: Doc.title.startswith("pub")`` refused
``"PUB upper"`` on SQLite and PostgreSQL (403) and admitted it on MariaDB (201), whose default
collation folds case and accents and pads trailing spaces.

Each case is a rule over one operator the policy can express, values it must admit and
look-alikes it must refuse (case, accents, trailing spaces, wildcards and escapes taken
literally). Every value is written through ``POST`` (the create rule: evaluated in Python where
it can be, else by the database) and read back through the list (the read rule, in SQL) and the
item route, on SQLite, PostgreSQL and MariaDB. ``tests/policy/test_predicates_agree.py`` holds
the property test over generated look-alikes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI, Request
from sqlalchemy import ColumnElement, func
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, col

from capebase import AuthContext, CapeBase
from capebase.testing import app_client


class CollationModel(SQLModel, registry=registry()):
    __test__ = False


class Doc(CollationModel, table=True):
    __tablename__ = "sec_collation_doc"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=40)


Where = Callable[[AuthContext], ColumnElement[bool]]
title: Any = col(Doc.title)


@dataclass(frozen=True)
class Case:
    name: str
    where: Where
    admitted: tuple[str, ...]
    refused: tuple[str, ...]


CASES = [
    Case("startswith", lambda _: title.startswith("pub"),
         ("pub", "public"), ("PUB upper", "Pub", "püb", " pub", "pu")),
    Case("not startswith", lambda _: ~title.startswith("pub"),
         ("PUB upper", "Pub", "püb"), ("pub", "public")),
    Case("endswith", lambda _: title.endswith("ab"), ("xab", "ab"), ("xAB", "xab ", "xáb")),
    Case("contains, autoescaped", lambda _: title.contains("5%", autoescape=True),
         ("5%", "a 5% b"), ("50", "5", "5 %")),
    Case("like with _", lambda _: title.like("a_c"), ("abc", "a_c", "aéc"), ("ABC", "abcd", "ac")),
    Case("like with an escaped %", lambda _: title.like("a\\%"), ("a%",), ("ab", "A%", "a\\%")),
    Case("like, trailing backslash", lambda _: title.like("a\\"), ("a\\",), ("a", "A\\")),
    Case("equals", lambda _: title == "Alice", ("Alice",), ("alice", "Alice ", "Alíce")),
    Case("not equals", lambda _: title != "Alice", ("alice", "Alice ", "Alíce"), ("Alice",)),
    Case("in", lambda _: title.in_(["pub", "Pub"]), ("pub", "Pub"), ("PUB", "pub ", "püb")),
    Case("less than", lambda _: title < "b", ("a", "B", "Z", "a "), ("b", "é", "ba", "b ")),
    Case("between", lambda _: title.between("a", "c"), ("a", "b", "c"), ("A", "c ", "é")),
    Case("is not distinct from", lambda _: title.is_not_distinct_from("pub"),
         ("pub",), ("PUB", "pub ", "püb")),
    Case("ilike: case folded, accents kept", lambda _: title.ilike("caf%"),
         ("cafe", "CAFE", "Caf"), ("cáfe", "CÁFE", "ca")),
    Case("regexp", lambda _: title.regexp_match("^pub"), ("pub", "pub x"), ("PUB x", "püb")),
    Case("from the context", lambda ctx: title.startswith(ctx.context["tag"]),
         ("tag-1", "tag-10"), ("TAG-1", "tág-1")),
    # startswith, endswith and contains find their value as text: a context value's % and _
    # are not wildcards, nor its backslashes escapes (issue 16, security review).
    Case("startswith a context value with % and _",
         lambda ctx: title.startswith(ctx.context["wild"]),
         ("50%_", "50%_off"), ("5000", "50%x", "50x_", "50")),
    Case("not startswith a context value with % and _",
         lambda ctx: ~title.startswith(ctx.context["wild"]), ("5000", "50%x"), ("50%_", "50%_x")),
    Case("endswith a context value with _", lambda ctx: title.endswith(ctx.context["tail"]),
         ("a_1", "_1"), ("a1", "ab1", "_1 ")),
    Case("contains a context value with \\ and %",
         lambda ctx: title.contains(ctx.context["mid"]),
         ("xa\\%by", "a\\%b"), ("a%b", "ab", "a\\xb", "a\\b")),
    Case("startswith a value ending with \\", lambda _: title.startswith("a\\"),
         ("a\\", "a\\b"), ("a", "ab", "A\\")),
    Case("contains a constant with %", lambda _: title.contains("5%"),
         ("5%", "a5%b"), ("50", "5 %")),
    Case("endswith a computed value with _ (escaped by the database)",
         lambda _: title.endswith(func.lower("_X1")), ("a_x1", "_x1"), ("ab1", "abx1", "a_X1")),
]


async def header_auth(request: Request) -> AuthContext:
    return AuthContext(
        id=request.headers.get("X-User"),
        context={"tag": "tag-1", "wild": "50%_", "tail": "_1", "mid": "a\\%b"},
    )


ALICE = {"X-User": "alice"}


def make_app(db_url: str, where: Where) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    cape.publish(Doc)
    cape.permission_required(Doc, actions=["create", "read"], where=where)
    return app, cape


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_where_rules_admit_exactly_the_text_they_name(db_url: str, case: Case) -> None:
    app, cape = make_app(db_url, case.where)
    async with app_client(app) as client:
        created = {}
        for value in case.admitted:
            response = await client.post("/sec_collation_doc", json={"title": value},
                                         headers=ALICE)
            assert response.status_code == 201, (value, response.text)
            created[value] = response.json()["id"]
        for value in case.refused:
            response = await client.post("/sec_collation_doc", json={"title": value},
                                         headers=ALICE)
            assert response.status_code == 403, (value, response.text)
        # stored by a privileged session: the read rule must hide them from the list and item
        async with cape.get_privileged_session() as session:
            hidden = [Doc(title=value) for value in case.refused]
            session.add_all(hidden)
            await session.commit()
            hidden_ids = [doc.id for doc in hidden]
        listed = (await client.get("/sec_collation_doc", headers=ALICE)).json()
        assert sorted(row["title"] for row in listed) == sorted(case.admitted)
        for key in hidden_ids:
            response = await client.get(f"/sec_collation_doc/{key}", headers=ALICE)
            assert response.status_code == 404, response.text
        for key in created.values():
            response = await client.get(f"/sec_collation_doc/{key}", headers=ALICE)
            assert response.status_code == 200, response.text
