"""Database metrics: statement latency by operation and table, errors, pool gauges."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import delete, insert, select, text, update

from capebase.testing import app_client
from tests.observability._app import Note, make_app, scrape, who

QUERIES = "capebase_db_query_duration_seconds_count"
ERRORS = "capebase_db_errors_total"


async def test_statements_are_timed_by_operation_and_table(db_url: str) -> None:
    app, cape = make_app(db_url, metrics=True)
    async with app_client(app) as client:
        before = await scrape(client)
        await client.post("/obs_note", json={"title": "a"}, headers=who("ann"))
        await client.get("/obs_note")
        async with cape.get_privileged_session() as session:
            await session.execute(insert(Note), [{"owner_id": "bob", "title": "b"}])
            await session.execute(update(Note).where(Note.owner_id == "bob").values(done=True))
            await session.execute(delete(Note).where(Note.owner_id == "bob"))
            await session.commit()
        after = await scrape(client)

    def moved(**labels: str) -> float:
        return after.value(QUERIES, **labels) - before.value(QUERIES, **labels)

    assert moved(operation="insert", table="obs_note") >= 2
    assert moved(operation="select", table="obs_note") >= 1
    assert moved(operation="update", table="obs_note") >= 1
    assert moved(operation="delete", table="obs_note") >= 1
    # Each change is written to the log: capebase's own statements are measured too.
    assert moved(operation="insert", table="capebase_changes") >= 2
    assert after.value("capebase_db_query_duration_seconds_sum", table="obs_note") > 0
    # Labels are table names and operations only: never values, ids or SQL text.
    assert after.label_values(QUERIES, "operation") <= {"select", "insert", "update", "delete",
                                                         "other"}
    tables = after.label_values(QUERIES, "table")
    assert {"obs_note", "capebase_changes"} <= tables
    # Beyond ours, only catalog tables the schema checks read (pg_class, ...) and "<none>".
    assert all(re.fullmatch(r"[a-z_]+|<none>", table) for table in tables), tables


async def test_failed_statements_are_counted(db_url: str) -> None:
    app, cape = make_app(db_url, metrics=True)
    async with app_client(app) as client:
        before = await scrape(client)
        async with cape.get_privileged_session() as session:
            with pytest.raises(Exception, match=r"(?i)no_such_table|doesn't exist|no such table"):
                await session.execute(text("SELECT * FROM no_such_table"))
        async with cape.get_privileged_session() as session:
            session.add(Note(id=1, owner_id="a", title="x"))
            await session.commit()
        async with cape.get_privileged_session() as session:
            session.add(Note(id=1, owner_id="a", title="duplicate"))
            with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
                await session.commit()
        after = await scrape(client)
    assert after.value(ERRORS, operation="select", table="<none>") - before.value(
        ERRORS, operation="select", table="<none>"
    ) == 1
    assert after.value(ERRORS, operation="insert", table="obs_note") == 1


async def test_pool_gauges_are_read_at_scrape_time(db_url: str) -> None:
    app, cape = make_app(db_url, metrics=True, engine_options={"pool_size": 3})
    async with app_client(app) as client:
        idle = await scrape(client)
        async with cape.engine.connect() as one, cape.engine.connect() as two:
            await one.execute(select(1))
            await two.execute(select(1))
            busy = await scrape(client)
    assert idle.value("capebase_db_pool_size") == 3
    # The hub's dispatcher may hold a connection of its own at any moment.
    assert 2 <= busy.value("capebase_db_pool_checked_out") <= 3
    assert busy.value("capebase_db_pool_overflow") == 0
