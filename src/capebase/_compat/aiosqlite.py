"""aiosqlite internals capebase relies on (bounded below aiosqlite's next minor).

aiosqlite runs each call on its connection's own thread, one hand-off per call; a batch of
statements costs one hand-off with these, where the public API costs one per statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiosqlite

from . import missing_names

T = TypeVar("T")

REQUIRED: list[tuple[object, str]] = [
    (aiosqlite.Connection, "_execute"),  # runs a function on the connection's thread
    (aiosqlite.Connection, "_conn"),  # the sqlite3.Connection that thread owns
]


def missing() -> list[str]:
    """The private names of ``REQUIRED`` that the installed aiosqlite lacks."""
    return missing_names("aiosqlite", aiosqlite.__version__, REQUIRED)


def on_connection_thread(
    connection: Any, function: Callable[..., T], *args: Any
) -> Awaitable[T] | None:
    """``function(sqlite3_connection, *args)`` run on ``connection``'s thread, or ``None``
    when this aiosqlite cannot (the caller then uses the public API)."""
    run: Callable[..., Awaitable[T]] | None = getattr(connection, "_execute", None)
    sqlite: sqlite3.Connection | None = getattr(connection, "_conn", None)
    if run is None or sqlite is None:
        return None
    return run(function, sqlite, *args)
