"""Column declarations a user will try that a database handles its own way: those capebase
cannot serve alike everywhere are refused at ``publish`` with the reason, never answered with a
500 later; the others work on every database.
"""

from __future__ import annotations

import enum
from datetime import time

import pytest
from fastapi import FastAPI
from sqlalchemy import Time
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import CapeBase, ConfigurationError
from capebase.testing import app_client
from tests.apps import make_cape


class DeclaredModel(SQLModel, registry=registry()):
    __test__ = False


class Clock(DeclaredModel, table=True):
    __tablename__ = "declared_clock"

    id: int | None = Field(default=None, primary_key=True)
    at: time = Field(sa_type=Time(timezone=True))  # type: ignore[call-overload]


class Grade(enum.StrEnum):
    # Names that differ only in case or accent: one value to MariaDB's default collation.
    A = "A"
    a = "a"
    E = "E"
    É = "É"


class Graded(DeclaredModel, table=True):
    __tablename__ = "declared_graded"

    id: int | None = Field(default=None, primary_key=True)
    grade: Grade
    other: Grade | None = None


@pytest.mark.parametrize(
    "url",
    ["sqlite+aiosqlite:///:memory:", "postgresql+asyncpg://u@127.0.0.1/db",
     "mysql+asyncmy://root@127.0.0.1/db"],
)
def test_a_time_with_a_time_zone_is_refused_at_publish(url: str) -> None:
    """Regression: ``Time(timezone=True)`` published, then refused every value (one without
    an offset by its grammar, one with an offset by its check); SQLite and MySQL would have
    dropped the offset anyway."""
    cape = CapeBase(app=FastAPI(), db_url=url)
    with pytest.raises(ConfigurationError) as raised:
        cape.publish(Clock)
    message = str(raised.value)
    assert "Cannot publish Clock: field 'at'" in message
    assert "Time(timezone=True)" in message and "store a `datetime`" in message


async def test_enum_names_that_differ_only_in_case_work(db_url: str) -> None:
    """Regression: on MariaDB the table could not be created (``ENUM('A','a')``: "duplicated
    value"), and ``'a'`` would have equalled ``'A'``."""
    app, cape = make_cape(db_url)
    cape.publish(Graded)
    cape.permission_required(Graded, actions=["*"])
    async with app_client(app) as client:
        rows = {}
        for grade in Grade:
            response = await client.post("/declared_graded", json={"grade": grade, "other": grade})
            assert response.status_code == 201, response.text
            rows[grade] = response.json()
            assert (rows[grade]["grade"], rows[grade]["other"]) == (grade.value, grade.value)
        for grade in Grade:
            got = (await client.get(f"/declared_graded/{rows[grade]['id']}")).json()
            assert got == rows[grade]
            for query in ({"grade": grade.value}, {"other__in": grade.value},
                          {"grade__ne": grade.value, "grade__nin": "A,a"}):
                listed = (await client.get("/declared_graded", params=query)).json()
                expected = [
                    row for g, row in rows.items()
                    if ("grade" in query and g == grade) or ("other__in" in query and g == grade)
                    or ("grade__ne" in query and g != grade and g not in (Grade.A, Grade.a))
                ]
                assert listed == expected, (query, listed)
