"""The column types capebase creates on MySQL/MariaDB keep every value, and only capebase's own
``create_all`` is affected (issue 15: MariaDB served ``12:34:56.123456Z`` as ``12:34:56Z``)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    CHAR,
    BigInteger,
    Column,
    DateTime,
    Enum,
    Float,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Time,
    Uuid,
    create_engine,
    insert,
    select,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.schema import CreateTable

from capebase.db.ddl import creating_tables

table = Table(
    "t", MetaData(), Column("id", Integer, primary_key=True), Column("at", DateTime),
    Column("clock", Time), Column("ratio", Float), Column("ref", Uuid),
    Column("whole", DATETIME(fsp=0)), Column("single", Float(precision=10)),
    Column("notes", Text), Column("short", Text(1000)), Column("name", String(40)),
    Column("colour", Enum("a", "A", name="colour")), Column("code", CHAR(2)),
    Column("chosen", String(10, collation="latin1_swedish_ci")),
)


def ddl(dialect: object) -> str:
    return str(CreateTable(table).compile(dialect=dialect))  # type: ignore[arg-type]


@pytest.mark.parametrize("is_mariadb", [True, False], ids=["mariadb", "mysql"])
def test_capebase_creates_types_that_keep_every_value(is_mariadb: bool) -> None:
    dialect = mysql.dialect(is_mariadb=is_mariadb)
    plain = ddl(dialect)
    assert "at DATETIME," in plain and "clock TIME," in plain and "ratio FLOAT," in plain
    with creating_tables():
        created = ddl(dialect)
    assert "at DATETIME(6)," in created and "clock TIME(6)," in created
    collate = "CHARACTER SET utf8mb4 COLLATE " + (
        "utf8mb4_nopad_bin" if is_mariadb else "utf8mb4_0900_bin"
    )
    assert "ratio DOUBLE," in created and f"notes LONGTEXT {collate}," in created
    assert "notes TEXT," in plain and f"short TEXT(1000) {collate}," in created
    # text compares by code point, as on PostgreSQL and SQLite (a key "a" and a key "A ")
    assert f"name VARCHAR(40) {collate}," in created and "name VARCHAR(40)," in plain
    assert f"colour ENUM('a','A') {collate}," in created and f"code CHAR(2) {collate}," in created
    assert "chosen VARCHAR(10) COLLATE latin1_swedish_ci," in created  # the model's own
    # a precision the model states is kept
    assert "whole DATETIME," in created and "single FLOAT(10)," in created
    assert ("ref CHAR(36)," if is_mariadb else "ref CHAR(32),") in created
    assert ddl(dialect) == plain  # and only inside the block


def test_other_databases_are_left_alone() -> None:
    dialect = postgresql.dialect()
    plain = ddl(dialect)
    with creating_tables():
        assert ddl(dialect) == plain


def test_sqlite_creates_wide_and_narrow_integers_as_integer_keys_it_assigns() -> None:
    """Regression: a ``BigInteger`` key was created as ``BIGINT``, to which SQLite assigns no
    rowid, so every insert failed on its NULL key; Alembic sees the same types (no change)."""
    metadata = MetaData()
    keyed = Table("keyed", metadata, Column("id", BigInteger, primary_key=True),
                  Column("small", SmallInteger), Column("big", BigInteger))
    assert "id BIGINT NOT NULL" in str(CreateTable(keyed).compile(dialect=sqlite.dialect()))
    engine = create_engine("sqlite://")
    with engine.begin() as connection, creating_tables():
        metadata.create_all(connection)
        ids = [connection.execute(insert(keyed).values(big=2**63 - 1)).inserted_primary_key[0]
               for _ in range(2)]
        assert ids == [1, 2]
        assert connection.execute(select(keyed.c.big)).scalars().all() == [2**63 - 1] * 2
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
