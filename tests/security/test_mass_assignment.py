"""Mass assignment: a client cannot set the primary key or the fields filled from its identity.

OWASP API Security Top 10 (2023): API3:2023 Broken Object Property Level Authorization (the
former "Mass Assignment"). Issue 16, item 4: a custom ``create_schema``/``update_schema`` kept
``id`` and ``FROM_AUTH_*`` fields, so an anonymous ``POST {"owner": "alice"}`` made a row owned by
alice, a PATCH changed a primary key, and on PostgreSQL a client-chosen id made the next insert
fail (the sequence had not moved).

The matrix: key kinds (autoincrement int, ``default_factory`` UUID, a plain required str, an int
without autoincrement) x schemas (capebase's, and a user's declaring every column) x write paths
(direct, and the session path a rule Python cannot evaluate forces; MariaDB always takes the
session path) x callers (anonymous, a user with and without the context key). Bulk inserts and
ORM objects through a user session are checked too. On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from typing import Any

import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel, create_model
from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, col

from capebase import (
    FROM_AUTH_ID,
    FROM_AUTH_ROLE,
    AuthContext,
    CapeBase,
    PermissionDeniedError,
    from_context,
)
from capebase.testing import app_client


class SecurityModel(SQLModel, registry=registry()):
    """The base of these tables: its own registry, so its own MetaData."""

    __test__ = False


class AutoKey(SecurityModel, table=True):
    __tablename__ = "sec_auto_key"

    id: int | None = Field(default=None, primary_key=True)
    owner: FROM_AUTH_ID = Field(default=None, nullable=True, max_length=40)
    role: FROM_AUTH_ROLE = Field(default=None, max_length=40)
    org: from_context("org") = Field(default=None, nullable=True, max_length=40)  # type: ignore[valid-type]
    name: str = Field(max_length=40)


class UuidKey(SecurityModel, table=True):
    __tablename__ = "sec_uuid_key"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner: FROM_AUTH_ID = Field(default=None, nullable=True, max_length=40)
    role: FROM_AUTH_ROLE = Field(default=None, max_length=40)
    org: from_context("org") = Field(default="no-org", max_length=40)  # type: ignore[valid-type]
    name: str = Field(max_length=40)


class StrKey(SecurityModel, table=True):
    __tablename__ = "sec_str_key"

    id: str = Field(primary_key=True, max_length=40)
    owner: FROM_AUTH_ID = Field(default=None, nullable=True, max_length=40)
    role: FROM_AUTH_ROLE = Field(default=None, max_length=40)
    org: from_context("org") = Field(default=None, nullable=True, max_length=40)  # type: ignore[valid-type]
    name: str = Field(max_length=40)


class ManualIntKey(SecurityModel, table=True):
    __tablename__ = "sec_manual_int_key"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    owner: FROM_AUTH_ID = Field(default=None, nullable=True, max_length=40)
    role: FROM_AUTH_ROLE = Field(default=None, max_length=40)
    org: from_context("org") = Field(default=None, nullable=True, max_length=40)  # type: ignore[valid-type]
    name: str = Field(max_length=40)


class Owned(SecurityModel, table=True):
    """Auth fields a row cannot be stored without: NOT NULL, no default."""

    __tablename__ = "sec_owned"

    id: int | None = Field(default=None, primary_key=True)
    owner: FROM_AUTH_ID = Field(max_length=40)
    org: from_context("org") = Field(max_length=40)  # type: ignore[valid-type]
    name: str = Field(max_length=40)


MODELS: list[type[Any]] = [AutoKey, UuidKey, StrKey, ManualIntKey]
CHOSEN_KEY = (StrKey, ManualIntKey)  # the models whose key the client chooses
AUTH_FIELDS = ("owner", "role", "org")


class EveryColumn(BaseModel):
    """A user's schema that declares every column, the primary key and auth fields included,
    and a field that is no column (``every_column`` gives it the model's key type)."""

    id: Any = None
    owner: str | None = None
    role: str | None = None
    org: str | None = None
    name: str | None = None
    comment: str | None = None


def every_column(model: type[Any]) -> type[BaseModel]:
    """``EveryColumn`` with ``model``'s key type: a schema may narrow a column's field but not
    change its type (an ``Any`` key would let a number into a text key)."""
    key: Any = model.model_fields["id"].annotation
    return create_model("EveryColumn", __base__=EveryColumn, id=(key | None, None))


async def header_auth(request: Request) -> AuthContext:
    org = request.headers.get("X-Org")
    return AuthContext(
        id=request.headers.get("X-User"),
        role=request.headers.get("X-Role"),
        context={"org": org} if org is not None else {},
    )


CALLERS: dict[str, tuple[dict[str, str], AuthContext]] = {
    "anonymous": ({}, AuthContext()),
    "alice in acme": (
        {"X-User": "alice", "X-Role": "member", "X-Org": "acme"},
        AuthContext(id="alice", role="member", context={"org": "acme"}),
    ),
    "alice, no org": ({"X-User": "alice"}, AuthContext(id="alice")),
}


def not_hidden(model: type[Any]) -> Any:
    """A rule Python cannot evaluate (a SQL function): the writes take the session path."""

    def where(_ctx: AuthContext) -> ColumnElement[bool]:
        return func.lower(model.name) != "hidden"

    return where


def make_app(db_url: str, model: type[Any], schemas: str, path: str) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    schema = every_column(model)
    custom = {"create_schema": schema, "update_schema": schema}
    cape.publish(model, **(custom if schemas == "custom" else {}))
    where = not_hidden(model) if path == "session" else None
    cape.permission_required(model, role="*", actions=["*"], where=where)
    return app, cape


def expected_auth_values(model: type[Any], ctx: AuthContext) -> dict[str, Any]:
    """What the server puts in the auth fields: the context's value, else the field default."""
    org = ctx.context.get("org")
    return {
        "owner": ctx.id,
        "role": ctx.role,
        "org": org if org is not None else model.model_fields["org"].default,
    }


def refused_on_create(model: type[Any]) -> list[str]:
    return [*AUTH_FIELDS, *([] if model in CHOSEN_KEY else ["id"])]


def chosen_keys(model: type[Any], n: int) -> tuple[Any, Any]:
    """Two fresh keys for the ``n``th caller, for a model whose key the client chooses."""
    if model is StrKey:
        return f"k-{n}", f"k-{n}-again"
    return 40 + n, 140 + n


@pytest.mark.parametrize(
    ("model", "schemas", "path"),
    list(itertools.product(MODELS, ["default", "custom"], ["direct", "session"])),
    ids=lambda v: getattr(v, "__name__", v),
)
async def test_clients_cannot_set_server_fields(
    db_url: str, model: type[Any], schemas: str, path: str
) -> None:
    app, _cape = make_app(db_url, model, schemas, path)
    table = model.__table__
    tried: set[tuple[str, str]] = set()
    async with app_client(app) as client:
        for n, (who, (headers, ctx)) in enumerate(CALLERS.items()):
            base: dict[str, Any] = {"name": f"n{n}"}
            second: dict[str, Any] = {"name": "again"}
            if model in CHOSEN_KEY:
                base["id"], second["id"] = chosen_keys(model, n)
            # each refused field, alone: a 422 naming it, nothing written
            for field in refused_on_create(model):
                # for AutoKey, the id its sequence hands out next (PostgreSQL's 409 repro)
                forged = {"id": 2 * n + 1 if model is not UuidKey else str(uuid.uuid4()),
                          "owner": "mallory", "role": "admin", "org": "evil"}[field]
                response = await client.post(f"/{table.name}", json={**base, field: forged},
                                             headers=headers)
                assert response.status_code == 422, (who, field, response.text)
                detail = response.json()["detail"]
                assert [e["loc"] for e in detail] == [["body", field]], detail
                assert "server" in detail[0]["msg"], detail
                tried.add(("create", field))
            # without them: 201, the server's values
            response = await client.post(f"/{table.name}", json=base, headers=headers)
            assert response.status_code == 201, (who, response.text)
            created = response.json()
            assert {f: created[f] for f in AUTH_FIELDS} == expected_auth_values(model, ctx), who
            if model in CHOSEN_KEY:
                assert created["id"] == base["id"]
            # a second one: a refused key never moved the database's own key sequence
            response = await client.post(f"/{table.name}", json=second, headers=headers)
            assert response.status_code == 201, (who, response.text)
            if who == "anonymous":
                continue  # anonymous updates: 401, not the point here
            # update: neither the key nor an auth field
            url = f"/{table.name}/{created['id']}"
            for field, forged in (("id", created["id"]), ("owner", "mallory"),
                                  ("role", "admin"), ("org", "evil")):
                response = await client.patch(url, json={field: forged}, headers=headers)
                assert response.status_code == 422, (who, field, response.text)
                detail = response.json()["detail"]
                assert [e["loc"] for e in detail] == [["body", field]], detail
                tried.add(("update", field))
            response = await client.patch(url, json={"name": "renamed"}, headers=headers)
            assert response.status_code == 200, response.text
            assert response.json() == {**created, "name": "renamed"}
        rows = (await client.get(f"/{table.name}")).json()
    assert len(rows) == 2 * len(CALLERS)
    assert {("update", f) for f in ("id", *AUTH_FIELDS)} <= tried
    assert {("create", f) for f in refused_on_create(model)} <= tried


async def test_user_sessions_and_bulk_inserts_fill_auth_fields(db_url: str) -> None:
    """ORM objects and bulk ``insert(Model)`` rows through a user session get the server's
    values, also where the context has none (the value sent was kept before). An ``insert()``
    statement that names other values is denied, not rewritten behind its back."""
    _app, cape = make_app(db_url, UuidKey, "default", "direct")
    spoofed: dict[str, Any] = {"owner": "mallory", "role": "admin", "org": "evil"}
    async with app_client(_app):
        for who, (_headers, ctx) in CALLERS.items():
            for statement, rows in (
                (insert(UuidKey), [{"name": f"spoofed bulk {who}", **spoofed}]),
                (insert(UuidKey).values(name=f"spoofed values {who}", **spoofed), None),
            ):
                async with cape.get_session(ctx) as session:
                    with pytest.raises(PermissionDeniedError):
                        await session.execute(statement, rows)
            async with cape.get_session(ctx) as session:
                obj = UuidKey(name=f"orm {who}", **spoofed)
                session.add(obj)
                await session.execute(insert(UuidKey), [{"name": f"bulk {who}"}])
                await session.execute(insert(UuidKey).values(name=f"values {who}"))
                await session.commit()
            async with cape.get_privileged_session() as session:
                rows = (await session.execute(select(UuidKey).where(
                    col(UuidKey.name).in_([f"orm {who}", f"bulk {who}", f"values {who}"])
                ))).scalars().all()
            assert len(rows) == 3
            for row in rows:
                got = {f: getattr(row, f) for f in AUTH_FIELDS}
                assert got == expected_auth_values(UuidKey, ctx), (who, row.name)
        # a privileged session (a job, a migration) sets them as it likes
        async with cape.get_privileged_session() as session:
            session.add(UuidKey(name="job", **spoofed))
            await session.commit()
            job = select(UuidKey).where(col(UuidKey.name) == "job")
            row = (await session.execute(job)).scalar_one()
            assert row.owner == "mallory"


def test_publish_says_which_schema_fields_are_refused_or_ignored(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A user's schema declaring refused fields still publishes (it may be shared with other
    code), and ``publish`` logs one warning per field that will be refused or ignored."""
    for model in MODELS:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="capebase"):
            app, _cape = make_app(sqlite_url, model, "custom", "direct")
        said = [r.getMessage() for r in caplog.records]
        expected_create = refused_on_create(model)
        for field in expected_create:
            assert any(f"EveryColumn.{field} is refused on create" in m for m in said), said
        for field in ("id", *AUTH_FIELDS):
            assert any(f"EveryColumn.{field} is refused on update" in m for m in said), said
        assert any("EveryColumn.comment is ignored on create" in m for m in said), said
        if model in CHOSEN_KEY:
            assert not any("EveryColumn.id is refused on create" in m for m in said), said
        assert len(said) == len(expected_create) + 4 + 2
        # OpenAPI shows only what a client may send
        key = {"id"} if model in CHOSEN_KEY else set()
        assert set(body_schema(app, "create", model)["properties"]) == {"name", "comment"} | key
        assert set(body_schema(app, "update", model)["properties"]) == {"name", "comment"}


def body_schema(app: FastAPI, route: str, model: type[Any]) -> dict[str, Any]:
    """The JSON schema of the body of the generated ``route`` ("create" or "update")."""
    openapi = app.openapi()
    name = model.__table__.name
    operation = next(
        op for path in openapi["paths"].values() for op in path.values()
        if op.get("operationId") == f"{route}_{name}"
    )
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    ref = body["oneOf"][0]["$ref"] if "oneOf" in body else body["$ref"]  # create: one or many
    schema: dict[str, Any] = openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def test_default_create_schema_takes_a_key_only_where_nothing_assigns_it(
    sqlite_url: str,
) -> None:
    for model in MODELS:
        app, _cape = make_app(sqlite_url, model, "default", "direct")
        create = body_schema(app, "create", model)
        assert set(create["properties"]) == {"name"} | ({"id"} if model in CHOSEN_KEY else set())
        assert ("id" in create["required"]) == (model in CHOSEN_KEY)
        assert set(body_schema(app, "update", model)["properties"]) == {"name"}


@pytest.mark.parametrize("path", ["direct", "session"])
async def test_a_caller_without_a_required_auth_value_cannot_create(
    db_url: str, path: str
) -> None:
    """An anonymous caller (no id) gets 401, a caller without the context key 403: never a
    409 from the NOT NULL constraint, and never a row filled from the body."""
    app, _cape = make_app(db_url, Owned, "default", path)
    async with app_client(app) as client:
        expected = {"anonymous": 401, "alice, no org": 403, "alice in acme": 201}
        for who, (headers, _ctx) in CALLERS.items():
            response = await client.post("/sec_owned", json={"name": who}, headers=headers)
            assert response.status_code == expected[who], (who, response.text)
        [row] = (await client.get("/sec_owned")).json()
        assert (row["owner"], row["org"], row["name"]) == ("alice", "acme", "alice in acme")
