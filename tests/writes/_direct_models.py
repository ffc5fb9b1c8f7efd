"""Models and app builders for tests/writes/test_direct_paths.py: every kind of default the direct
write path computes itself, auth-filled fields, and rules Python cannot evaluate.

The models live in a registry of their own (see tests/models.py), so they only exist in the
databases of the tests that publish them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import JSON, ColumnDefault, ColumnElement, event, func
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase, from_context


class DirectModel(SQLModel, registry=registry()):
    """The base of these tables: its own registry, so its own MetaData."""

    __test__ = False  # not a pytest test class


FACTORY_LABEL = "made-by-factory"
PY_DEFAULT = "py-default"
TOUCHED = "touched"
MUTABLE_DEFAULT = ["a", "b"]


def make_label() -> str:
    return FACTORY_LABEL


def py_default() -> str:
    return PY_DEFAULT


def touch() -> str:
    return TOUCHED


ORG_ID = from_context("org")


class Gadget(DirectModel, table=True):
    """One column for each way a value can be filled in when the caller leaves it out."""

    __tablename__ = "direct_gadget"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True)
    org_id: ORG_ID = Field(default="no-org", max_length=40)
    name: str  # VARCHAR(255) on MySQL/MariaDB only: longer values are a DataError there
    qty: int = 7  # a scalar default
    label: str = Field(default_factory=make_label, max_length=40)  # a default_factory
    tags: list[str] = Field(default=MUTABLE_DEFAULT, sa_type=JSON)  # a mutable default
    extra: dict[str, Any] | None = Field(default=None, sa_type=JSON)  # nullable JSON
    region: str | None = Field(
        default=None, max_length=10, sa_column_kwargs={"server_default": "eu"}
    )
    stamp: str | None = Field(
        default=None, max_length=40, sa_column_kwargs={"default": py_default}
    )  # a Python-side Column default (a function)
    level: int | None = Field(default=None, sa_column_kwargs={"default": 3})  # a scalar one
    touched: str | None = Field(
        default=None, max_length=40, sa_column_kwargs={"onupdate": touch}
    )  # a Python-side onupdate
    revision: int = 0  # a SQL onupdate of its own column (set below)
    code: str | None = Field(default=None, unique=True, max_length=40)  # for 409s


# revision = revision + 1 on every UPDATE: SQL that reads only the row being written (the
# column itself, not text: literal_column would be SQL a user session cannot see into).
_revision = Gadget.__table__.c.revision  # type: ignore[attr-defined]
ColumnDefault(_revision + 1, for_update=True)._set_parent_with_dispatch(_revision)


class GadgetCreateWithAuthFields(SQLModel):
    """A user's create schema that lets the client send the auth-filled fields."""

    name: str
    owner_id: str | None = None
    org_id: str | None = None


class Memo(DirectModel, table=True):
    """A model whose rules use SQL functions, which Python cannot evaluate."""

    __tablename__ = "direct_memo"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True)
    title: str = Field(max_length=100)


def memo_readable(_ctx: AuthContext) -> ColumnElement[bool]:
    return func.lower(Memo.title) != "hidden"


def memo_writable(_ctx: AuthContext) -> ColumnElement[bool]:
    return func.lower(Memo.title).like("open%")


def note_for(context: Any) -> str:
    """A Column default that reads SQLAlchemy's execution context: only Core can compute it."""
    return f"for-{context.get_current_parameters()['name']}"


class Stamped(DirectModel, table=True):
    """A context-taking Column default: ``DirectWriter.supports`` refuses the model."""

    __tablename__ = "direct_stamped"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=40)
    note: str | None = Field(default=None, max_length=80, sa_column_kwargs={"default": note_for})


class Word(DirectModel, table=True):
    """Rows for list reads: filters, pages, the SQLite loop reader."""

    __tablename__ = "direct_word"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: str = Field(default="", max_length=40, index=True)
    text: str = Field(max_length=100)


async def header_auth(request: Request) -> AuthContext:
    """``X-User``, ``X-Role`` and ``X-Org`` headers → AuthContext (``X-Org``: context "org")."""
    org = request.headers.get("X-Org")
    return AuthContext(
        id=request.headers.get("X-User"),
        role=request.headers.get("X-Role"),
        context={"org": org} if org is not None else {},
    )


def caller(user: str, org: str | None = None, role: str | None = None) -> dict[str, str]:
    """The headers of a request made by ``user`` (in ``org``, with ``role``)."""
    headers = {"X-User": user}
    if org is not None:
        headers["X-Org"] = org
    if role is not None:
        headers["X-Role"] = role
    return headers


def make_app(db_url: str, **options: Any) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth, **options)
    return app, cape


class CoreStatements:
    """The SQL statements that went through SQLAlchemy Core (the session path and any other
    Connection use); the direct path sends its statements to the driver and is never seen."""

    def __init__(self, cape: CapeBase) -> None:
        self.seen: list[str] = []
        self._engine = cape.engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(statement)

    @contextmanager
    def watching(self) -> Iterator[list[str]]:
        """The statements sent through Core inside the block."""
        start = len(self.seen)
        found: list[str] = []
        try:
            yield found
        finally:
            found.extend(self.seen[start:])

    def statements_on(self, statements: list[str], table: str) -> list[str]:
        """The statements among ``statements`` that name ``table``."""
        return [s for s in statements if table in s]

    def writes(self, statements: list[str], table: str) -> list[str]:
        """The INSERT, UPDATE and DELETE statements on ``table`` among ``statements``."""
        verbs = ("INSERT", "UPDATE", "DELETE")
        return [
            s for s in statements if s.lstrip().upper().startswith(verbs) and table in s
        ]
