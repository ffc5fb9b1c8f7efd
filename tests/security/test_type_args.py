"""SQL in a CAST target's arguments that the type check must reach (``policy.sql_types``): a
subclass of int whose text is SQL, a variant that picks a decorator writing SQL (third
confirmation review of issue 16). OWASP API Security Top 10 (2023): API1:2023 Broken Object
Level Authorization."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import Integer, Numeric, String, cast, select, type_coerce
from sqlalchemy.dialects import sqlite

from capebase import UnfilterableStatementError
from capebase.policy.sql_types import require_plain_type
from tests._databases import DbKind
from tests.security._shapes import (
    SQL_IN_PRECISION,
    ColumnSql,
    Note,
    NumericOnEachDatabase,
    World,
    as_alice,
    open_world,
    oracle,
)


@pytest.fixture
async def world(db_url: str, db_kind: DbKind) -> AsyncIterator[World]:
    async with open_world(db_url, db_kind) as opened:
        yield opened


class Precision(int):
    """An int (so not the str the check looks at) that formats as SQL."""

    def __str__(self) -> str:
        return SQL_IN_PRECISION


STATEMENTS: dict[str, Callable[[], Any]] = {
    "CAST to NUMERIC whose precision is an int subclass formatting as SQL": lambda: select(
        cast(Note.id, Numeric(precision=Precision(10), scale=2))
    ),
    "with_variant: CAST to a decorator variant picking SQL on this database": lambda: select(
        cast(Note.id, Integer().with_variant(NumericOnEachDatabase(), "sqlite", "postgresql",
                                              "mysql", "mariadb"))
    ),
    "with_variant: type_coerce to a column_expression variant": lambda: select(
        type_coerce(Note.body, String().with_variant(ColumnSql(), "sqlite", "postgresql",
                                                      "mysql", "mariadb"))
    ),
}


@pytest.mark.parametrize("name", list(STATEMENTS))
async def test_type_sql_is_refused_or_reads_only_permitted_rows(
    name: str, world: World
) -> None:
    got = await as_alice(world, STATEMENTS[name]())
    if got == "refused":
        return
    assert got == await oracle(world, STATEMENTS[name]())


class Collation(str):
    """A str whose text, as SQL, is anything (its ``__str__``)."""

    def __str__(self) -> str:
        return SQL_IN_PRECISION


def test_a_cast_targets_text_arguments_must_be_plain_str_words() -> None:
    """Checked without a database (issue 17: no test had a str argument)."""
    dialect = sqlite.dialect()
    require_plain_type(String(40, collation="NOCASE"), dialect, written=True)
    for collation in (Collation("NOCASE"), "NOCASE) || (SELECT 1"):
        with pytest.raises(UnfilterableStatementError, match="collation="):
            require_plain_type(String(40, collation=collation), dialect, written=True)
    # only a CAST's target writes its arguments
    require_plain_type(String(40, collation="NOCASE) || (SELECT 1"), dialect, written=False)
