"""Which database errors mean "unreachable, retry later" and which "a statement timed out".

The drivers disagree on how they report the same failure: asyncpg raises ``OSError`` when a
connection is refused and a plain error with SQLSTATE 57014 for a cancelled statement, asyncmy
an ``OperationalError`` with a MySQL error number. ``classify`` reads them all the same way, so
the HTTP layer answers 503 or 504 on every database instead of 500.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import exc as sa_exc

from ..errors import DatabaseUnavailableError

Failure = Literal["unavailable", "timeout"]

TIMEOUT_SQLSTATES = frozenset({"57014"})  # query_canceled: statement_timeout
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57P")
"""Connection exception, insufficient resources (too many connections), and operator
intervention: shutdown, crash, "the database system is starting up"."""
TIMEOUT_MYSQL_CODES = frozenset({1969, 3024})  # MariaDB max_statement_time, MySQL's
UNAVAILABLE_MYSQL_CODES = frozenset({1040, 1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031})
"""Too many connections, shutdown in progress, connection killed, cannot connect, server gone
away, lost connection, disconnected by the server."""
CONSTRAINT_MYSQL_CODES = frozenset({4025})
"""A CHECK constraint failed (MariaDB reports it as an OperationalError, SQLSTATE 23000)."""


def is_constraint_failure(error: BaseException) -> bool:
    """Whether ``error`` is a row breaking a constraint that a driver reports as something
    other than an IntegrityError (a 409, like every other constraint)."""
    orig = getattr(error, "orig", None)
    args: tuple[object, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] in CONSTRAINT_MYSQL_CODES


def classify(error: BaseException) -> Failure | None:
    """``"unavailable"``, ``"timeout"``, or ``None`` for an error that is not about reaching
    the database (a bug, a constraint): that one stays a 500 so it gets noticed."""
    if isinstance(error, DatabaseUnavailableError | sa_exc.TimeoutError):
        return "unavailable"  # sa_exc.TimeoutError: no pooled connection came free in time
    if isinstance(error, sa_exc.DBAPIError):
        if is_constraint_failure(error):
            return None
        kind = _by_code(error.orig)
        if kind == "timeout":
            return kind
        if error.connection_invalidated or isinstance(
            error, sa_exc.OperationalError | sa_exc.InterfaceError
        ):
            return "unavailable"
        return kind
    if isinstance(error, ConnectionError | TimeoutError):
        return "unavailable"
    return _by_code(error)


def _by_code(error: BaseException | None) -> Failure | None:
    if error is None:
        return None
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int):  # MySQL drivers: (error number, message)
        if args[0] in TIMEOUT_MYSQL_CODES:
            return "timeout"
        if args[0] in UNAVAILABLE_MYSQL_CODES:
            return "unavailable"
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(sqlstate, str):
        if sqlstate in TIMEOUT_SQLSTATES:
            return "timeout"
        if sqlstate.startswith(UNAVAILABLE_SQLSTATE_CLASSES):
            return "unavailable"
    return None
