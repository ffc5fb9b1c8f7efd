"""A model with a column of each type users write, for the body-validation tests."""

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


class TypedModel(SQLModel, registry=registry()):
    """The base of these tables: its own registry, so its own MetaData."""

    __test__ = False


class Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class EveryType(TypedModel, table=True):
    """One column of each type; some optional, some not, some with a default."""

    __tablename__ = "typed_every"

    id: int | None = Field(default=None, primary_key=True)
    tally: int = 0
    big: int = Field(default=0, sa_type=BigInteger)
    ratio: float = 0.0
    price: Decimal = Field(default=Decimal("0"), max_digits=12, decimal_places=2)
    done: bool = False
    name: str = Field(default="", max_length=100)
    text: str | None = Field(default=None, sa_type=Text)
    day: date | None = None
    at: time | None = None
    moment: datetime | None = None
    local: NaiveDatetime | None = None
    span: timedelta | None = None
    token: uuid.UUID | None = None
    colour: Colour = Colour.RED
    meta: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    tags: list[str] | None = Field(default=None, sa_type=JSON)
    maybe_count: int | None = None
    maybe_ratio: float | None = None
    maybe_done: bool | None = None
    stars: int = Field(default=0, ge=0, le=5)  # bounds of its own, narrower than the column's


FIELDS = [name for name in EveryType.model_fields if name != "id"]
