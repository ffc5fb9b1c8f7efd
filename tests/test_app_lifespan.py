"""CapeBase's lifespan: tables at startup (or not), a user's own lifespan kept, engine disposed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Column, Integer, MetaData, Table, Text, event, inspect, select
from sqlalchemy.ext.asyncio import create_async_engine

import capebase
from capebase import CapeBase, ConfigurationError
from capebase.changes.changelog import metadata as changelog_metadata
from capebase.testing import app_client
from tests.apps import header_auth, make_cape
from tests.models import Item


async def table_names(db_url: str) -> set[str]:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_tables_are_created_at_startup(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Item)
    cape.permission_required(Item, role="*", actions=["read"])
    assert "crud_item" not in await table_names(db_url)
    async with app_client(app) as client:
        assert "crud_item" in await table_names(db_url)
        assert (await client.get("/crud_item")).json() == []


async def create_tables(db_url: str, metadata: MetaData, tables: list[Table] | None = None) -> None:
    """What a migration tool would do."""
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all, tables=tables)
    finally:
        await engine.dispose()


async def test_create_tables_false_leaves_the_schema_alone(db_url: str) -> None:
    # capebase's own tables come from the migrations too when create_tables=False
    await create_tables(db_url, changelog_metadata)
    own_tables = await table_names(db_url)
    app, cape = make_cape(db_url, create_tables=False)
    cape.publish(Item)
    cape.permission_required(Item, actions=["*"])
    # the model's table is missing: start-up says so instead of each request failing
    with pytest.raises(ConfigurationError, match=r"lacks table crud_item \(model Item\)"):
        async with app_client(app):
            pass
    assert await table_names(db_url) == own_tables
    assert "crud_item" not in own_tables

    await create_tables(db_url, Item.metadata, [Item.__table__])
    app, cape = make_cape(db_url, create_tables=False)
    cape.publish(Item)
    cape.permission_required(Item, actions=["*"])
    async with app_client(app) as client:
        response = await client.post("/crud_item", json={"name": "pen"}, headers={"X-User": "a"})
        assert response.status_code == 201
        assert [row["name"] for row in (await client.get("/crud_item")).json()] == ["pen"]
    assert await table_names(db_url) == {*own_tables, "crud_item"}


async def test_a_user_lifespan_still_runs_inside_capebase(db_url: str) -> None:
    events: list[str] = []
    holder: dict[str, CapeBase] = {}

    @asynccontextmanager
    async def user_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # capebase has started: its tables exist and its sessions work
        async with holder["cape"].get_privileged_session() as session:
            session.add(Item(owner_id="system", name="seeded at startup"))
            await session.commit()
        events.append("user startup")
        yield {"greeting": "hello"}
        events.append("user shutdown")

    app = FastAPI(lifespan=user_lifespan)
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    holder["cape"] = cape
    cape.publish(Item)
    cape.permission_required(Item, role="*", actions=["read"])

    def disposed(_engine: Any) -> None:
        events.append("engine disposed")

    event.listen(cape.engine.sync_engine, "engine_disposed", disposed)

    async with app.router.lifespan_context(app) as state:
        assert state == {"greeting": "hello"}
        assert events == ["user startup"]
        async with cape.get_privileged_session() as session:
            names = (await session.execute(select(Item.name))).scalars().all()
        assert names == ["seeded at startup"]
    assert events == ["user startup", "user shutdown", "engine disposed"]


async def test_create_tables_false_without_capebase_tables_says_how_to_fix(
    sqlite_url: str,
) -> None:
    """Regression: startup failed with a raw "no such table: capebase_changes" error."""
    app, _cape = make_cape(sqlite_url, create_tables=False)
    with pytest.raises(ConfigurationError, match=r"capebase\.metadata"):
        async with app_client(app):
            pass


def test_capebase_metadata_is_the_change_log_metadata() -> None:
    assert capebase.metadata is changelog_metadata
    assert "capebase_changes" in capebase.metadata.tables


@pytest.mark.parametrize("create", [True, False], ids=["create_tables", "no create_tables"])
async def test_a_table_without_a_models_column_stops_start_up(db_url: str, create: bool) -> None:
    """A model that gained a field after its table was created: capebase never alters a table,
    so start-up names the missing column (each request answered 503 "database unavailable")."""
    await create_tables(db_url, changelog_metadata)
    older = MetaData()  # Item before it had `name`
    Table("crud_item", older, Column("id", Integer, primary_key=True), Column("owner_id", Text))
    await create_tables(db_url, older)
    app, cape = make_cape(db_url, create_tables=create)
    cape.publish(Item)
    cape.permission_required(Item, actions=["*"])
    with pytest.raises(ConfigurationError, match=r"lacks column crud_item\.name \(model Item\)"):
        async with app_client(app):
            pass
