"""The type matrix's models: one column of every type SQLModel users write, required and
optional, under an int, a str and a UUID primary key.

The models live in a registry of their own (see tests/models.py), so they only exist in the
databases of the tests that publish them.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import JSON, BigInteger, Text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class TypesModel(SQLModel, registry=registry()):
    """The base of these tables: its own registry, so its own MetaData."""

    __test__ = False  # not a pytest test class


class Colour(enum.StrEnum):
    # Names in declaration order are also in alphabetical order: PostgreSQL and MariaDB sort
    # enums by declaration, SQLite (which stores the names) alphabetically.
    AMBER = "amber"
    BLUE = "blue"
    CYAN = "cyan"


class Columns(TypesModel):
    """Every type, required (``name`` also carries the rules Python cannot evaluate)."""

    name: str = Field(max_length=60)
    small: int
    big: int = Field(sa_type=BigInteger)
    ratio: float
    price: Decimal = Field(max_digits=12, decimal_places=3)
    flag: bool
    body: str = Field(sa_type=Text)
    day: date
    clock: time
    moment: datetime
    naive: NaiveDatetime
    span: timedelta
    ref: uuid.UUID
    colour: Colour
    doc: dict[str, Any] = Field(sa_type=JSON)
    items: list[Any] = Field(sa_type=JSON)

    o_small: int | None = None
    o_big: int | None = Field(default=None, sa_type=BigInteger)
    o_ratio: float | None = None
    o_price: Decimal | None = Field(default=None, max_digits=12, decimal_places=3)
    o_flag: bool | None = None
    o_name: str | None = Field(default=None, max_length=60)
    o_body: str | None = Field(default=None, sa_type=Text)
    o_day: date | None = None
    o_clock: time | None = None
    o_moment: datetime | None = None
    o_naive: NaiveDatetime | None = None
    o_span: timedelta | None = None
    o_ref: uuid.UUID | None = None
    o_colour: Colour | None = None
    o_doc: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    o_items: list[Any] | None = Field(default=None, sa_type=JSON)


class IntKeyed(Columns, table=True):
    __tablename__ = "types_int"

    id: int | None = Field(default=None, primary_key=True)


def new_slug() -> str:
    return uuid.uuid4().hex[:16]


class StrKeyed(Columns, table=True):
    __tablename__ = "types_str"

    id: str = Field(default_factory=new_slug, primary_key=True, max_length=40)


class UuidKeyed(Columns, table=True):
    __tablename__ = "types_uuid"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)


MODELS: dict[str, type[Columns]] = {"int": IntKeyed, "str": StrKeyed, "uuid": UuidKeyed}
