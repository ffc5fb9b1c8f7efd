"""Decimal filter and cursor values with more digits than a NUMERIC(10, 2) column holds are
compared exactly, as SQLite, MariaDB and the stream filters compare them: PostgreSQL cast the
parameter to the column's type, so ``price__gt=1.005`` missed 1.01 (rounded to 1.01) and
``price__lt=99999999.995`` was a 500 (numeric field overflow)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Column, Numeric
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import CapeBase
from capebase.testing import app_client
from tests.apps import as_user, header_auth


class _Base(SQLModel, registry=registry()):
    pass


class Priced(_Base, table=True):
    __tablename__ = "decimal_priced"
    id: int | None = Field(default=None, primary_key=True)
    price: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))


STORED = [Decimal("1.00"), Decimal("1.01"), Decimal("-5.50"), Decimal("99999999.99")]
COMPARE: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
}


def probes() -> list[Decimal]:
    """Every stored value, and values just beside it in the digits the column does not hold
    (up to the largest the column's 8 integer digits allow)."""
    near = [v + d for v in STORED for d in (Decimal("0.005"), Decimal("-0.005"), Decimal("0.001"))]
    return [*STORED, *near, Decimal("99999999.995"), Decimal("-99999999.999")]


def priced(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Decimal]]:
    return list(zip(rows, STORED, strict=True))


def cursor(value: Decimal, key: int) -> str:
    text = json.dumps({"o": "price,id", "v": [str(value), str(key)]})
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def test_decimal_filters_and_cursors_compare_the_exact_value(db_url: str) -> None:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    cape.publish(Priced)
    cape.permission_required(Priced, role="*", actions=["*"])
    finer = 0
    async with app_client(app) as client:
        rows: list[dict[str, Any]] = []  # created in STORED's order
        for price in STORED:
            created = await client.post("/decimal_priced", json={"price": str(price)},
                                        headers=as_user("u"))
            assert created.status_code == 201, created.text
            rows.append(created.json())
        for probe in probes():
            finer += probe.as_tuple().exponent < -2  # type: ignore[operator]
            for op, compare in COMPARE.items():
                listed = await client.get(
                    "/decimal_priced", params={f"price__{op}": str(probe), "order_by": "id"}
                )
                assert listed.status_code == 200, (op, probe, listed.text)
                expected = [row["id"] for row, price in priced(rows) if compare(price, probe)]
                assert [row["id"] for row in listed.json()] == expected, (op, probe)
            for op, keep in (("in", True), ("nin", False)):
                listed = await client.get(
                    "/decimal_priced", params={f"price__{op}": f"{probe},0", "order_by": "id"}
                )
                expected = [row["id"] for row, price in priced(rows) if (price == probe) == keep]
                assert [row["id"] for row in listed.json()] == expected, (op, probe)
            page = await client.get(
                "/decimal_priced", params={"order_by": "price", "after": cursor(probe, 0)}
            )
            assert page.status_code == 200, (probe, page.text)
            after = sorted((price, row["id"]) for row, price in priced(rows) if price >= probe)
            expected_after = [key for price, key in after if price > probe or key > 0]
            assert [row["id"] for row in page.json()] == expected_after, probe
        # more integer digits than the column holds: a value no row can have, refused
        too_big = await client.get("/decimal_priced", params={"price__lt": "123456789012.5"})
        assert too_big.status_code == 422 and "out of range" in too_big.text
    assert finer >= 12  # the digits past the column's scale were tried, not only stored values
