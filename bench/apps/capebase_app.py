"""Contender (a): capebase's generated routes for the seed's Todo, with the README's rules.

BENCH_VARIANT picks the configuration:

- ``default``: public read; owner create/update/delete (the README's rules).
- ``open``: one ``role="*"`` rule for every action, so permission checks are trivially true
  (the "permission filtering off" side of the feature-cost ratio; capebase has no switch).
- ``nocapture``: the README's rules with ``RealtimeConfig(capture=False)``.
- ``rt-owner``: realtime fan-out, each subscriber reads only its own rows (an owner read rule).
- ``rt-public``: realtime fan-out, everyone reads everything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import FastAPI, Header
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase
from capebase.realtime.config import RealtimeConfig

from .common import database_url, raise_fd_limit, utc_now, variant

VARIANTS = ("default", "open", "nocapture", "rt-owner", "rt-public")


class Todo(SQLModel, table=True):
    """The seed's Todo: ``user_id`` is filled from the caller's AuthContext."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: FROM_AUTH_ID = Field(index=True)
    task: str
    is_complete: bool = Field(default=False)
    inserted_at: datetime = Field(default_factory=utc_now)


class Note(SQLModel, table=True):
    """A note on a todo (seeded by bench/seed.py): the relation ``note`` of a todo, found
    from the foreign key, which ``?expand=note`` lists."""

    id: int | None = Field(default=None, primary_key=True)
    todo_id: int = Field(foreign_key="todo.id", index=True)
    text: str


class CreateTodo(SQLModel):
    """POST body, as in the README."""

    task: str
    is_complete: bool = Field(default=False)


class UpdateTodo(SQLModel):
    """PATCH body: the fields the baselines accept too."""

    task: str | None = None
    is_complete: bool | None = None


async def header_auth(
    x_user_id: Annotated[str | None, Header()] = None,
) -> AuthContext:
    """Trusts X-User-Id as is: the same header auth every contender uses."""
    return AuthContext(id=x_user_id) if x_user_id else AuthContext()


def build() -> FastAPI:
    """The app for BENCH_VARIANT."""
    name = variant()
    if name not in VARIANTS:
        raise SystemExit(f"BENCH_VARIANT={name!r}; choose from {', '.join(VARIANTS)}")
    raise_fd_limit()
    app = FastAPI(title=f"capebase bench ({name})")
    realtime = RealtimeConfig(capture=name != "nocapture")
    cape = CapeBase(app=app, db_url=database_url(), get_auth_context=header_auth,
                    realtime=realtime)
    cape.publish(Todo, create_schema=CreateTodo, update_schema=UpdateTodo)
    cape.publish(Note, routes=["list", "get"])
    cape.permission_required(Note, role="*", actions=["read"])
    owner_writes = ["create", "update", "delete"]
    if name == "open":
        cape.permission_required(Todo, role="*", actions=["*"])
    elif name == "rt-owner":
        cape.permission_required(Todo, owner_field="user_id", actions=["read", *owner_writes])
    else:
        cape.permission_required(Todo, role="*", actions=["read"])
        cape.permission_required(Todo, owner_field="user_id", actions=owner_writes)
    return app


app = build()
