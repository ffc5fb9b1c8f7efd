"""The app the TypeScript client's tests (clients/typescript/test) run against.

``python -m tests.clients.ts_app`` serves it with uvicorn on ``PORT`` (default 8000), with the
built-in auth, on the SQLite file or URL in ``TS_APP_DB``. ``CAPEBASE_SECRET`` keeps sign-ins
across a restart, ``TS_APP_TOKEN_LIFETIME`` (seconds, default 900) makes access tokens short so
that renewal shows. It publishes:

- ``todo``: the README's Todo, readable by everyone, written by its owner;
- ``reading``: a row of every value kind the client orders and filters by (UUID key, decimal,
  float, aware datetime, duration, enum, JSON, nullable text), same rules;
- ``secret``: a model with no read rule (every read is a 404 or an empty list);
- ``big``: a BigInteger key the caller chooses and a BigInteger value (both may pass 2^53);
- ``doc``: a text key (``"."`` and ``".."`` among them).

Lists page by 20, at most 50 (``CrudConfig``). Two accounts exist at start-up: ``alice`` and
``bob``, password ``<name>-password``.
"""

from __future__ import annotations

import enum
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, CapeBase, CrudConfig
from capebase.auth import PasswordAuth
from capebase.auth.builtin import AccountExistsError

ACCOUNTS = (("alice", "alice-password"), ("bob", "bob-password"))


class Todo(SQLModel, table=True):
    """A todo item, owned by the user who created it."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: FROM_AUTH_ID = Field(index=True)
    task: str
    is_complete: bool = Field(default=False)
    inserted_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))  # noqa: UP017


class CreateTodo(SQLModel):
    """``POST /todo``: an empty task is a 422."""

    task: str = Field(min_length=1, max_length=200)
    is_complete: bool = False


class UpdateTodo(SQLModel):
    """``PATCH /todo/{id}``."""

    task: str | None = Field(default=None, min_length=1, max_length=200)
    is_complete: bool | None = None


class Kind(enum.StrEnum):
    """A reading's kind."""

    TEMPERATURE = "temperature"
    HUMIDITY = "humidity"


class Reading(SQLModel, table=True):
    """A row with every value kind the client compares."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner: FROM_AUTH_ID = Field(index=True)
    label: str
    note: str | None = None
    amount: Decimal = Field(default=Decimal("0"), max_digits=10, decimal_places=2)
    score: float | None = None
    taken_at: datetime | None = None
    duration: timedelta | None = None
    kind: Kind = Kind.TEMPERATURE
    data: dict[str, Any] | None = Field(default=None, sa_type=JSON)


class Secret(SQLModel, table=True):
    """A table nobody may read."""

    id: int | None = Field(default=None, primary_key=True)
    owner: FROM_AUTH_ID
    body: str = ""


class Big(SQLModel, table=True):
    """Integers past 2^53, which a JavaScript number cannot hold exactly."""

    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    owner: FROM_AUTH_ID
    value: int = Field(default=0, sa_type=BigInteger)


class Doc(SQLModel, table=True):
    """A row with a text key."""

    slug: str = Field(primary_key=True)
    owner: FROM_AUTH_ID
    title: str = ""


@asynccontextmanager
async def create_accounts(_app: FastAPI) -> AsyncIterator[None]:
    """Create the test accounts unless they exist."""
    for username, password in ACCOUNTS:
        with suppress(AccountExistsError):
            await auth.create_user(f"{username}@example.com", password, username=username)
    yield


def database_url() -> str:
    """TS_APP_DB as a URL: a value with ``://`` is used as is, anything else is a file path."""
    value = os.environ.get("TS_APP_DB", "ts-app.db")
    return value if "://" in value else f"sqlite+aiosqlite:///{value}"


app = FastAPI(title="capebase TypeScript client test app", lifespan=create_accounts)
auth = PasswordAuth(
    secret=os.environ.get("CAPEBASE_SECRET", "x" * 64),
    access_token_lifetime=timedelta(seconds=float(os.environ.get("TS_APP_TOKEN_LIFETIME", "900"))),
    dev=True,
    # The tests sign in concurrently, many times, from one address.
    max_failed_logins=1000,
    max_failed_logins_per_address=1000,
)
# Pages smaller than capebase's defaults (100, at most 1000): a client must take the app's.
cape = CapeBase(app=app, db_url=database_url(), auth=auth,
                crud=CrudConfig(default_page_size=20, max_page_size=50))
cape.publish(Todo, create_schema=CreateTodo, update_schema=UpdateTodo)
cape.publish(Reading)
cape.publish(Secret)
cape.publish(Big)
cape.publish(Doc)
for model, owner in ((Todo, "user_id"), (Reading, "owner"), (Big, "owner"), (Doc, "owner")):
    cape.permission_required(model, role="*", actions=["read"])
    cape.permission_required(model, owner_field=owner, actions=["create", "update", "delete"])
cape.permission_required(Secret, owner_field="owner", actions=["create"])


def main() -> None:
    """Serve the app on 127.0.0.1:PORT until SIGTERM."""
    port = int(os.environ.get("PORT", "8000"))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
