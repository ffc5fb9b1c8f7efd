"""The test fixtures themselves: each database kind gives a fresh, empty, working database."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest
import redis.asyncio as aioredis
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests._databases import DB_KINDS, DbKind, TestServers, require, selected_db_kinds

DIALECTS = {"sqlite": "sqlite", "postgresql": "postgresql", "mariadb": "mysql"}


async def table_names(url: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()


async def test_db_url_is_a_working_database(db_url: str, db_kind: DbKind) -> None:
    engine = create_async_engine(db_url)
    try:
        assert engine.dialect.name == DIALECTS[db_kind]
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, note TEXT)"))
            await connection.execute(text("INSERT INTO probe VALUES (1, 'héllo ✓')"))
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT id, note FROM probe"))).all()
        assert [tuple(row) for row in rows] == [(1, "héllo ✓")]
    finally:
        await engine.dispose()


async def test_db_url_starts_empty(db_url: str) -> None:
    """Runs after the test above created its table: this database must not have it."""
    assert await table_names(db_url) == []


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
async def test_drop_ends_connections_left_open(kind: DbKind, _servers: TestServers) -> None:
    """A test that leaks a connection mid-transaction must not stop its database being dropped."""
    require(_servers, kind)
    name = _servers.create_database(kind)
    engine = create_async_engine(_servers.url(kind, name))
    connection = await engine.connect()
    try:
        await connection.execute(text("CREATE TABLE held (id INTEGER PRIMARY KEY)"))
        await connection.execute(text("INSERT INTO held VALUES (1)"))  # transaction stays open
        _servers.drop_database(kind, name, wait=True)
        assert name not in _servers.database_names(kind)
    finally:
        with contextlib.suppress(Exception):
            await connection.close()  # the server has already ended it
        await engine.dispose()


async def test_sqlite_url_is_empty(sqlite_url: str) -> None:
    assert sqlite_url.startswith("sqlite+aiosqlite:////")
    assert await table_names(sqlite_url) == []


async def test_redis_url_is_empty_and_writable(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
        await client.set("capebase-test-probe", b"1")
        assert await client.get("capebase-test-probe") == b"1"
    finally:
        await client.aclose()


async def test_redis_url_is_flushed_between_tests(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_hanging_admin_statement_fails_fast_and_frees_the_connection(
    kind: DbKind, _servers: TestServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stuck admin statement must not hold the admin lock: it fails naming the server, and
    the next call (a fresh database) works."""
    require(_servers, kind)
    monkeypatch.setattr("tests._databases.STATEMENT_TIMEOUT", 0.5)
    if kind == "postgresql":
        hang = _servers._pg_execute("SELECT pg_sleep(30)")
    else:
        hang = _servers._maria_execute("SELECT SLEEP(30)")
    with pytest.raises(TimeoutError, match=r"(PostgreSQL|MariaDB) at 127\.0\.0\.1:\d+ did not"):
        _servers._run(hang)
    monkeypatch.undo()
    name = _servers.create_database(kind)
    assert name in _servers.database_names(kind)
    _servers.drop_database(kind, name, wait=True)


@pytest.mark.parametrize(
    ("ci", "dbs", "left_out"),
    [
        ("true", "sqlite", "postgresql, mariadb"),
        ("true", "sqlite,mariadb", "postgresql"),
        ("", "sqlite", None),
        ("true", "", None),
    ],
)
def test_ci_refuses_a_narrowed_database_list(
    ci: str, dbs: str, left_out: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under CI, an inherited CAPEBASE_TEST_DBS that leaves a database out fails the run,
    naming what it leaves out, instead of skipping those tests."""
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("CAPEBASE_TEST_DBS", dbs)
    if left_out is None:
        assert selected_db_kinds() == (dbs.split(",") if dbs else list(DB_KINDS))
        return
    with pytest.raises(ValueError, match=f"leaves out {left_out}: CI runs the suite on every"):
        selected_db_kinds()


def test_the_narrowed_list_stops_pytest_with_a_usage_error() -> None:
    """The refusal above reaches pytest as a usage error (conftest.py), not a skip."""
    environment = {**os.environ, "CI": "true", "CAPEBASE_TEST_DBS": "sqlite"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_infra.py",
         "-k", "test_sqlite_url_is_empty"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert "leaves out postgresql, mariadb: CI runs the suite on every" in run.stderr
