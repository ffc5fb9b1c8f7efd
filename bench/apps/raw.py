"""Contender (e): the practical ceiling, Starlette plus the bare driver (asyncpg or aiosqlite),
hand-written SQL and ``json.dumps``; no ORM, no validation library."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .common import database_url

URL = make_url(database_url())
IS_SQLITE = URL.get_backend_name() == "sqlite"
COLUMNS = "id, user_id, task, is_complete, inserted_at"
POOL_SIZE = 10


def _row_json(row: Any) -> dict[str, Any]:
    inserted = row[4]
    if isinstance(inserted, str):  # SQLite stores UTC datetimes as text, without an offset
        inserted = datetime.fromisoformat(inserted).replace(tzinfo=timezone.utc)  # noqa: UP017
    return {
        "id": row[0],
        "user_id": row[1],
        "task": row[2],
        "is_complete": bool(row[3]),
        "inserted_at": inserted.isoformat(),
    }


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status,
                    media_type="application/json")


class Database:
    """One pool of driver connections; statements use the driver's own placeholders."""

    def __init__(self) -> None:
        self.pool: Any = None

    def sql(self, text: str) -> str:
        """``text`` with ``{}`` placeholders numbered for the driver."""
        if IS_SQLITE:
            return text.replace("{}", "?")
        parts = text.split("{}")
        return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1))

    async def connect(self) -> None:
        if IS_SQLITE:
            self.pool = await _SqlitePool.open(URL.database or "bench.db", POOL_SIZE)
        else:
            import asyncpg

            self.pool = await asyncpg.create_pool(
                host=URL.host, port=URL.port or 5432, user=URL.username,
                password=URL.password, database=URL.database,
                min_size=POOL_SIZE, max_size=POOL_SIZE,
            )

    async def fetch(self, text: str, *args: Any) -> list[Any]:
        if IS_SQLITE:
            return await self.pool.fetch(self.sql(text), args)
        return await self.pool.fetch(self.sql(text), *args)


class _SqlitePool:
    """aiosqlite connections in autocommit mode; each statement is its own transaction."""

    def __init__(self, connections: list[Any]) -> None:
        import asyncio

        self.free: asyncio.Queue[Any] = asyncio.Queue()
        for connection in connections:
            self.free.put_nowait(connection)

    @classmethod
    async def open(cls, path: str, size: int) -> _SqlitePool:
        import aiosqlite

        connections = []
        for _ in range(size):
            connection = await aiosqlite.connect(path, isolation_level=None)
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
            await connection.execute("PRAGMA busy_timeout=5000")
            connections.append(connection)
        return cls(connections)

    async def fetch(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        connection = await self.free.get()
        try:
            async with connection.execute(sql, args) as cursor:
                return list(await cursor.fetchall())
        finally:
            self.free.put_nowait(connection)


db = Database()


def _user(request: Request) -> str | None:
    return request.headers.get("x-user-id") or None


async def get_todo(request: Request) -> Response:
    rows = await db.fetch(f"SELECT {COLUMNS} FROM todo WHERE id = {{}}",
                          request.path_params["todo_id"])
    if not rows:
        return _json({"detail": "Todo not found"}, 404)
    return _json(_row_json(rows[0]))


async def list_todos(request: Request) -> Response:
    try:
        limit = min(int(request.query_params.get("limit", 100)), 1000)
    except ValueError:
        return _json({"detail": "limit must be an integer"}, 422)
    user_id = request.query_params.get("user_id")
    if user_id is None:
        rows = await db.fetch(f"SELECT {COLUMNS} FROM todo ORDER BY id LIMIT {{}}", limit)
    else:
        rows = await db.fetch(
            f"SELECT {COLUMNS} FROM todo WHERE user_id = {{}} ORDER BY id LIMIT {{}}",
            user_id, limit,
        )
    return _json([_row_json(row) for row in rows])


async def create_todo(request: Request) -> Response:
    user = _user(request)
    if user is None:
        return _json({"detail": "Authentication required"}, 401)
    body = json.loads(await request.body())
    if not isinstance(body, dict) or not isinstance(body.get("task"), str):
        return _json({"detail": "task is required"}, 422)
    inserted = datetime.now(timezone.utc)  # noqa: UP017
    # SQLite gets the text SQLAlchemy writes there; PostgreSQL a timestamptz.
    stored: Any = inserted.strftime("%Y-%m-%d %H:%M:%S.%f") if IS_SQLITE else inserted
    rows = await db.fetch(
        "INSERT INTO todo (user_id, task, is_complete, inserted_at) VALUES ({}, {}, {}, {}) "
        f"RETURNING {COLUMNS}",
        user, body["task"], bool(body.get("is_complete", False)), stored,
    )
    return _json(_row_json(rows[0]), 201)


async def update_todo(request: Request) -> Response:
    user = _user(request)
    if user is None:
        return _json({"detail": "Authentication required"}, 401)
    body = json.loads(await request.body())
    if not isinstance(body, dict) or not isinstance(body.get("task"), str):
        return _json({"detail": "task is required"}, 422)
    rows = await db.fetch(
        f"UPDATE todo SET task = {{}} WHERE id = {{}} AND user_id = {{}} RETURNING {COLUMNS}",
        body["task"], request.path_params["todo_id"], user,
    )
    if not rows:
        return _json({"detail": "Todo not found"}, 404)
    return _json(_row_json(rows[0]))


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    await db.connect()
    yield


app = Starlette(
    routes=[
        Route("/todo/{todo_id:int}", get_todo, methods=["GET"]),
        Route("/todo/{todo_id:int}", update_todo, methods=["PATCH"]),
        Route("/todo", list_todos, methods=["GET"]),
        Route("/todo", create_todo, methods=["POST"]),
    ],
    lifespan=lifespan,
)
