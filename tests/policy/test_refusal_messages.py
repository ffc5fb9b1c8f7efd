"""What a user session says when it refuses a statement: each refusal's exact message, which
names what was refused and what to do instead (test_sessions.py checks *that* they are refused);
and the details of the bulk statements it lets through: both images of an UPDATE are checked,
with the values the statement's parameters give.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import (
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import aliased

from capebase import AuthContext
from capebase.errors import PermissionDeniedError, UnfilterableStatementError
from capebase.policy.shapes import require_known_shape
from tests._databases import DbKind

from .models import Bare, Note, Team
from .test_sessions import NOTES, Running, _upsert, start

USE_ORM = (
    " Use ORM statements on mapped classes (select(Model), update(Model), ...), or "
    "`async with cape.get_privileged_session()` for SQL the policy cannot see into."
)
CORE_TABLE = (
    "Table {} is read without the permission filter at this place in the statement (it is a "
    "Core table, or an entity the policy's criteria do not reach here); a user session cannot "
    "run it."
)
NOTE = Note.__table__
TEAM = Team.__table__

REFUSALS: dict[str, tuple[Callable[[], Any], str]] = {
    "text": (
        lambda: text("SELECT * FROM pol_note"),
        "text() SQL cannot be filtered in a user session." + USE_ORM,
    ),
    "from_statement": (
        lambda: select(Note).from_statement(select(Note)),
        "select(...).from_statement(...) cannot be filtered in a user session." + USE_ORM,
    ),
    "literal_column": (
        lambda: select(Note.id, literal_column("(SELECT 1)")),
        "literal_column() SQL cannot be filtered in a user session." + USE_ORM,
    ),
    "update naming another class": (
        lambda: update(Note).where(Note.owner == "alice", Team.owner == "bob").values(body="x"),
        "An UPDATE or DELETE in a user session may read only its own table (pol_team is another "
        "FROM, which the policy's filter does not reach); put other entities in a select(...) "
        "subquery." + USE_ORM,
    ),
    "Core tables": (
        lambda: select(Bare.id, TEAM.c.name, NOTE.c.body),
        CORE_TABLE.format("pol_team") + USE_ORM,
    ),
    "aliased over another table": (
        lambda: select(aliased(Note, TEAM, adapt_on_names=True).id),  # type: ignore[attr-defined]
        "aliased(Note, pol_team) reads another table under Note's rules." + USE_ORM,
    ),
    "a Core alias, named as such": (
        lambda: select(Bare.id, TEAM.alias("t").c.name),
        CORE_TABLE.format("pol_team") + USE_ORM,
    ),
    "aliased over an alias of another table": (
        lambda: select(
            aliased(Note, TEAM.alias("t"), adapt_on_names=True).id  # type: ignore[attr-defined]
        ),
        "aliased(Note, pol_team) reads another table under Note's rules." + USE_ORM,
    ),
    "INSERT ... SELECT": (
        lambda: insert(Note).from_select(["owner", "body"], select(Note.owner, Note.body)),
        "INSERT ... SELECT into Note cannot be checked in a user session: read the rows, then "
        "insert them as values or parameters",
    ),
    "VALUES list with a prefix": (
        lambda: insert(Note).values([{"body": "x"}]).prefix_with("OR IGNORE"),
        "Insert with prefixes cannot be checked in a user session (SQL text the policy cannot "
        "see into)." + USE_ORM,
    ),
    "VALUES list of tuples": (
        lambda: insert(Note).values([(None, "alice", "x")]),
        "INSERT ... VALUES lists of tuples cannot be checked in a user session; give each row "
        "as a dict of column names",
    ),
    "VALUES computed by SQL": (
        lambda: insert(Note).values([{"body": func.lower("X")}]),
        "INSERT values computed by SQL expressions cannot be checked in a user session",
    ),
}


@pytest.fixture
async def running(db_url: str) -> AsyncIterator[Running]:
    async for value in start(db_url):
        yield value


async def test_each_refusal_says_what_and_what_instead(running: Running) -> None:
    said = {}
    async with running.session() as session:
        for name, (statement, _message) in REFUSALS.items():
            with pytest.raises(UnfilterableStatementError) as refused:
                await session.execute(statement())
            said[name] = str(refused.value)
    assert said == {name: message for name, (_statement, message) in REFUSALS.items()}


async def test_bulk_and_upsert_refusals_say_what_and_what_instead(
    running: Running, db_kind: DbKind
) -> None:
    async with running.session() as session:
        with pytest.raises(UnfilterableStatementError) as refused:
            await session.execute(update(Note), [{"id": 1, "body": "x"}])
        assert str(refused.value) == (
            "Bulk UPDATE/DELETE of Note by primary key lists cannot be checked in a user "
            "session; load the objects and change them, or use "
            "update(Model).where(...).values(...)."
        )
        with pytest.raises(UnfilterableStatementError) as refused:
            await session.execute(delete(Note), [{"id": 1}])
        assert "Bulk UPDATE/DELETE of Note by primary key lists" in str(refused.value)
        with pytest.raises(UnfilterableStatementError) as refused:
            await session.execute(insert(Note).values([{"body": "x"}]), {"body": "y"})
        assert str(refused.value) == (
            "INSERT ... VALUES lists into Note with parameters or prefixes cannot be checked in "
            "a user session; pass the rows as parameters: "
            "session.execute(insert(Model), [{...}, ...])"
        )
        with pytest.raises(UnfilterableStatementError) as refused:
            await session.execute(_upsert(db_kind))
        assert str(refused.value) == (
            "INSERT ... ON CONFLICT / ON DUPLICATE KEY cannot be filtered in a user session."
            + USE_ORM
        )


@pytest.mark.parametrize(
    ("ctx", "status"), [(AuthContext(id="alice"), 403), (AuthContext(), 401)]
)
async def test_an_insert_in_another_name_is_a_denied_create(
    running: Running, ctx: AuthContext, status: int
) -> None:
    async with running.session(ctx) as session:
        with pytest.raises(PermissionDeniedError) as denied:
            await session.execute(insert(Note).values(body="x", owner="bob"))
    assert (denied.value.action, denied.value.model, denied.value.status_code) == (
        "create",
        "Note",
        status,
    )


async def test_parameters_complete_an_inserts_own_values(running: Running) -> None:
    """``execute(insert(M).values(...), {...})``: the parameters and the VALUES both count."""
    async with running.session() as session:
        await session.execute(insert(Note).values(body="given"), {"team_id": 2})
        await session.commit()
    added = [row for pk, row in (await running.notes()).items() if pk > len(NOTES)]
    assert [(r["owner"], r["body"], r["team_id"]) for r in added] == [("alice", "given", 2)]


async def test_a_bulk_update_checks_the_old_image_too(running: Running) -> None:
    """Note 6 is bob's and locked: alice may read it, not update it, even to make it hers (the
    new image would pass the update rule; the old one does not)."""
    async with running.session() as session:
        taken = await session.execute(
            update(Note).where(Note.id == 6).values(owner="alice", body="taken")
        )
        await session.commit()
    assert taken.rowcount == 0  # type: ignore[attr-defined]
    assert (await running.notes())[6]["owner"] == "bob"


async def test_a_bulk_updates_own_owner_may_be_set_by_parameters(running: Running) -> None:
    """SET values given as execution parameters or bound parameters are checked with their
    values: alice setting her own id on her own note is allowed."""
    mine = update(Note).where(Note.id == 1)
    async with running.session() as session:
        by_parameters = await session.execute(mine, {"owner": "alice", "body": "p"})
        by_bindparam = await session.execute(
            mine.values(owner=bindparam("who"), body="b"), {"who": "alice"}
        )
        await session.commit()
    assert (by_parameters.rowcount, by_bindparam.rowcount) == (1, 1)  # type: ignore[attr-defined]
    assert (await running.notes())[1]["body"] == "b"


def test_the_statement_check_visits_a_shared_expression_once() -> None:
    """Shared subexpressions are checked once: without that, a statement that reuses one
    expression n levels deep costs 2**n steps to check (here 2**60: the test would time out)."""
    expression: Any = Note.id == 1
    for _ in range(60):
        expression = and_(or_(expression, Note.body == "x"), or_(expression, Note.owner == "y"))
    assert require_known_shape(select(Note.id).where(expression)) == {Note.__mapper__}
