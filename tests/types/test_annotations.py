"""A field's annotation and its column type must agree, or ``publish`` refuses the model naming
the field, the annotation and the column type; so must a user's create or update schema with
the model's field. Column types that give back another value than the one stored (a single
precision float, a space-padded ``CHAR``, a rounded interval) are refused whatever the
annotation. A ``str`` field in a plain ``Enum("red", "green")`` column takes its members only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from pydantic import AwareDatetime, BaseModel, EmailStr, NaiveDatetime, create_model
from sqlalchemy import (
    ARRAY,
    CHAR,
    JSON,
    REAL,
    BigInteger,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    Interval,
    Numeric,
    String,
    Uuid,
)
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import registry
from sqlalchemy.types import UserDefinedType
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import UTCDateTime

from capebase import CapeBase, ConfigurationError
from capebase.errors import QueryError
from capebase.filters.query import filter_fields
from capebase.filters.streams import parse_stream_filters
from capebase.testing import app_client
from tests.apps import make_cape
from tests.types._models import Colour

URLS = {
    "sqlite": "sqlite+aiosqlite:///:memory:",
    "postgresql": "postgresql+asyncpg://u@127.0.0.1/db",
    "mysql": "mysql+asyncmy://root@127.0.0.1/db",
}


class Point(UserDefinedType[Any]):
    """A column type SQLAlchemy knows no Python type for."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "TEXT"


def model_with(annotation: Any, field: Any, name: str = "M") -> type[Any]:
    """A table model whose field ``v`` is ``annotation`` declared as ``field``."""

    class Base(SQLModel, registry=registry()):
        pass

    namespace = {
        "__tablename__": "annotated",
        "__annotations__": {"id": int | None, "v": annotation},
        "id": Field(default=None, primary_key=True),
        "v": field,
    }
    return type(name, (Base,), namespace, table=True)


def refusal(url: str, model: type[Any], **options: Any) -> str:
    """The message of the ConfigurationError ``publish`` raises for ``model``."""
    cape = CapeBase(app=FastAPI(), db_url=url)
    with pytest.raises(ConfigurationError) as raised:
        cape.publish(model, **options)
    return str(raised.value)


# (annotation, the field's declaration, what the message says besides the field and the type)
MISMATCHED: dict[str, tuple[Any, Callable[[], Any], list[str]]] = {
    "uuid in text uuid": (uuid.UUID, lambda: Field(sa_type=Uuid(as_uuid=False)), ["as_uuid"]),
    "str in text uuid": (str, lambda: Field(sa_type=Uuid(as_uuid=False)), ["as_uuid"]),
    "int in String": (int, lambda: Field(sa_type=String(5)), ["annotated int", "serves str"]),
    "str in Integer": (str, lambda: Field(sa_type=Integer), ["annotated str", "serves int"]),
    "str in BigInteger": (str, lambda: Field(sa_type=BigInteger), ["annotated str"]),
    "datetime in Date": (dt.datetime, lambda: Field(sa_type=Date),
                         ["annotated datetime", "serves date"]),
    "date in DateTime": (dt.date, lambda: Field(sa_type=DateTime), ["annotated date"]),
    "aware in naive": (AwareDatetime, lambda: Field(sa_type=DateTime),
                       ["annotated AwareDatetime", "NaiveDatetime"]),
    "naive in aware": (NaiveDatetime, lambda: Field(sa_type=UTCDateTime),
                       ["annotated NaiveDatetime", "AwareDatetime"]),
    "float in Numeric": (float, lambda: Field(sa_type=Numeric(6, 2)),
                         ["annotated float", "serves Decimal"]),
    "Decimal in Float": (Decimal, lambda: Field(sa_type=Float), ["annotated Decimal"]),
    "str in an enum class": (str, lambda: Field(sa_column=Column(Enum(Colour), nullable=False)),
                             ["annotated str", "serves Colour"]),
    "IPv4Address": (ipaddress.IPv4Address, lambda: Field(), ["annotated IPv4Address"]),
    "datetimes in JSON": (dict[str, dt.datetime], lambda: Field(sa_type=JSON),
                          ["annotated dict[str, datetime.datetime]"]),
    "an unknown type": (str, lambda: Field(sa_type=Point), ["cannot serve the column type"]),
    # Refused whatever the annotation: the database gives back another value.
    "Float(24)": (float, lambda: Field(sa_type=Float(precision=24)), ["single-precision"]),
    "REAL": (float, lambda: Field(sa_type=REAL), ["single-precision"]),
    "asdecimal=False": (float, lambda: Field(sa_type=Numeric(10, 2, asdecimal=False)),
                        ["asdecimal=False"]),
    "asdecimal=True": (Decimal, lambda: Field(sa_type=Float(asdecimal=True)), ["asdecimal=True"]),
    "CHAR": (str, lambda: Field(sa_type=CHAR(5)), ["CHAR", "String(n)"]),
    "Interval(0)": (dt.timedelta, lambda: Field(sa_type=Interval(second_precision=0)),
                    ["second_precision"]),
    "TIMESTAMP(0)": (dt.datetime, lambda: Field(sa_type=pg.TIMESTAMP(precision=0)),
                     ["0 fractional-second digits"]),
}


@pytest.mark.parametrize("dialect", list(URLS))
@pytest.mark.parametrize("case", list(MISMATCHED))
def test_a_field_its_column_does_not_store_exactly_is_refused(dialect: str, case: str) -> None:
    """Regression: these published, then answered 500s (an ``int`` sent to PostgreSQL's
    ``VARCHAR``, a ``uuid.UUID`` in ``Uuid(as_uuid=False)`` on SQLite) or changed values (a
    ``datetime`` stored as its date, 0.1 as 0.10000000149011612, ``'ab'`` as ``'ab   '``)."""
    annotation, field, said = MISMATCHED[case]
    model = model_with(annotation, field())
    message = refusal(URLS[dialect], model)
    column_type = repr(model.__table__.c.v.type)
    assert f"Cannot publish M: field 'v' ({column_type}) cannot be served" in message
    for words in said:
        assert words in message, message


def test_a_column_type_of_another_database_is_refused_by_its_annotation() -> None:
    """PostgreSQL's MONEY and INTERVAL with fields publish nowhere else (the other databases
    lack them), nor an aware DateTime (SQLite and MySQL store no offset): on PostgreSQL they
    gave back other values, or a 500."""
    for annotation, field, said in (
        (Decimal, Field(sa_type=pg.MONEY, max_digits=10, decimal_places=2),
         "cannot serve the column type MONEY()"),
        (dt.timedelta, Field(sa_type=pg.INTERVAL(fields="DAY")), "rounds such an interval"),
        (dt.date, Field(sa_type=DateTime(timezone=True)), "annotated date"),
    ):
        message = refusal(URLS["postgresql"], model_with(annotation, field))
        assert "field 'v'" in message and said in message, message


SERVED: dict[str, tuple[Any, Callable[[], Any]]] = {
    "Literal in String": (Literal["a", "b"], lambda: Field(sa_type=String(5))),
    "EmailStr": (EmailStr, lambda: Field(max_length=80)),
    "Literal in a str enum": (Literal["red"], lambda: Field(
        sa_column=Column(Enum("red", "green", name="served_col"), nullable=False))),
    "enum class": (Colour, lambda: Field()),
    "values_callable": (Colour, lambda: Field(sa_column=Column(
        Enum(Colour, values_callable=lambda e: [m.value for m in e]), nullable=False))),
    "NaiveDatetime": (NaiveDatetime, lambda: Field()),
    "AwareDatetime": (AwareDatetime, lambda: Field()),
    "aware in UTCDateTime": (dt.datetime, lambda: Field(sa_type=UTCDateTime)),
    "BigInteger variant": (
        int, lambda: Field(sa_type=BigInteger().with_variant(Integer, "sqlite"))
    ),
    "Double": (float, lambda: Field(sa_type=Float(precision=53))),
    "JSON": (list[str | None] | None, lambda: Field(default=None, sa_type=JSON)),
    "JSON anything": (Any, lambda: Field(default=None, sa_type=JSON)),
}


@pytest.mark.parametrize("dialect", list(URLS))
@pytest.mark.parametrize("case", list(SERVED))
def test_annotations_their_column_stores_exactly_publish(dialect: str, case: str) -> None:
    annotation, field = SERVED[case]
    CapeBase(app=FastAPI(), db_url=URLS[dialect]).publish(model_with(annotation, field()))


def test_arrays_publish_with_items_of_their_type() -> None:
    for annotation, column_type in ((list[list[float]], ARRAY(Float, dimensions=2)),
                                    (list[str | None], ARRAY(String(5)))):
        CapeBase(app=FastAPI(), db_url=URLS["postgresql"]).publish(
            model_with(annotation, Field(sa_type=column_type))
        )
    for annotation, column_type in ((list[float], ARRAY(Float, dimensions=2)),
                                    (list[int], ARRAY(String(5))), (list, ARRAY(Integer))):
        message = refusal(URLS["postgresql"], model_with(annotation, Field(sa_type=column_type)))
        assert "field 'v'" in message and "serves a list[...]" in message, message


class Account(SQLModel, registry=registry()):
    __test__ = False


class Acct(Account, table=True):
    __tablename__ = "annotated_acct"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(default="n", max_length=10)
    price: Decimal = Field(default=Decimal(0), max_digits=6, decimal_places=2)
    ref: uuid.UUID | None = None
    day: dt.date | None = None
    moment: NaiveDatetime | None = None
    doc: dict[str, Any] | None = Field(default=None, sa_type=JSON)


WRONG_SCHEMAS: dict[str, tuple[str, Any, str]] = {
    "float for a Decimal": ("price", float, "annotated float"),
    "str for a UUID": ("ref", str | None, "annotated str"),
    "str for a date": ("day", str | None, "annotated str"),
    "datetime for a date": ("day", dt.datetime, "annotated datetime"),
    "aware for a naive column": ("moment", AwareDatetime, "annotated AwareDatetime"),
    "Any for a dict": ("doc", Any, "annotated Any where the model's field is dict"),
    "a list for a dict": ("doc", list[int] | None, "annotated list[int]"),
    "int for a str": ("name", int, "annotated int"),
}


@pytest.mark.parametrize("route", ["create", "update"])
@pytest.mark.parametrize("case", list(WRONG_SCHEMAS))
def test_a_schema_that_changes_a_fields_type_is_refused(route: str, case: str) -> None:
    """Regression: a create or update schema's ``price: float`` was rounded to the column's
    cents, ``ref: str`` and ``day: str`` were 500s for values that are no UUID or date, and
    ``doc: Any`` stored a string in a ``dict`` field."""
    name, annotation, said = WRONG_SCHEMAS[case]
    schema = create_model("Loose", **{name: (annotation, None)})  # type: ignore[call-overload]
    message = refusal(URLS["sqlite"], Acct, **{f"{route}_schema": schema})
    assert f"Cannot publish Acct with {route}_schema=Loose: field {name!r}" in message, message
    assert said in message, message


class Narrow(BaseModel):
    """A schema that narrows the model's fields, as schemas are for."""

    name: Literal["a", "b"]
    price: Decimal = Field(default=Decimal(1), gt=0)
    ref: uuid.UUID | None = None
    day: dt.date
    moment: dt.datetime | None = None  # the column chooses the grammar (no offset)
    doc: dict[str, int] | None = None


async def test_a_schema_may_narrow_fields_and_the_columns_limits_still_apply(
    db_url: str,
) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Acct, create_schema=Narrow, update_schema=Narrow)
    cape.permission_required(Acct, actions=["*"])
    async with app_client(app) as client:
        body = {"name": "a", "day": "2024-05-01", "price": "1.25", "doc": {"x": 1}}
        response = await client.post("/annotated_acct", json=body)
        assert response.status_code == 201, response.text
        for wrong in ({"price": "0.125"}, {"name": "c"}, {"doc": {"x": "y"}},
                      {"moment": "2024-05-01T12:00:00Z"}):
            response = await client.post("/annotated_acct", json={**body, **wrong})
            assert response.status_code == 422, (wrong, response.text)
            assert [e["loc"][:2] for e in response.json()["detail"]] == [
                ["body", next(iter(wrong))]
            ], response.text


class Painted(Account, table=True):
    __tablename__ = "annotated_painted"

    id: int | None = Field(default=None, primary_key=True)
    c: str = Field(sa_column=Column(Enum("red", "green", name="annotated_col"), nullable=False))
    o: str | None = Field(
        default=None, sa_column=Column(Enum("red", "green", name="annotated_o"), nullable=True)
    )


async def test_a_str_in_an_enum_column_takes_its_members_only(db_url: str) -> None:
    """Regression: ``str`` in ``Enum("red", "green")`` was published as a string of at most 5
    characters; ``blue`` was a 500 in a body (SQLite, PostgreSQL) and a filter (PostgreSQL)."""
    app, cape = make_cape(db_url)
    cape.publish(Painted)
    cape.permission_required(Painted, actions=["*"])
    schemas = app.openapi()["components"]["schemas"]
    for schema in ("PaintedCreate", "PaintedUpdate", "PaintedRead"):
        assert schemas[schema]["properties"]["c"]["enum"] == ["red", "green"], schemas[schema]
    async with app_client(app) as client:
        for body in ({"c": "blue"}, {"c": "red", "o": "Red"}):
            response = await client.post("/annotated_painted", json=body)
            assert response.status_code == 422, response.text
            assert response.json()["detail"][0]["loc"][1] in body
        row = (await client.post("/annotated_painted", json={"c": "red", "o": "green"})).json()
        response = await client.patch(f"/annotated_painted/{row['id']}", json={"c": "blue"})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == [
            "body", "c"
        ], response.text
        response = await client.patch(f"/annotated_painted/{row['id']}", json={"o": None})
        assert response.status_code == 200 and response.json()["o"] is None, response.text
        for query in ({"c": "blue"}, {"c__in": "red,blue"}, {"o__ne": "x"}):
            response = await client.get("/annotated_painted", params=query)
            assert response.status_code == 422, response.text
            assert "'blue'" in response.text or "'x'" in response.text
        listed = (await client.get("/annotated_painted", params={"c__in": "red,green"})).json()
        assert [r["id"] for r in listed] == [row["id"]]
    fields = filter_fields(Painted.__table__)
    with pytest.raises(QueryError) as raised:
        parse_stream_filters([("c", "blue")], fields, max_in=10)
    assert raised.value.status_code == 422 and "'c'" in str(raised.value)


class BigKeyed(Account, table=True):
    __tablename__ = "annotated_big_keyed"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    name: str = Field(max_length=10)


async def test_a_big_integer_key_is_assigned_on_every_database(db_url: str) -> None:
    """Regression: SQLite assigns rowids only to an ``INTEGER PRIMARY KEY``; a ``BIGINT`` key
    stayed NULL, so every create was a 409."""
    app, cape = make_cape(db_url)
    cape.publish(BigKeyed)
    cape.permission_required(BigKeyed, actions=["*"])
    async with app_client(app) as client:
        rows = []
        for name in ("a", "b"):
            response = await client.post("/annotated_big_keyed", json={"name": name})
            assert response.status_code == 201, response.text
            rows.append(response.json())
        assert rows[0]["id"] != rows[1]["id"]
        for row in rows:
            assert (await client.get(f"/annotated_big_keyed/{row['id']}")).json() == row
