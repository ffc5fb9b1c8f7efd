"""The todo demo app: the README's Todo model and rules, the built-in auth, and a web page.

``make demo`` serves it (see ``__main__.py``). What it shows:

- ``/``: a page (``static/``) to sign up or sign in, add, toggle and delete todos, and watch
  them change live as other users edit theirs;
- ``/todo``: the REST routes and the SSE stream ``cape.publish(Todo)`` generates;
- ``/auth/...``: the built-in password auth (``PasswordAuth``);
- ``/demo/...``: two small helpers for the page: the demo accounts and user names.

Settings (environment variables):

    TODO_DEMO_DB      a file path or an SQLAlchemy URL (default: todo-demo.db here)
    CAPEBASE_SECRET   the token signing key; without it a random one is generated at each
                      start, so sign-ins do not survive a restart
    TODO_DEMO_TOKEN_LIFETIME   seconds an access token lasts (default 900); the page refreshes
                      it before it expires, so a short one shows refreshing at work
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from capebase import FROM_AUTH_ID, CapeBase, ModelChange
from capebase.auth import PasswordAuth
from capebase.auth.builtin import AccountExistsError, User

logger = logging.getLogger("examples.todo")

STATIC = Path(__file__).parent / "static"

DEMO_ACCOUNTS = (("alice", "alice-password"), ("bob", "bob-password"))
"""(username, password) of the accounts created at startup; their email is user@example.com."""

SECRET_VARIABLE = "CAPEBASE_SECRET"


def database_url() -> str:
    """TODO_DEMO_DB as a URL: a value with ``://`` is used as is, anything else is a file path."""
    value = os.environ.get("TODO_DEMO_DB", "todo-demo.db")
    return value if "://" in value else f"sqlite+aiosqlite:///{value}"


def signing_secret() -> tuple[str, bool]:
    """The token signing key, and whether it was generated for this process only."""
    value = os.environ.get(SECRET_VARIABLE)
    if value:
        return value, False
    return secrets.token_urlsafe(64), True


class Todo(SQLModel, table=True):
    """A todo item, owned by the user who created it."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: FROM_AUTH_ID = Field(index=True)  # filled from the caller's AuthContext.id
    task: str
    is_complete: bool = Field(default=False)
    # timezone.utc, not datetime.UTC: the spelling the README and DESIGN.md use.
    inserted_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))  # noqa: UP017


class CreateTodo(SQLModel):
    """The body of ``POST /todo``: an empty or very long task is a 422."""

    task: str = Field(min_length=1, max_length=200)
    is_complete: bool = False


class UpdateTodo(SQLModel):
    """The body of ``PATCH /todo/{id}``: any of the task and its completion."""

    task: str | None = Field(default=None, min_length=1, max_length=200)
    is_complete: bool | None = None


@asynccontextmanager
async def create_demo_accounts(_app: FastAPI) -> AsyncIterator[None]:
    """Create the demo accounts unless they exist (runs after CapeBase made the tables)."""
    for username, password in DEMO_ACCOUNTS:
        try:
            await auth.create_user(f"{username}@example.com", password, username=username)
            logger.info("created demo account %s", username)
        except AccountExistsError:
            pass
    yield


SECRET, SECRET_IS_GENERATED = signing_secret()

app = FastAPI(title="capebase todo demo", lifespan=create_demo_accounts)
auth = PasswordAuth(
    secret=SECRET,
    access_token_lifetime=timedelta(seconds=int(os.environ.get("TODO_DEMO_TOKEN_LIFETIME", "900"))),
)
cape = CapeBase(app=app, db_url=database_url(), auth=auth)

cape.publish(Todo, create_schema=CreateTodo, update_schema=UpdateTodo)

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
    """Log each committed change (capebase calls it after the commit, outside the request)."""
    logger.info("%s todo %s: %r", change.event, change.payload.id, change.payload.task)


# -- what the page needs besides the generated API -------------------------------------------


class DemoAccount(BaseModel):
    """A demo account the sign-in form offers to fill in."""

    username: str
    password: str


class UserName(BaseModel):
    """Who a ``Todo.user_id`` is, as the page shows it."""

    id: str
    name: str


@app.get("/demo/accounts", tags=["demo"])
async def demo_accounts() -> list[DemoAccount]:
    """The demo accounts and their passwords (a demo convenience: never do this for real)."""
    return [DemoAccount(username=u, password=p) for u, p in DEMO_ACCOUNTS]


@app.get("/demo/users", tags=["demo"])
async def user_names() -> list[UserName]:
    """Every user's id and username (or the part of the email before the @), so the page can
    say whose a todo is. Todos are public here, and so are their owners' names."""
    query = select(col(User.id), col(User.username), col(User.email)).order_by(col(User.email))
    async with cape.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [UserName(id=id_, name=username or email.split("@")[0]) for id_, username, email in rows]


@app.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The demo page."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


# Under /static, not /: a mount at / would shadow the generated /todo routes.
app.mount("/static", StaticFiles(directory=STATIC), name="static")
