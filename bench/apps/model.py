"""The seed's Todo model (README quick start), as the baselines declare it: a plain ``user_id``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlmodel import Field, SQLModel

from .common import utc_now


class Todo(SQLModel, table=True):
    """A todo item, owned by the user who created it."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(index=True)
    task: str
    is_complete: bool = Field(default=False)
    inserted_at: datetime = Field(default_factory=utc_now)


class Note(SQLModel, table=True):
    """A note on a todo: the related rows of capebase's "list 20 with expand" scenario."""

    id: int | None = Field(default=None, primary_key=True)
    todo_id: int = Field(foreign_key="todo.id", index=True)
    text: str


class TodoCreate(BaseModel):
    """POST body: the owner comes from the caller, never from the body."""

    model_config = ConfigDict(extra="forbid")

    task: str
    is_complete: bool = False


class TodoUpdate(BaseModel):
    """PATCH body: any subset of the writable fields."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = None
    is_complete: bool | None = None


class TodoRead(BaseModel):
    """The row as returned by the API."""

    id: int
    user_id: str
    task: str
    is_complete: bool
    inserted_at: datetime
