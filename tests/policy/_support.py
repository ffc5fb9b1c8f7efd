"""Shared pieces of the policy tests: who calls, the app they call, and the rows as stored."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import delete, select, text

from capebase import AuthContext, CapeBase, CrudConfig
from tests import apps

USERS: dict[str, AuthContext] = {
    "anonymous": AuthContext(),
    "owner": AuthContext(id="alice", role="user"),
    "other": AuthContext(
        id="bob", role="user", context={"org_id": "o2", "manages": "o2", "clearance": 1}
    ),
    "admin": AuthContext(id="root", role="admin"),
    "matched": AuthContext(
        id="carol",
        role="user",
        context={"org_id": ["o1", "o3"], "manages": "o1", "clearance": 5},
    ),
    # Equal to "alice" under MariaDB's default case-insensitive collation; must not be.
    "lookalike": AuthContext(id="Alice", role="user"),
}
"""The callers of the permission matrix, by name."""


def as_(name: str) -> dict[str, str]:
    """The headers that make a request act as ``name`` (a key of the app's user table)."""
    return {"X-As": name}


def make_app(db_url: str, users: Mapping[str, AuthContext] = USERS) -> tuple[FastAPI, CapeBase]:
    """A fresh app whose callers are chosen by the ``X-As`` header (none: anonymous)."""

    async def auth(request: Request) -> AuthContext:
        return users[request.headers.get("X-As", "anonymous")]

    app = FastAPI()
    crud = CrudConfig(fast_path=apps.FAST_PATH)  # the fast_or_reference fixture sets it
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=auth, crud=crud)
    return app, cape


async def reset(cape: CapeBase, model: type[Any], rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace every row of ``model`` with ``rows``, bypassing the policy."""
    async with cape.get_privileged_session() as session:
        await session.execute(delete(model))
        session.add_all(model(**row) for row in rows)
        await session.commit()
        if cape.engine.dialect.name == "postgresql":
            # Explicit ids do not advance PostgreSQL's sequence; keep new ids clear of them.
            table = model.__tablename__
            await session.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1000 FROM {table}))"
                )
            )
            await session.commit()


async def stored(cape: CapeBase, model: type[Any], *fields: str) -> dict[Any, dict[str, Any]]:
    """Every row of ``model`` as stored (read with a privileged session), by primary key."""
    async with cape.get_privileged_session() as session:
        objects = (await session.scalars(select(model))).all()
    names = fields or tuple(c.key for c in model.__table__.c)
    return {obj.id: {name: getattr(obj, name) for name in names} for obj in objects}
