"""Whether a connection is lost is asked of the connection, not read from an error's text
(ninth review of issue 16).

SQLAlchemy takes an error for a lost connection when its message says so: asyncmy's any that
contains "not connected" or "network operation failed", aiosqlite's any that contains
"connection closed" or "no active connection". Databases quote values in their errors
(MariaDB the expression that overflowed, SQLite a JSON path), so a row or a filter value
made an ordinary error look like a disconnect: the connection was dropped with every other in
the pool, and the realtime dispatcher retried the change forever while every stream waited
(tests/security/test_stream_rule_failures.py shows the streams). Now the engine pings the
connection first; a connection the database really ended is still lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from capebase.db.engine import create_engine
from tests._databases import DbKind

WORDS = [
    "not connected", "Network operation failed", "connection closed", "no active connection",
    "connection is closed",
]
"""What each driver's ``is_disconnect`` looks for in an error's message."""

QUOTING = {
    "sqlite": "SELECT json_extract('{}', :words)",  # JSON path error near '<words>'
    "postgresql": "SELECT CAST(:words AS integer)",  # invalid input syntax ...: "<words>"
    "mariadb": "SELECT 9223372036854775807 + length(:words)",  # out of range in '... <words>'
}
"""A statement whose error quotes ``:words``."""


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.mark.parametrize("words", WORDS)
async def test_an_error_quoting_disconnect_words_keeps_its_connection(
    engine: AsyncEngine, db_kind: DbKind, words: str
) -> None:
    async with engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        with pytest.raises(sa_exc.DBAPIError) as raised:
            await connection.execute(text(QUOTING[db_kind]), {"words": f"{words}, lol"})
        assert words in str(raised.value.orig), raised.value  # the trap is set
        assert not raised.value.connection_invalidated, raised.value
        assert not connection.invalidated
        await connection.rollback()
        assert (await connection.execute(text("SELECT 1"))).scalar() == 1
        # The same connection of the driver, not a new one the pool opened.
        assert (await connection.get_raw_connection()).driver_connection is driver


async def test_a_connection_the_database_ended_is_still_lost(
    engine: AsyncEngine, db_kind: DbKind
) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
        if db_kind == "sqlite":  # no server to end it: the driver's connection closes
            await (await connection.get_raw_connection()).driver_connection.close()
        else:
            own = "SELECT pg_backend_pid()" if db_kind == "postgresql" else "SELECT CONNECTION_ID()"
            ident = int((await connection.execute(text(own))).scalar_one())
            async with engine.connect() as other:
                if db_kind == "postgresql":
                    await other.execute(text(f"SELECT pg_terminate_backend({ident})"))
                else:
                    await other.execute(text(f"KILL CONNECTION {ident}"))
        with pytest.raises(sa_exc.DBAPIError) as raised:
            await connection.execute(text("SELECT 1"))
        assert raised.value.connection_invalidated, raised.value
        assert connection.invalidated
