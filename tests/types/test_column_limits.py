"""A value a column cannot hold exactly is refused with a 422 naming the field, and the column's
limits are published in OpenAPI: a Decimal's digits (declared on the field or only on the
column), a text's length (a plain ``str`` is ``VARCHAR(255)`` on MySQL and MariaDB). A JSON
number sent for a Decimal keeps every digit it was written with.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ConfigDict
from sqlalchemy import Column, Numeric, String
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase.testing import app_client
from tests.apps import make_cape


class LimitsModel(SQLModel, registry=registry()):
    __test__ = False


class Priced(LimitsModel, table=True):
    """Digits declared on the field, on the column only, and wide (PostgreSQL and MariaDB)."""

    __tablename__ = "limits_priced"

    id: int | None = Field(default=None, primary_key=True)
    price: Decimal = Field(default=Decimal(0), max_digits=12, decimal_places=2)
    money: Decimal | None = Field(default=None, sa_column=Column(Numeric(10, 2)))


class Wide(LimitsModel, table=True):
    __tablename__ = "limits_wide"

    id: int | None = Field(default=None, primary_key=True)
    amount: Decimal = Field(default=Decimal(0), max_digits=30, decimal_places=10)


class Named(LimitsModel, table=True):
    __tablename__ = "limits_named"

    id: int | None = Field(default=None, primary_key=True)
    plain: str = ""
    sized: str = Field(default="", sa_column=Column(String(20), nullable=False))
    code: str | None = Field(default=None, max_length=8)


def app_for(db_url: str, *models: type[Any], **options: Any) -> FastAPI:
    app, cape = make_cape(db_url, **options)
    for model in models:
        cape.publish(model)
        cape.permission_required(model, actions=["*"])
    return app


async def post_raw(client: httpx.AsyncClient, path: str, body: str) -> httpx.Response:
    """``body`` as written: numbers keep the digits the test gives them."""
    return await client.post(path, content=body, headers={"Content-Type": "application/json"})


def refused(response: httpx.Response, field: str) -> bool:
    return response.status_code == 422 and any(
        error["loc"] == ["body", field] for error in response.json()["detail"]
    )


async def test_decimal_numbers_keep_every_digit_or_are_refused(db_url: str) -> None:
    """Regression: a JSON number was read as a double, so ``1.0000000000000000001`` was stored
    as ``1.00`` and ``12345678901234567890.123456789`` as ``12345678901234567000``."""
    app = app_for(db_url, Priced)
    async with app_client(app) as client:
        for body in ('{"price": 1.0000000000000000001}', '{"price": 9999999999.9900000001}',
                     '{"money": 0.0000000000000000001}'):
            response = await post_raw(client, "/limits_priced", body)
            field = "price" if "price" in body else "money"
            assert refused(response, field), (body, response.text)
        response = await post_raw(client, "/limits_priced", '{"price": 9999999999.990000000}')
        assert response.status_code == 201, response.text
        row = response.json()
        assert row["price"] == "9999999999.99"
        response = await client.patch(
            f"/limits_priced/{row['id']}", content='{"price": 0.10000000000000000001}',
            headers={"Content-Type": "application/json"},
        )
        assert refused(response, "price"), response.text
        assert (await client.get(f"/limits_priced/{row['id']}")).json() == row


class PriceIn(SQLModel):
    """A user's create schema, frozen: its Decimal is read exactly too."""

    model_config = ConfigDict(frozen=True)

    price: Decimal = Field(max_digits=12, decimal_places=2)
    money: Decimal | None = None


async def test_user_schemas_read_decimals_exactly(sqlite_url: str) -> None:
    app, cape = make_cape(sqlite_url)
    cape.publish(Priced, create_schema=PriceIn)
    cape.permission_required(Priced, actions=["*"])
    async with app_client(app) as client:
        for body, field in (('{"price": 1.0000000000000000001}', "price"),
                            ('{"price": 1, "money": 2.0000000000000000001}', "money")):
            response = await post_raw(client, "/limits_priced", body)
            assert refused(response, field), (body, response.text)
        response = await post_raw(client, "/limits_priced", '{"price": 1.10, "money": 2.5}')
        assert (response.json()["price"], response.json()["money"]) == ("1.10", "2.50")


@pytest.mark.parametrize("db_kind", ["postgresql", "mariadb"])
async def test_wide_decimal_numbers_are_stored_exactly(db_url: str) -> None:
    """30 digits, where the database stores decimals exactly (SQLite allows 15, which every
    double holds)."""
    app = app_for(db_url, Wide)
    exact = "12345678901234567890.1234567890"
    async with app_client(app) as client:
        body = '{"amount": 12345678901234567890.123456789}'
        response = await post_raw(client, "/limits_wide", body)
        assert response.status_code == 201, response.text
        assert response.json()["amount"] == exact
        key = response.json()["id"]
        assert (await client.get("/limits_wide", params={"amount": exact})).json()[0]["id"] == key
        response = await client.patch(f"/limits_wide/{key}", content='{"amount": -0.0000000001}',
                                      headers={"Content-Type": "application/json"})
        assert response.json()["amount"] == "-1E-10", response.text
        response = await post_raw(client, "/limits_wide", '{"amount": 1.00000000000000000000001}')
        assert refused(response, "amount"), response.text


async def test_a_decimal_columns_digits_are_enforced_and_published(db_url: str) -> None:
    """Regression: ``sa_column=Column(Numeric(10, 2))`` rounded ``1.005`` to ``1.01`` (``1.00``
    on SQLite) without a word, and OpenAPI said nothing of its digits."""
    app = app_for(db_url, Priced)
    async with app_client(app) as client:
        for value in ("1.005", 1.005, "123456789", 123456789.5, "-0.001"):
            response = await client.post("/limits_priced", json={"money": value})
            assert refused(response, "money"), (value, response.text)
        for value, stored in (("1.500", "1.50"), (12345678.99, "12345678.99"), ("-1E+2", "-100.00"),
                              (None, None)):
            response = await client.post("/limits_priced", json={"money": value})
            assert response.status_code == 201, (value, response.text)
            assert response.json()["money"] == stored
        # a filter value may have more places: no stored value equals it
        response = await client.get("/limits_priced", params={"money": "1.005"})
        assert response.status_code == 200 and response.json() == [], response.text
    for name in ("PricedCreate", "PricedUpdate"):
        properties = app.openapi()["components"]["schemas"][name]["properties"]
        money, _null = properties["money"]["anyOf"]
        for field, digits, places in ((money, 10, 2), (properties["price"], 12, 2)):
            assert (field["x-max-digits"], field["x-decimal-places"]) == (digits, places)
            assert f"at most {digits} digits, {places} after the point" in field["description"]
            number = field["anyOf"][0]
            assert number["exclusiveMaximum"] == 10 ** (digits - places), number


async def test_text_longer_than_its_column_is_422_and_published(db_url: str, db_kind: str) -> None:
    """Regression: a plain ``str`` is ``VARCHAR(255)`` on MariaDB but OpenAPI published no
    ``maxLength``; nor did ``sa_column=Column(String(20))`` anywhere. Longer values are refused
    before the database sees them, even where MariaDB's strict mode is off (it would cut them
    short)."""
    options: dict[str, Any] = {}
    if db_kind == "mariadb":
        options["engine_options"] = {"connect_args": {"init_command": "SET sql_mode = ''"}}
    app = app_for(db_url, Named, **options)
    plain_limit = 255 if db_kind == "mariadb" else None
    for name in ("NamedCreate", "NamedUpdate", "NamedRead"):
        properties = app.openapi()["components"]["schemas"][name]["properties"]
        assert properties["plain"].get("maxLength") == plain_limit, (name, properties["plain"])
        assert properties["sized"]["maxLength"] == 20, properties["sized"]
    async with app_client(app) as client:
        sent = {"plain": "p" * 255, "sized": "s" * 20}
        row = (await client.post("/limits_named", json=sent)).json()
        assert (row["plain"], row["sized"]) == ("p" * 255, "s" * 20)
        for method, path in (("POST", "/limits_named"), ("PATCH", f"/limits_named/{row['id']}")):
            response = await client.request(method, path, json={"sized": "s" * 21})
            assert refused(response, "sized"), response.text
            response = await client.request(method, path, json={"code": "c" * 9})
            assert refused(response, "code"), response.text
            response = await client.request(method, path, json={"plain": "é" * 256})
            if plain_limit is None:
                assert response.status_code in (200, 201), response.text
                assert response.json()["plain"] == "é" * 256
            else:
                assert refused(response, "plain"), response.text
                assert response.json()["detail"][0]["type"] == "string_too_long"


async def test_decimals_written_with_extreme_exponents_are_stored_as_their_number(
    db_url: str,
) -> None:
    """``0E+300000`` is zero and ``1.000…0`` (20,000 zeros) is one: as body values (strings
    and JSON numbers, on the field's and the column's digits) and as filter values they are
    that number, where asyncpg refused to send them ("exponent is too large": a 500)."""
    app = app_for(db_url, Priced)
    ones = "1." + "0" * 20_000
    async with app_client(app) as client:
        for field, text, number in [
            ("price", "0E+300000", "0.00"), ("price", "-0E-300000", "0.00"),
            ("money", ones, "1.00"), ("price", "2.50E-0", "2.50"), ("money", "1E+2", "100.00"),
        ]:
            for body in (f'{{"{field}": "{text}"}}', f'{{"{field}": {text}}}'):
                response = await post_raw(client, "/limits_priced", body)
                assert response.status_code == 201, (body[:40], response.text[:300])
                assert response.json()[field] == number, (body[:40], response.text[:300])
            listed = await client.get("/limits_priced", params={field: text})
            assert listed.status_code == 200, listed.text[:300]
            assert {row[field] for row in listed.json()} == {number}
