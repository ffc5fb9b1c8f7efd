"""``insert(Model).values([...])`` in a user session: literal rows are checked and filled like
a parameter list (capebase 0.1 ran them; we refused them). INSERT ... SELECT stays refused, and
an INSERT naming another auth-field value than the caller's is denied, not rewritten."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from capebase import AuthContext
from capebase.changes.changelog import changes
from capebase.errors import PermissionDeniedError, UnfilterableStatementError

from .models import Note, Team
from .test_sessions import ALICE, NOTES, Running, start


@pytest.fixture
async def running(db_url: str) -> AsyncIterator[Running]:
    async for value in start(db_url):
        yield value


async def _new_notes(running: Running) -> dict[str, str]:
    """body → owner of the notes added by the test."""
    before = {n["id"] for n in NOTES}
    return {row["body"]: row["owner"] for pk, row in (await running.notes()).items()
            if pk not in before}


async def _logged_inserts(running: Running) -> list[str]:
    async with running.cape.engine.connect() as connection:
        rows = await connection.execute(
            select(changes.c.op).where(changes.c.table_name == "pol_note").order_by(changes.c.id)
        )
        return [row[0] for row in rows if row[0] == "INSERT"]


async def test_a_values_list_inserts_each_row_filled_and_checked(running: Running) -> None:
    logged = len(await _logged_inserts(running))
    async with running.session() as session:
        await session.execute(
            insert(Note).values(
                [{"body": "v1"}, {"body": "v2", "team_id": 1}, {Note.body: "v3", "owner": "alice"}]
            )
        )
        await session.commit()
    assert await _new_notes(running) == {"v1": "alice", "v2": "alice", "v3": "alice"}
    # each row is a captured change, as for any other insert
    assert len(await _logged_inserts(running)) == logged + 3


@pytest.mark.parametrize(
    "rows",
    [
        [{"body": "w1", "owner": "bob"}],
        [{"body": "w1"}, {"body": "w2", "owner": "bob"}],  # one bad row spoils the statement
    ],
    ids=["one row", "second row"],
)
async def test_a_values_list_naming_another_owner_is_denied(
    running: Running, rows: list[dict[str, Any]]
) -> None:
    async with running.session() as session:
        with pytest.raises(PermissionDeniedError) as denied:
            await session.execute(insert(Note).values(rows))
        assert denied.value.status_code == 403
        await session.rollback()
    assert await _new_notes(running) == {}


async def test_a_single_values_insert_naming_another_owner_is_denied(running: Running) -> None:
    """The statement's own VALUES are not silently rewritten to the caller's id; the same
    value as the caller's is fine."""
    async with running.session() as session:
        with pytest.raises(PermissionDeniedError):
            await session.execute(insert(Note).values(body="s1", owner="bob"))
        await session.rollback()
        await session.execute(insert(Note).values(body="s2", owner="alice"))
        await session.execute(insert(Note).values(body="s3"))
        await session.commit()
    assert await _new_notes(running) == {"s2": "alice", "s3": "alice"}


async def test_a_values_list_the_create_rule_denies_is_refused(running: Running) -> None:
    """Team has no create rule: the rows are checked against the policy like any other."""
    async with running.session() as session:
        with pytest.raises(PermissionDeniedError):
            await session.execute(insert(Team).values([{"owner": "alice", "name": "t"}]))
        await session.rollback()
    async with running.cape.get_privileged_session() as session:
        names = (await session.execute(select(Team.name))).scalars().all()
    assert "t" not in names


async def test_anonymous_callers_get_401(running: Running) -> None:
    async with running.cape.get_session(AuthContext()) as session:
        with pytest.raises(PermissionDeniedError) as denied:
            await session.execute(insert(Note).values([{"body": "anon"}]))
    assert denied.value.status_code == 401


@pytest.mark.parametrize(
    "statement",
    [
        insert(Note).values([{"body": func.lower("X")}]),
        insert(Note).from_select(["owner", "body"], select(Note.owner, Note.body)),
        insert(Note).values([{"body": "p"}]).prefix_with("IGNORE"),
    ],
    ids=["SQL expression", "INSERT ... SELECT", "prefix"],
)
async def test_what_cannot_be_checked_is_still_refused(running: Running, statement: Any) -> None:
    async with running.session(ALICE) as session:
        with pytest.raises(UnfilterableStatementError):
            await session.execute(statement)
    assert await _new_notes(running) == {}
