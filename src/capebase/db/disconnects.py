"""Whether a failed statement's connection is gone: asked of the connection, not read from the
error's text.

SQLAlchemy takes some errors for a lost connection by their message: asyncmy and aiomysql
any error saying "not connected", aiosqlite one saying "connection closed". MariaDB quotes the
expression that failed, values included, in some errors (1690, BIGINT out of range), so a
row's text made a failing statement look like a disconnect: SQLAlchemy closed the connection
and retired every other in the pool, and the realtime dispatcher, taking the database for
gone, retried the change forever while every stream waited. A disconnect SQLAlchemy reports
is now confirmed by pinging the connection: one that answers was not lost.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine


def confirm_disconnects(engine: AsyncEngine) -> None:
    """Have ``engine`` ping a connection before it believes an error that says it was lost."""
    dialect = engine.sync_engine.dialect

    def handle_error(context: ExceptionContext) -> None:
        connection = context.connection
        if (
            not context.is_disconnect
            or context.is_pre_ping
            or connection is None
            or connection.invalidated
            or connection.closed
            # A cancelled or interrupted statement: the connection is mid-reply, a ping
            # would read the rest of that reply.
            or not isinstance(context.original_exception, Exception)
        ):
            return
        if answers(dialect, connection.connection.dbapi_connection):
            context.is_disconnect = False

    event.listen(engine.sync_engine, "handle_error", handle_error)


def answers(dialect: Any, dbapi_connection: Any) -> bool:
    """Whether ``dbapi_connection`` answers a ping (a blocking call: run it where SQLAlchemy
    runs its DBAPI calls, in its greenlet)."""
    if dbapi_connection is None:
        return False
    try:
        dialect.do_ping(dbapi_connection)
    except Exception:
        return False
    return True
