"""Fixtures every test may use: a fresh database on SQLite, PostgreSQL and MariaDB, and Redis.

- `db_url`: an SQLAlchemy async URL of a new, empty database, dropped after the test. Tests that
  take it run once per database kind, with ids `sqlite`, `postgresql`, `mariadb`.
- `db_kind`: "sqlite", "postgresql" or "mariadb", the kind of the current `db_url`.
- `sqlite_url`: an SQLite URL only, for tests that need no server.
- `redis_url`: `redis://127.0.0.1:6379/<db>`, a database this run has to itself, flushed before
  and after the test. Redis pub/sub channels are shared by all databases: name channels uniquely.

CAPEBASE_TEST_DBS=sqlite,postgresql restricts the kinds `db_url` runs on (default: all three);
under CI=true a list that leaves a kind out stops the run with a usage error instead.
A test for some kinds only parametrizes `db_kind` itself:
`@pytest.mark.parametrize("db_kind", ["postgresql"])`.
A server that is down skips its tests with the command that starts it, except under CI=true,
where it fails them.

`make test` runs the suite on two xdist workers (`-n 2 -m "not serial"`), each with databases and
a Redis database of its own, then the `serial` tests alone: those in tests/reliability and
tests/scaleout restart PostgreSQL and Redis, and run several server processes each.

Hypothesis runs under one of two settings profiles (`tests/_hypothesis.py`):
- `fast` (the default, `make test`): derandomized, so every run checks the same examples; each
  randomized test asserts that those examples cover the case classes it promises.
- `deep` (`make deep`, or `pytest --hypothesis-profile=deep`): a new random seed each run and
  ten times the examples; `make deep` prints the seed (`--hypothesis-seed=N` replays it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import apps
from tests._databases import (
    DB_KINDS,
    DbKind,
    TestServers,
    is_ci,
    require,
    selected_db_kinds,
)
from tests._hypothesis import register_profiles

register_profiles()

SERIAL_DIRECTORIES = ("reliability", "scaleout")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        relative = item.path.relative_to(tests) if item.path.is_relative_to(tests) else None
        if relative is not None and relative.parts[0] in SERIAL_DIRECTORIES:
            item.add_marker(pytest.mark.serial)


try:
    SELECTED_DB_KINDS = selected_db_kinds()
except ValueError as error:
    raise pytest.UsageError(str(error)) from None


def pytest_report_header() -> str:
    on_missing = "fail" if is_ci() else "skip"
    return (
        f"capebase: databases {', '.join(SELECTED_DB_KINDS)} "
        f"(CAPEBASE_TEST_DBS; all: {','.join(DB_KINDS)}); tests needing a server that is down "
        f"{on_missing}"
    )


@pytest.fixture(scope="session")
def _servers() -> Iterator[TestServers]:
    servers = TestServers()
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(params=SELECTED_DB_KINDS)
def db_kind(request: pytest.FixtureRequest) -> DbKind:
    """The database kind this test runs against: "sqlite", "postgresql" or "mariadb"."""
    kind: DbKind = request.param
    return kind


@pytest.fixture(params=["fast", "reference"])
def fast_or_reference(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the generated routes on their fast path, then with
    ``CrudConfig(fast_path=False)``: SQLAlchemy and FastAPI's own request handling, the
    reference they must agree with. Apps are built with ``tests.apps.make_cape`` (or
    tests/policy/_support.make_app)."""
    path: str = request.param
    monkeypatch.setattr(apps, "FAST_PATH", path == "fast")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An SQLAlchemy async URL of a new SQLite database file in the test's tmp_path."""
    return f"sqlite+aiosqlite:///{tmp_path}/test.db"


@pytest.fixture
def db_url(db_kind: DbKind, tmp_path: Path, _servers: TestServers) -> Iterator[str]:
    """An SQLAlchemy async URL of a new, empty database of kind `db_kind`, dropped afterwards."""
    if db_kind not in SELECTED_DB_KINDS:
        pytest.skip(f"CAPEBASE_TEST_DBS={','.join(SELECTED_DB_KINDS)} leaves out {db_kind}")
    if db_kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/test.db"
        return
    require(_servers, db_kind)
    name = _servers.create_database(db_kind)
    try:
        yield _servers.url(db_kind, name)
    finally:
        _servers.drop_database(db_kind, name)


@pytest.fixture
def redis_url(_servers: TestServers) -> Iterator[str]:
    """A Redis URL whose database this run has to itself, flushed before and after the test."""
    require(_servers, "redis")
    yield _servers.redis_url()
    _servers.flush_redis()
