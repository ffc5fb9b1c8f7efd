"""Engine creation: URLs map to async drivers, sync drivers are refused, SQLite gets WAL and a
busy timeout, and every accepted driver runs the generated routes."""

from __future__ import annotations

import asyncio
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from capebase import ConfigurationError
from capebase.db.engine import (
    IDLE_BEFORE_PING,
    SQLITE_BUSY_TIMEOUT_MS,
    create_engine,
    normalize_url,
)
from capebase.testing import app_client
from tests._databases import DbKind
from tests.apps import as_user, make_cape
from tests.models import Item


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p@h:5432/d", "postgresql+asyncpg://u:p@h:5432/d"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg_async://u@h/d", "postgresql+psycopg://u@h/d"),
        ("mysql://u@h:3306/d", "mysql+asyncmy://u@h:3306/d"),
        ("mariadb://u@h/d", "mysql+asyncmy://u@h/d"),
        ("mysql+asyncmy://u@h/d", "mysql+asyncmy://u@h/d"),
        ("mysql+aiomysql://u@h/d?charset=utf8mb4", "mysql+aiomysql://u@h/d?charset=utf8mb4"),
        ("mariadb+aiomysql://u@h/d", "mysql+aiomysql://u@h/d"),
    ],
)
def test_urls_get_an_async_driver(given: str, expected: str) -> None:
    url = normalize_url(given)
    assert url.render_as_string(hide_password=False) == expected
    assert normalize_url(make_url(given)) == url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://u@h/d",
        "postgresql+pg8000://u@h/d",
        "mysql+pymysql://u@h/d",
        "mysql+mysqldb://u@h/d",
        "sqlite+pysqlite:///x.db",
    ],
)
def test_sync_drivers_are_refused_with_the_async_choices(url: str) -> None:
    driver = url.split("://")[0].split("+")[1]
    with pytest.raises(ConfigurationError, match="not an async driver") as raised:
        normalize_url(url)
    message = str(raised.value)
    assert driver in message
    backend = "mysql" if url.startswith("mysql") else url.split("+")[0]
    expected = {"postgresql": "asyncpg", "mysql": "asyncmy", "sqlite": "aiosqlite"}[backend]
    assert expected in message


@pytest.mark.parametrize("url", ["oracle://u@h/d", "mssql+aioodbc://u@h/d", "not a url", ""])
def test_unsupported_or_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        create_engine(url)


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncmy", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'capebase\[mysql\]'"):
        create_engine("mysql://u@h/d")


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        # A local file has no connection to lose: no ping round trip per checkout.
        assert not engine.pool._pre_ping  # type: ignore[attr-defined]  # no public accessor
        async with engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            busy = (await connection.execute(text("PRAGMA busy_timeout"))).scalar()
            assert busy == SQLITE_BUSY_TIMEOUT_MS
            assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            # LIKE is case-sensitive, as on PostgreSQL
            like = await connection.execute(text("SELECT 'Apple' LIKE 'apple'"))
            assert like.scalar() == 0
    finally:
        await engine.dispose()


async def test_server_pools_ping_connections_that_sat_idle(db_url: str, db_kind: str) -> None:
    engine = create_engine(db_url)
    pings: list[str] = []
    dialect = engine.sync_engine.dialect
    real_ping = dialect.do_ping

    def counting_ping(dbapi_connection: object) -> bool:
        pings.append("ping")
        return bool(real_ping(dbapi_connection))

    dialect.do_ping = counting_ping  # type: ignore[method-assign]
    try:
        for _ in range(3):  # back to back: no ping
            async with engine.connect() as connection:
                assert (await connection.execute(text("SELECT 1"))).scalar() == 1
        assert pings == []
        await asyncio.sleep(IDLE_BEFORE_PING + 0.1)
        async with engine.connect() as connection:  # idle for a while: pinged first
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
        assert pings == ([] if db_kind == "sqlite" else ["ping"])
    finally:
        await engine.dispose()


def other_driver_urls(db_url: str, db_kind: DbKind) -> list[str]:
    """``db_url`` spelt with each other driver or scheme capebase accepts for its database."""
    url = make_url(db_url)
    if db_kind == "postgresql":
        return [
            url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False),
            url.set(drivername="postgresql").render_as_string(hide_password=False),
        ]
    if db_kind == "mariadb":
        return [
            url.set(drivername="mysql+aiomysql").render_as_string(hide_password=False),
            url.set(drivername="mariadb").render_as_string(hide_password=False),
        ]
    return [url.set(drivername="sqlite").render_as_string(hide_password=False)]


async def test_every_accepted_driver_runs_the_routes(db_url: str, db_kind: DbKind) -> None:
    alice = as_user("alice")
    for number, url in enumerate(other_driver_urls(db_url, db_kind)):
        app, cape = make_cape(url)
        cape.publish(Item)
        cape.permission_required(Item, owner_field="owner_id", actions=["*"])
        async with app_client(app) as client:
            name = f"pen 50%_{number}"
            created = await client.post("/crud_item", json={"name": name}, headers=alice)
            assert created.status_code == 201, (url, created.text)
            item = created.json()
            path = f"/crud_item/{item['id']}"
            assert (await client.get(path, headers=alice)).json() == item
            response = await client.patch(path, json={"qty": 4}, headers=alice)
            assert response.json()["qty"] == 4
            for params in (
                {"name": name},
                {"name__like": f"pen 50\\%\\_{number}"},
                {"name__contains": "50%_"},
                {"name__ilike": "PEN%"},
                {"qty__gte": "4", "name__startswith": "pen"},
            ):
                response = await client.get("/crud_item", params=params, headers=alice)
                assert [row["id"] for row in response.json()] == [item["id"]], (url, params)
            response = await client.get("/crud_item", params={"name": name.upper()}, headers=alice)
            assert response.json() == [], url
            assert (await client.delete(path, headers=alice)).status_code == 204
            assert (await client.get(path, headers=alice)).status_code == 404
