"""Several processes starting on a fresh database at once: table creation takes a database
lock (PostgreSQL advisory lock, MariaDB GET_LOCK) and tolerates "already exists".

Regression: ``uvicorn app:app --workers 4`` on a fresh PostgreSQL database crashed at start-up
in 2 of 7 tries (``UniqueViolationError ... pg_type_typname_nsp_index``): the workers raced to
create the tables.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import create_async_engine

from capebase.changes.changelog import metadata as changelog_metadata
from capebase.db.engine import create_engine
from capebase.db.schema import create_all, is_already_exists
from tests._databases import DbKind, TestServers, require

# Several uvicorn workers each: started beside other tests on two cores, their start-up
# outlasts any fair bound (see the serial marker in pyproject.toml).
pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
UVICORN_STARTS = 2
"""Fresh databases each served by ``uvicorn --workers 4`` (a start costs ~4 s of CPU)."""
RACES = 3
"""Fresh databases each raced on by eight engines in this process."""
START_WITHIN = 30.0
SERVER_KINDS: list[DbKind] = ["postgresql", "mariadb"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def new_databases(db_kind: DbKind, _servers: TestServers) -> Iterator[Callable[[int], list[str]]]:
    """``new_databases(n)``: ``n`` new, empty databases of ``db_kind``, dropped afterwards."""
    require(_servers, db_kind)
    names: list[str] = []

    def create(count: int) -> list[str]:
        fresh = [_servers.create_database(db_kind) for _ in range(count)]
        names.extend(fresh)
        return [_servers.url(db_kind, name) for name in fresh]

    try:
        yield create
    finally:
        for name in names:
            _servers.drop_database(db_kind, name)


def _serve(db_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.db.workers_app:app", "--workers",
             str(WORKERS), "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"],
            cwd=ROOT,
            env={**os.environ, "CAPE_DB": db_url},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


def _wait_until_all_started(process: subprocess.Popen[bytes], log: Path) -> str:
    """The log once every worker finished its start-up (or one failed)."""
    deadline = time.monotonic() + START_WITHIN
    while time.monotonic() < deadline:
        text_ = log.read_text(errors="replace")
        if text_.count("Application startup complete.") >= WORKERS or "Traceback" in text_:
            return text_
        assert process.poll() is None, f"uvicorn exited with {process.returncode}:\n{text_}"
        time.sleep(0.05)
    raise AssertionError(f"the workers did not start within {START_WITHIN}s:\n{text_}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.mark.parametrize("db_kind", SERVER_KINDS)
def test_four_workers_start_on_a_fresh_database(
    db_kind: DbKind, new_databases: Callable[[int], list[str]], tmp_path: Path
) -> None:
    """On each fresh database four workers start at once, all of them complete their start-up
    without an error, and the app serves writes and reads."""
    for attempt, db_url in enumerate(new_databases(UVICORN_STARTS)):
        log = tmp_path / f"uvicorn-{attempt}.log"
        process, base = _serve(db_url, log)
        try:
            output = _wait_until_all_started(process, log)
            assert "Traceback" not in output, output
            assert output.count("Application startup complete.") == WORKERS, output
            with httpx.Client(base_url=base, timeout=10) as client:
                bodies = [f"note {attempt}-{i}" for i in range(8)]
                for body in bodies:  # new connections: the kernel spreads them over workers
                    response = client.post("/workernote", json={"body": body},
                                           headers={"connection": "close"})
                    assert response.status_code == 201, response.text
                listed = client.get("/workernote", params={"limit": 100})
                assert listed.status_code == 200
                assert sorted(row["body"] for row in listed.json()) == sorted(bodies)
        finally:
            _stop(process)


@pytest.mark.parametrize("db_kind", SERVER_KINDS)
async def test_concurrent_table_creation_on_a_fresh_database(
    db_kind: DbKind, new_databases: Callable[[int], list[str]]
) -> None:
    """Eight engines (as eight processes would) create the same tables at the same moment, on
    each fresh database: none fails, and the tables are there once."""
    tables = MetaData()
    for name in ("a", "b", "c"):
        Table(f"race_{name}", tables, Column("id", Integer, primary_key=True),
              Column("label", String(50), index=True))
    for db_url in new_databases(RACES):
        engines = [create_engine(db_url) for _ in range(8)]
        try:
            await asyncio.gather(
                *(create_all(engine, [changelog_metadata, tables]) for engine in engines)
            )
            async with engines[0].connect() as connection:
                names = await connection.run_sync(lambda c: inspect(c).get_table_names())
            assert {"race_a", "race_b", "race_c", "capebase_changes"} <= set(names)
        finally:
            for engine in engines:
                await engine.dispose()


async def test_already_exists_is_recognised(db_url: str) -> None:
    """The errors each database raises for a table or an index that exists are told apart from
    other errors (a creation racing with a process that takes no lock is retried)."""
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE dup_t (id INTEGER PRIMARY KEY)"))
            await connection.execute(text("CREATE INDEX dup_i ON dup_t (id)"))
        for statement in ("CREATE TABLE dup_t (id INTEGER PRIMARY KEY)",
                          "CREATE INDEX dup_i ON dup_t (id)"):
            with pytest.raises(sa_exc.DBAPIError) as caught:
                async with engine.begin() as connection:
                    await connection.execute(text(statement))
            assert is_already_exists(caught.value), caught.value
        with pytest.raises(sa_exc.DBAPIError) as other:
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO dup_missing VALUES (1)"))
        assert not is_already_exists(other.value)
    finally:
        await engine.dispose()
