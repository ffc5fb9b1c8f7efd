"""Table models shared by the tests, in a registry of their own.

The models live outside ``SQLModel.metadata`` so that other test modules (and the examples) can
define tables freely, and so that every CapeBase started by another test does not create these
tables too. CapeBase creates a published model's tables from the model's own metadata.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID


class TestModel(SQLModel, registry=registry()):
    """The base of the test tables: its own registry, so its own MetaData."""

    __test__ = False  # not a pytest test class


def utc_now() -> datetime:
    return datetime.now(UTC)


class Item(TestModel, table=True):
    """Every filterable type: int, str, bool, datetime, a nullable str, an owner."""

    __tablename__ = "crud_item"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True)
    name: str
    qty: int = 0
    active: bool = True
    note: str | None = None
    created_at: datetime = Field(default_factory=utc_now)


class Tag(TestModel, table=True):
    """A unique column, for 409 conflicts."""

    __tablename__ = "crud_tag"

    id: int | None = Field(default=None, primary_key=True)
    label: str = Field(unique=True, max_length=50)


class Slug(TestModel, table=True):
    """A str primary key."""

    __tablename__ = "crud_slug"

    # a letter first: the case-exact key test needs a key whose upper case differs
    # (twelve hex digits were all digits in one CI run in ~280)
    id: str = Field(
        default_factory=lambda: "s" + uuid.uuid4().hex[:11], primary_key=True, max_length=40
    )
    title: str


class Note(TestModel, table=True):
    """A UUID primary key."""

    __tablename__ = "crud_note"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    body: str


class CreateItem(SQLModel):
    """A user's create schema for Item that does not forbid extra fields itself."""

    name: str
    note: str | None = None


class UpdateItem(SQLModel):
    """A user's update schema for Item: only ``active`` may change."""

    active: bool = False
