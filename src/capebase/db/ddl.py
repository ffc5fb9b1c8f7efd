"""The column types of the tables capebase creates, where a dialect's default loses data.

MySQL and MariaDB create a plain ``DATETIME`` or ``TIME`` with whole seconds, and a ``FLOAT``
of single precision: a microsecond, or a Python float's last digits, sent to the API would be
dropped silently. While ``creating_tables()`` is active (capebase's own ``create_all``), those
types are created as ``DATETIME(6)``, ``TIME(6)`` and ``DOUBLE``, which keep every value.
A ``Text`` is created as ``LONGTEXT`` there (``TEXT`` holds 64 KB; PostgreSQL's and SQLite's
have no limit). MariaDB's native ``UUID`` sorts by its last group first; a UUID is created
there as its text, ``CHAR(36)``, which sorts (and compares with ``<``) as PostgreSQL's uuid and
SQLite's do.
Text columns (``str``, ``Text``, a ``str`` enum) get a binary collation there: MySQL's and
MariaDB's default collations compare case- and accent-insensitively (and ignore trailing
spaces), so a unique or primary key ``'a'`` would refuse ``'A'``, ``'á'`` and ``'a '``, which
PostgreSQL and SQLite store as different values.
On SQLite, only a column declared ``INTEGER PRIMARY KEY`` takes the next rowid when a row leaves
it out; a ``BigInteger`` or ``SmallInteger`` is created as ``INTEGER`` there (the same 64-bit
storage), or every insert into a table with such an autoincrementing key would fail on its NULL
key.
DDL the user runs (Alembic, their own ``create_all``) is left as SQLAlchemy renders it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import (
    BIGINT,
    CHAR,
    SMALLINT,
    VARCHAR,
    BigInteger,
    DateTime,
    Enum,
    Float,
    SmallInteger,
    String,
    Text,
    Time,
    Uuid,
)
from sqlalchemy.ext.compiler import compiles

MICROSECONDS = 6
"""The fractional-second digits of the DATETIME and TIME columns capebase creates on MySQL."""

_creating = ContextVar("capebase_creating_tables", default=False)


@contextmanager
def creating_tables() -> Iterator[None]:
    """Render the DDL inside the block as capebase creates its tables (see the module)."""
    token = _creating.set(True)
    try:
        yield
    finally:
        _creating.reset(token)


def _fsp(type_: Any) -> int | None:
    """The precision to render: the type's own ``fsp`` if it has one, else microseconds while
    capebase creates tables, else none."""
    own = getattr(type_, "fsp", None)
    if own is not None:
        return int(own)
    return MICROSECONDS if _creating.get() else None


@compiles(DateTime, "mysql")
def _datetime_on_mysql(type_: DateTime, compiler: Any, **kw: Any) -> str:
    fsp = _fsp(type_)
    return str(compiler.visit_datetime(type_, **kw)) if fsp is None else f"DATETIME({fsp})"


@compiles(Time, "mysql")
def _time_on_mysql(type_: Time, compiler: Any, **kw: Any) -> str:
    fsp = _fsp(type_)
    return str(compiler.visit_time(type_, **kw)) if fsp is None else f"TIME({fsp})"


@compiles(Float, "mysql")
def _float_on_mysql(type_: Float[Any], compiler: Any, **kw: Any) -> str:
    if _creating.get() and type_.precision is None:
        return "DOUBLE"  # a Python float, as PostgreSQL's FLOAT and SQLite's REAL store it
    return str(compiler.visit_float(type_, **kw))


@compiles(Uuid, "mysql")
def _uuid_on_mysql(type_: Uuid[Any], compiler: Any, **kw: Any) -> str:
    if _creating.get() and type_.native_uuid and getattr(compiler.dialect, "is_mariadb", False):
        return "CHAR(36)"  # what MariaDB accepts for its UUID binds: the dashed text
    return str(compiler.visit_uuid(type_, **kw))


@compiles(BigInteger, "sqlite")
@compiles(BIGINT, "sqlite")
@compiles(SmallInteger, "sqlite")
@compiles(SMALLINT, "sqlite")
def _integer_on_sqlite(type_: Any, compiler: Any, **kw: Any) -> str:
    if _creating.get():
        # The same storage (SQLite's integers are 64 bits), and an autoincrementing key gets
        # rowids. Every such column, not only keys: Alembic compares types without columns.
        return "INTEGER"
    return str(getattr(compiler, f"visit_{type_.__visit_name__}")(type_, **kw))


def binary_collation(dialect: Any) -> str:
    """The collation comparing text as PostgreSQL and SQLite do: by code point, without
    padding (MariaDB's and MySQL 8's ``_bin`` collations pad trailing spaces)."""
    if getattr(dialect, "is_mariadb", False):
        return "utf8mb4_nopad_bin"
    version = getattr(dialect, "server_version_info", None) or (8,)
    return "utf8mb4_0900_bin" if version >= (8,) else "utf8mb4_bin"


def _exact(rendered: str, type_: Any, compiler: Any) -> str:
    if not _creating.get() or getattr(type_, "collation", None) is not None:
        return rendered
    return f"{rendered} CHARACTER SET utf8mb4 COLLATE {binary_collation(compiler.dialect)}"


@compiles(Text, "mysql")
def _text_on_mysql(type_: Text, compiler: Any, **kw: Any) -> str:
    if _creating.get() and type_.length is None:
        return _exact("LONGTEXT", type_, compiler)
    return _exact(str(compiler.visit_text(type_, **kw)), type_, compiler)


@compiles(String, "mysql")
def _string_on_mysql(type_: String, compiler: Any, **kw: Any) -> str:
    return _exact(str(compiler.visit_string(type_, **kw)), type_, compiler)


@compiles(VARCHAR, "mysql")
def _varchar_on_mysql(type_: VARCHAR, compiler: Any, **kw: Any) -> str:
    return _exact(str(compiler.visit_VARCHAR(type_, **kw)), type_, compiler)


@compiles(CHAR, "mysql")
def _char_on_mysql(type_: CHAR, compiler: Any, **kw: Any) -> str:
    return _exact(str(compiler.visit_CHAR(type_, **kw)), type_, compiler)


@compiles(Enum, "mysql")
def _enum_on_mysql(type_: Enum, compiler: Any, **kw: Any) -> str:
    return _exact(str(compiler.visit_enum(type_, **kw)), type_, compiler)
