"""The todo demo app: the README's Todo model, rules and custom route, served over SQLite.

The auth provider trusts two request headers and is for trying the API locally only:

    X-User-Id: alice       acts as user "alice" (no X-User-Id header: anonymous)
    X-User-Role: admin     gives that user the "admin" role

Set TODO_DEMO_DB to a file path or an SQLAlchemy URL to use another database
(default: todo-demo.db in the current directory).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Annotated

from fastapi import Depends, FastAPI, Header
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase, ModelChange

logger = logging.getLogger("examples.todo")


def database_url() -> str:
    """TODO_DEMO_DB as a URL: a value with ``://`` is used as is, anything else is a file path."""
    value = os.environ.get("TODO_DEMO_DB", "todo-demo.db")
    return value if "://" in value else f"sqlite+aiosqlite:///{value}"


class Todo(SQLModel, table=True):
    """A todo item, owned by the user who created it."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: FROM_AUTH_ID = Field(index=True)  # filled from the caller's AuthContext.id
    task: str
    is_complete: bool = Field(default=False)
    # timezone.utc, not datetime.UTC: the spelling the README and DESIGN.md use.
    inserted_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))  # noqa: UP017


async def demo_auth(
    x_user_id: Annotated[str | None, Header()] = None,
    x_user_role: Annotated[str | None, Header()] = None,
) -> AuthContext:
    """DEMO ONLY — anyone can claim any user or role by sending a header. Never deploy this:
    a real provider verifies a session cookie or a signed token (see the README)."""
    if not x_user_id:
        return AuthContext()  # anonymous
    return AuthContext(id=x_user_id, role=x_user_role or None)


app = FastAPI(title="capebase todo demo")
cape = CapeBase(app=app, db_path=database_url(), get_auth_context=demo_auth)

cape.publish(Todo)

# Everyone (anonymous included) may read; users create, update and delete their own todos;
# admins may do anything.
cape.permission_required(Todo, role="*", actions=["read"])
cape.permission_required(Todo, owner_field="user_id", actions=["create", "update", "delete"])
cape.permission_required(Todo, role="admin", actions=["read", "create", "update", "delete"])


@app.get("/todo/filter")
async def filter_todos(
    completed: bool,
    session: AsyncSession = Depends(cape.get_db_dependency()),
) -> Sequence[Todo]:
    """Todos by completion status, read through a session that acts as the caller."""
    result = await session.execute(select(Todo).where(Todo.is_complete == completed))
    return result.scalars().all()


@cape.subscribe(Todo)
async def log_change(change: ModelChange[Todo]) -> None:
    """Log each committed change.

    capebase calls it after each commit, outside the request that made the change.
    """
    logger.info("%s todo %s: %r", change.event, change.payload.id, change.payload.task)
