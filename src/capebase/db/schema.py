"""Creating missing tables at start-up, safely when several processes start at once.

``uvicorn app:app --workers 4`` starts four processes that each create the tables of a fresh
database at the same moment. PostgreSQL then fails one of them with a unique violation on
``pg_type`` (two ``CREATE TABLE`` of the same name racing), MariaDB with "table already
exists". So table creation runs under a database-wide lock (an advisory lock on PostgreSQL,
``GET_LOCK`` on MariaDB and MySQL): the first process creates, the others then find the tables
there. An "already exists" error that still happens (a process not taking the lock, SQLite
files shared by several processes) is answered by looking again, a few times.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import MetaData, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import DatabaseUnavailableError
from .ddl import creating_tables

T = TypeVar("T")

LOCK_NAME = "capebase.create_tables"
LOCK_KEY = zlib.crc32(LOCK_NAME.encode())
"""The PostgreSQL advisory lock key (a fixed 32-bit number derived from ``LOCK_NAME``)."""
LOCK_TIMEOUT = 60
"""Seconds a process waits for another one's table creation (MariaDB ``GET_LOCK``; on
PostgreSQL the statement timeout bounds the wait)."""
ATTEMPTS = 5

_PG_DUPLICATE_SQLSTATES = frozenset({"42P07", "42710"})  # duplicate_table, duplicate_object
_MYSQL_DUPLICATE_CODES = frozenset({1050, 1061})  # table exists, duplicate key (index) name


async def create_all(
    engine: AsyncEngine,
    metadatas: Sequence[MetaData],
    then: Callable[[Connection], T] | None = None,
) -> T | None:
    """Create the missing tables (and their indexes) of ``metadatas``, then run ``then`` (a
    schema upgrade, say) under the same lock; its result is returned.

    Raises:
        DatabaseUnavailableError: another process held the creation lock for
            ``LOCK_TIMEOUT`` seconds.
    """
    for attempt in range(ATTEMPTS):
        try:
            async with engine.connect() as connection, _creation_lock(connection):
                with creating_tables():  # column types that keep every value (``ddl``)
                    for metadata in metadatas:
                        await connection.run_sync(metadata.create_all)
                result = None if then is None else await connection.run_sync(then)
                await connection.commit()
            return result
        except sa_exc.DBAPIError as error:
            if attempt == ATTEMPTS - 1 or not is_already_exists(error):
                raise
            # Someone created it between our look and our CREATE: look again.
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable: the last attempt returns or raises")


@contextlib.asynccontextmanager
async def _creation_lock(connection: AsyncConnection) -> AsyncIterator[None]:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        # Transaction-scoped: released by the commit (or rollback) that ends the creation,
        # and PostgreSQL's DDL is transactional, so whoever waited then sees the tables.
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        yield
    elif dialect == "mysql":
        got = await connection.scalar(
            text("SELECT GET_LOCK(:name, :timeout)"),
            {"name": LOCK_NAME, "timeout": LOCK_TIMEOUT},
        )
        if got != 1:
            raise DatabaseUnavailableError(
                f"Waited {LOCK_TIMEOUT}s for another process creating capebase's tables "
                f"(MariaDB lock {LOCK_NAME!r})"
            )
        try:
            yield
        finally:
            with contextlib.suppress(sa_exc.DBAPIError):
                await connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})
    else:
        yield


def is_already_exists(error: sa_exc.DBAPIError) -> bool:
    """Whether ``error`` says a table, index or type being created exists already."""
    orig: Any = error.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):  # MySQL drivers: (error number, message)
        return args[0] in _MYSQL_DUPLICATE_CODES
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in _PG_DUPLICATE_SQLSTATES:
        return True
    message = str(orig)
    if sqlstate == "23505" and 'constraint "pg_' in message:
        # Two CREATE TABLE racing on PostgreSQL: the loser trips over a system catalog's
        # unique index (the row type's name in pg_type, a sequence's in pg_class...).
        return True
    return "already exists" in message
