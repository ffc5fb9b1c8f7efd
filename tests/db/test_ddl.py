"""The column types capebase creates on MySQL/MariaDB keep every value, and only capebase's own
``create_all`` is affected (issue 15: MariaDB served ``12:34:56.123456Z`` as ``12:34:56Z``)."""

from __future__ import annotations

import pytest
from sqlalchemy import (
    CHAR,
    Column,
    DateTime,
    Enum,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Time,
    Uuid,
)
from sqlalchemy.dialects import mysql, postgresql
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
