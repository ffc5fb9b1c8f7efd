"""SQL in a CAST target's arguments that the type check must reach (``policy.sql_types``): a
subclass of int whose text is SQL, a variant that picks a decorator writing SQL (third
confirmation review of issue 16). OWASP API Security Top 10 (2023): API1:2023 Broken Object
Level Authorization."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import (
    ARRAY,
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    Interval,
    LargeBinary,
    Numeric,
    String,
    Uuid,
    cast,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.elements import quoted_name

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


class Sql:
    """An object of no number or text class whose text is SQL (written by its ``__str__``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


SQL_IN_LENGTH = "10)) || (SELECT max(body) FROM sh_note) || CAST(1 AS CHAR(1"


REFUSED: dict[str, Callable[[], Any]] = {
    # Regression (review of issue 16, finding 1): an argument of any class but str and int
    # passed, and was written by its __str__.
    "CAST to NUMERIC whose precision is an object formatting as SQL": lambda: select(
        cast(Note.id, Numeric(precision=Sql(SQL_IN_PRECISION), scale=2))  # type: ignore[arg-type]
    ),
    "CAST to VARCHAR whose length is an object formatting as SQL": lambda: select(
        cast(Note.id, String(length=Sql(SQL_IN_LENGTH)))  # type: ignore[arg-type]
    ),
    # ... and a type inside a type's arguments was not looked at.
    "CAST to ARRAY of a NUMERIC with SQL in its precision": lambda: select(
        cast(Note.id, ARRAY(Numeric(precision=SQL_IN_PRECISION, scale=0)))  # type: ignore[arg-type]
    ),
    "CAST to an Enum whose name is unquoted SQL": lambda: select(
        cast(Note.body, Enum("a1", name=quoted_name('x) || (SELECT 1 FROM sh_note', quote=False)))
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
async def test_cast_arguments_that_are_not_plain_are_refused(name: str, world: World) -> None:
    assert await as_alice(world, REFUSED[name]()) == "refused"


class Colour(enum.Enum):
    red = 1
    light_blue = 2


STANDARD = [
    Integer(), String(20), String(20, collation="C"), Numeric(10, 2), Float(53),
    DateTime(timezone=True), Date(), Interval(), JSON(), Boolean(), Uuid(), LargeBinary(8),
    Enum(Colour), Enum("in-progress", "done", name="status"), ARRAY(Integer),
    ARRAY(Enum(Colour)), postgresql.ARRAY(Numeric(10, 2)), postgresql.INTERVAL(fields="DAY"),
    postgresql.JSONB(), mysql.VARCHAR(20, charset="utf8mb4"), mysql.DOUBLE(asdecimal=True),
    Integer().with_variant(String(20), "sqlite"),
]


@pytest.mark.parametrize("type_", STANDARD, ids=repr)
@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect(), mysql.dialect()],
                         ids=["sqlite", "postgresql", "mysql"])
def test_standard_cast_targets_pass(type_: Any, dialect: Any) -> None:
    """The near-misses: what SQLAlchemy's own types keep (an Enum's class and lookups, a
    quoted name, an ARRAY's item type, variants) is plain."""
    if isinstance(type_, postgresql.ARRAY | postgresql.INTERVAL | postgresql.JSONB) and (
        dialect.name != "postgresql"
    ):
        return
    if type(type_).__module__.startswith("sqlalchemy.dialects.mysql") and dialect.name != "mysql":
        return
    assert type_._type_affinity is not None  # cached in vars(type_) by SQLAlchemy: no argument
    require_plain_type(type_, dialect, written=True)


LEGIT: dict[str, Callable[[], Any]] = {
    "CAST to VARCHAR(20)": lambda: select(Note.id, cast(Note.id, String(20)).label("c")),
    "CAST to a timestamp with time zone": lambda: select(
        Note.id, cast(literal("2024-01-02 03:04:05"), DateTime(timezone=True)).label("c")
    ),
    "CAST to a non-native Enum": lambda: select(
        Note.id,
        cast(Note.body, Enum("a1", "a2", "b-locked", native_enum=False, length=10)).label("c"),
    ),
}


@pytest.mark.parametrize("name", list(LEGIT))
async def test_plain_casts_answer_as_row_level_security(name: str, world: World) -> None:
    if "timestamp" in name and world.kind == "sqlite":
        pytest.skip("SQLite's CAST AS DATETIME gives a number, which SQLAlchemy cannot read")
    assert await as_alice(world, LEGIT[name]()) == await oracle(world, LEGIT[name]())


async def test_cast_to_an_array_of_integers_runs_on_postgresql(world: World) -> None:
    if world.kind != "postgresql":
        pytest.skip("ARRAY is PostgreSQL's")
    statement = select(Note.id, cast(cast(literal("{1,2}"), ARRAY(Integer)), String).label("c"))
    assert await as_alice(world, statement) == await oracle(world, statement)


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
