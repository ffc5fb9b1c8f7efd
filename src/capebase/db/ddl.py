"""The column types of the tables capebase creates, where a dialect's default loses data.

MySQL and MariaDB create a plain ``DATETIME`` or ``TIME`` with whole seconds, and a ``FLOAT``
of single precision: a microsecond, or a Python float's last digits, sent to the API would be
dropped silently. While ``creating_tables()`` is active (capebase's own ``create_all``), those
types are created as ``DATETIME(6)``, ``TIME(6)`` and ``DOUBLE``, which keep every value.
A ``Text`` is created as ``LONGTEXT`` there (``TEXT`` holds 64 KB; PostgreSQL's and SQLite's
have no limit). MariaDB's native ``UUID`` sorts by its last group first; a UUID is created
there as its text, ``CHAR(36)``, which sorts (and compares with ``<``) as PostgreSQL's uuid and
SQLite's do. An enum is created with a binary collation there: MySQL's default one folds case
and accents, so ``ENUM('S','s')`` fails as a duplicate and ``'s'`` would equal ``'S'``.
DDL the user runs (Alembic, their own ``create_all``) is left as SQLAlchemy renders it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import DateTime, Enum, Float, Text, Time, Uuid
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


@compiles(Text, "mysql")
def _text_on_mysql(type_: Text, compiler: Any, **kw: Any) -> str:
    if _creating.get() and type_.length is None:
        return "LONGTEXT"
    return str(compiler.visit_text(type_, **kw))


@compiles(Enum, "mysql")
def _enum_on_mysql(type_: Enum, compiler: Any, **kw: Any) -> str:
    rendered = str(compiler.visit_enum(type_, **kw))
    if _creating.get() and type_.native_enum and "COLLATE" not in rendered:
        return f"{rendered} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    return rendered
