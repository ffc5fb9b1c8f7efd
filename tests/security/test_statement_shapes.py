"""Statement shapes a user session meets: each one that reads rows must read only what the
caller may read, or be refused (``policy.shapes`` and ``policy.coverage``).

The oracle: a user session's answer to a query must be the answer a privileged session gets
from the same database with the rows the caller may not read removed (row-level security).
Shapes meant to work must give that answer; attacks must give it or be refused; shapes the
policy cannot see into must be refused. Found by the fourth security review (issue 16): a
deny-list of shapes had let through, one review after another, the next shape nobody listed
(here, an entity inside a function in WHERE, which SQLAlchemy gives no loader criteria).

OWASP API Security Top 10 (2023): API1:2023 Broken Object Level Authorization.
"""


from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import (
    Boolean,
    Numeric,
    String,
    bindparam,
    cast,
    delete,
    except_,
    exists,
    extract,
    func,
    insert,
    intersect,
    lambda_stmt,
    literal,
    literal_column,
    select,
    table,
    text,
    true,
    type_coerce,
    union,
    union_all,
    update,
)
from sqlalchemy.orm import (
    aliased,
    contains_eager,
    joinedload,
    selectinload,
    subqueryload,
    with_loader_criteria,
    with_polymorphic,
)
from sqlalchemy.orm.context import _ORMCompileState

from capebase import CapeBase, UnfilterableStatementError
from capebase.policy.coverage import UserStatement
from capebase.policy.guards import policy_guard
from capebase.testing import app_client
from tests._databases import DbKind

from ._shapes import (
    ALICE,
    SQL_IN_PRECISION,
    TEAMS,
    BindSql,
    Book,
    ColumnSql,
    Item,
    Note,
    NumericOnEachDatabase,
    RawType,
    Tag,
    Team,
    World,
    as_alice,
    lateral_first_note,
    membership,
    note_tag,
    open_world,
    oracle,
    recursive_ids,
    sampled_notes,
    values_join,
)


@pytest.fixture
async def world(db_url: str, db_kind: DbKind) -> AsyncIterator[World]:
    async with open_world(db_url, db_kind) as opened:
        yield opened


NOTE = Note.__table__
TEAM = Team.__table__
n2 = aliased(Note)
team_notes = select(Note.team_id).subquery()
one_note = select(Note.id, Note.team_id).cte("one_note")


# Shapes that must work in a user session and answer as the oracle does.
LEGIT: dict[str, Callable[[], Any]] = {
    "entity": lambda: select(Note),
    "columns, where, order, limit, offset": lambda: select(Note.id, Note.body)
    .where(Note.id > 0).order_by(Note.id.desc()).limit(2).offset(1),
    "count(*) FROM entity": lambda: select(func.count()).select_from(Note),
    "group by, having": lambda: select(Note.team_id, func.count())
    .group_by(Note.team_id).having(func.count() > 0),
    "distinct": lambda: select(Note.team_id).distinct(),
    "filter_by": lambda: select(Note).filter_by(owner="bob"),
    "order_by a label name": lambda: select(Note.body.label("b")).order_by("b"),
    "bindparam": lambda: select(Note.id).where(Note.id == bindparam("x", 3)),
    "relationship join": lambda: select(Note.id, Team.name).join(Note.team),
    "outer join (filter in ON)": lambda: select(Team.name, Note.body)
    .outerjoin(Note, Team.id == Note.team_id),
    "outer join, probe for NULL": lambda: select(Note.id)
    .outerjoin(Team, Team.id == Note.team_id).where(Team.id.is_(None)),
    "join_from": lambda: select(n2.body).join_from(Note, n2, n2.id != Note.id),
    "select_from entity, join": lambda: select(Team.name).select_from(Note).join(Note.team),
    "aliased self-join": lambda: select(Note.id, n2.id).join(n2, n2.team_id == Note.team_id),
    "implicit join (two entities' filters in one WHERE)": lambda: select(Note.id, Team.name)
    .where(Note.team_id == Team.id),
    "chained joins": lambda: select(Note.id, Team.name, n2.id).join(Note.team)
    .join(n2, n2.team_id == Team.id),
    "relationship.and_()": lambda: select(Team.id, Note.id)
    .join(Team.notes.and_(Note.body != "")),
    "has()": lambda: select(Note.id).where(Note.team.has(Team.name == "bob team")),
    "any()": lambda: select(Team.id).where(Team.notes.any(Note.body == "b-secret")),
    "subquery join": lambda: select(Team.name).join(
        team_notes, team_notes.c.team_id == Team.id
    ),
    "IN subquery": lambda: select(Team.name).where(Team.id.in_(select(Note.team_id))),
    "EXISTS probe": lambda: select(Note.id).where(
        exists().where(Team.id == Note.team_id, Team.name == "bob team")
    ),
    "exists() as a column": lambda: select(exists().where(Note.body == "b-secret")),
    "correlated scalar subquery column": lambda: select(
        Team.id, select(func.count(Note.id)).where(Note.team_id == Team.id).scalar_subquery()
    ),
    "scalar subquery in ORDER BY": lambda: select(Team.id).order_by(
        select(func.count(Note.id)).where(Note.team_id == Team.id).scalar_subquery()
    ),
    "uncorrelated scalar subquery": lambda: select(select(func.max(Note.body)).scalar_subquery()),
    "scalar subquery, correlate(None)": lambda: select(Note.id).where(
        Note.id == select(func.max(Note.id)).correlate(None).scalar_subquery()
    ),
    "cte": lambda: select(one_note.c.id),
    "recursive cte": recursive_ids,
    "union": lambda: union(select(Note.body), select(Team.name)),
    "union_all": lambda: union_all(select(Note.id), select(Team.id)),
    "except_": lambda: except_(select(Note.team_id), select(Team.id)),
    "intersect": lambda: intersect(select(Note.team_id), select(Team.id)),
    "window function": lambda: select(Note.id, func.row_number().over(order_by=Note.id)),
    "window frame": lambda: select(
        Note.id, func.sum(Note.id).over(order_by=Note.id, rows=(None, 0))
    ),
    "aggregate filter": lambda: select(Note.team_id, func.count(Note.id).filter(Note.id > 1))
    .group_by(Note.team_id),
    "cast to a SQLAlchemy type": lambda: select(cast(Note.id, String(10))),
    "with_only_columns": lambda: select(Note).with_only_columns(Note.body),
    "same table's Core column next to the entity": lambda: select(Note.id, NOTE.c.body),
    "select_from the entity's Core table": lambda: select(Note.id).select_from(NOTE),
    "free link table, joined": lambda: select(Note.id, note_tag.c.tag_id)
    .join(note_tag, note_tag.c.note_id == Note.id),
    "free link table alone (a Core SELECT)": lambda: select(note_tag.c.note_id),
    "join through secondary": lambda: select(Tag.name, Note.id).join(Tag.notes),
    "column_property (correlated count)": lambda: select(Team.id, Team.note_count),  # type: ignore[attr-defined]
    "single-table inheritance base": lambda: select(Item),
    "single-table inheritance subclass": lambda: select(Book.id, Book.title),
    "with_polymorphic": lambda: select(with_polymorphic(Item, [Book])),
    "joinedload": lambda: select(Team).options(joinedload(Team.notes)),
    "joinedload + limit (subquery)": lambda: select(Team).options(joinedload(Team.notes)).limit(5),
    "contains_eager": lambda: select(Note).join(Note.team).options(contains_eager(Note.team)),
    "app's with_loader_criteria": lambda: select(Note).options(
        with_loader_criteria(Note, Note.id > 1)
    ),
    "documented-looking internal flag": lambda: select(Note.id).execution_options(
        capebase_internal=True
    ),
    "values() as a FROM": values_join,
    "lateral subquery": lateral_first_note,
    "tablesample of an aliased entity": sampled_notes,
    "selectinload through a link table": lambda: select(Note).options(selectinload(Note.tags)),
    "joinedload through a link table (a nested join)": lambda: select(Note).options(
        joinedload(Note.tags)
    ),
    "subqueryload": lambda: select(Team).options(subqueryload(Team.notes)),
    # Regression (mutation testing, issue 17): a loader path ending in an alias raised
    # AttributeError (a 500) where it should have run.
    "joinedload of_type an alias": lambda: select(Note).options(
        joinedload(Note.team.of_type(aliased(Team)))
    ),
    "selectinload of_type an alias": lambda: select(Team).options(
        selectinload(Team.notes.of_type(aliased(Note)))
    ),
    "literal": lambda: select(Note.id, literal("x")),
    # Terms that can fail run under the read filters (``policy.fallible``): same answers.
    "arithmetic in WHERE": lambda: select(Note.id).where(Note.id * 2 > 3),
    "function in the columns": lambda: select(Note.id, func.upper(Note.body)),
    "grouped by an expression": lambda: select(
        (key := func.length(Note.body)), func.count()
    ).group_by(key),
    "grouped, arithmetic over the key": lambda: select(Note.team_id + 1, func.count())
    .group_by(Note.team_id),
    "arithmetic inside an aggregate": lambda: select(func.sum(Note.id * 2)),
    "HAVING with arithmetic": lambda: select(Note.team_id)
    .group_by(Note.team_id).having(func.count() * 2 > 1),
    "coalesce over an outer join's empty side": lambda: select(
        Team.id, func.coalesce(Note.body, "none")
    ).outerjoin(Note, (Note.team_id == Team.id) & (Note.id > 100)),
    "window over arithmetic": lambda: select(
        Note.id, func.row_number().over(order_by=Note.id * -1)
    ),
    "scalar subquery in the columns": lambda: select(
        Team.id,
        select(func.count(Note.id)).where(Note.team_id == Team.id).scalar_subquery(),
    ),
    "computed inside a subquery, filtered outside": lambda: select(
        (doubled := select((Note.id * 2).label("d")).subquery()).c.d
    ).where(doubled.c.d > 2),
    "CAST in ORDER BY": lambda: select(Note.id).order_by(cast(Note.id, String)),
    "CAST to NUMERIC(10, 2)": lambda: select(cast(Note.id, Numeric(10, 2))),
    "joinedload with criteria": lambda: select(Team)
    .options(joinedload(Team.notes.and_(Note.body != ""), innerjoin=True)),
    "selectinload with criteria": lambda: select(Team)
    .options(selectinload(Team.notes.and_(Note.id > 1))),
    "window over a grouped query": lambda: select(
        Note.team_id, func.rank().over(order_by=func.count() * 2)
    ).group_by(Note.team_id),
    "window beside arithmetic, in a subquery filtered outside": lambda: select(
        (ranked := select(
            (Note.id * 2).label("d"), func.row_number().over(order_by=Note.id).label("r")
        ).subquery()).c.r
    ).where(ranked.c.d > 2),
    # Comparisons of one class of values stay as written (review of issue 16, finding 2).
    "a boolean column as a condition": lambda: select(Note.id).where(Note.locked),
    "text IN texts, number BETWEEN numbers": lambda: select(Note.id)
    .where(Note.body.in_(["a1", "b-secret"]), Note.id.between(1, 4)),
    "a number compared with a subquery's max": lambda: select(Note.id)
    .where(Note.id == select(func.max(Note.id)).scalar_subquery()),
    "window with arithmetic on a group key": lambda: select(
        Note.team_id, func.lag(Note.team_id * 2).over(order_by=Note.team_id)
    ).group_by(Note.team_id),
}

# Shapes that read what the policy cannot filter: refused.
REFUSED: dict[str, Callable[[], Any]] = {
    "text()": lambda: text("SELECT * FROM sh_note"),
    "text() in WHERE": lambda: select(Note.id).where(text("1 = 1")),
    "text().columns()": lambda: select(Note).from_statement(
        text("SELECT * FROM sh_note").columns(Note.id, Note.owner, Note.body)
    ),
    "from_statement": lambda: select(Note).from_statement(select(Note)),
    "literal_column": lambda: select(literal_column("body")).select_from(Note),
    "Core table": lambda: select(NOTE),
    "join to a Core table": lambda: select(Note.id, TEAM.c.name)
    .join(TEAM, TEAM.c.id == Note.team_id),
    "lightweight table()": lambda: select(Note.id).select_from(table("sh_team")),
    "Core union member": lambda: union_all(select(Note.body), select(NOTE.c.body)),
    "Core cte": lambda: select(Note.id).join(c := select(NOTE.c.id).cte(), c.c.id != Note.id),
    "entity inside a function in WHERE": lambda: select(Note.id)
    .where(func.coalesce(Team.name, "") == "bob team"),
    "entity inside a function in WHERE, lower()": lambda: select(Note.id)
    .where(func.lower(Team.name).like("%bob%")),
    "FULL OUTER JOIN": lambda: select(Note.id, Team.name)
    .join(Team, Note.team_id == Team.id, full=True),
    "aliased entity over a Core subquery": lambda: select(
        aliased(Note, select(NOTE).subquery()).body
    ),
    "aliased entity over another table": lambda: select(
        aliased(Note, TEAM, adapt_on_names=True).id
    ),
    "loader option of_type an alias over another table": lambda: select(Note).options(
        joinedload(Note.team.of_type(aliased(Team, NOTE, adapt_on_names=True)))
    ),
    "custom operator with SQL in it": lambda: select(Note.id)
    .where(Note.id.op("IN (SELECT id FROM sh_note) OR 1 =")(1)),
    "EXTRACT field with SQL in it": lambda: select(
        extract("year FROM now()) + (SELECT count(*) FROM sh_note", Note.id)
    ),
    "a function that runs a query (PostgreSQL)": lambda: select(
        Note.id, func.query_to_xml("SELECT body FROM sh_note", True, False, "")
    ),
    "table-valued function": lambda: select(func.json_each('{"a": 1}').table_valued("value")),
    "with_hint": lambda: select(Note.id).with_hint(Note, "USE INDEX (primary)"),
    "prefix_with": lambda: select(Note.id).prefix_with("/* hi */"),
    "suffix_with": lambda: select(Note.id).suffix_with("/* hi */"),
    "with_statement_hint": lambda: select(Note.id).with_statement_hint("X"),
    "app's with_loader_criteria over a Core table": lambda: select(Team).options(
        with_loader_criteria(Team, Team.id.in_(select(NOTE.c.team_id)))
    ),
    "app's with_loader_criteria with a lambda": lambda: select(Note).options(
        with_loader_criteria(Note, lambda cls: cls.id > 0)
    ),
    "schema_translate_map": lambda: select(Note.id).execution_options(
        schema_translate_map={None: "other"}
    ),
    "update ... FROM another entity": lambda: update(Note)
    .where(Note.team_id == Team.id, Team.name == "bob team").values(body="x"),
    "delete ... USING another entity": lambda: delete(Note).where(Note.team_id == Team.id),
    "update ... FROM an alias": lambda: update(Note)
    .where(Note.id == n2.id).values(body=n2.body),
    "insert ... from_select": lambda: insert(Note)
    .from_select(["id", "owner", "body", "team_id"], select(Note.id + 100, Note.owner, Note.body,
                                                            Note.team_id)),
    "INSERT OR REPLACE (prefix)": lambda: insert(Note).prefix_with("OR REPLACE")
    .values(id=3, owner="alice", body="mine now", team_id=1),
    # Writes inside a SELECT (PostgreSQL runs them): no write check, no change capture.
    "INSERT in a CTE": lambda: select(
        insert(Note).values(id=50, owner="bob", body="forged", team_id=2)
        .returning(Note.id).cte("forged").c.id
    ),
    "UPDATE in a CTE": lambda: select(
        update(Note).values(owner="alice").returning(Note.id).cte("taken").c.id
    ),
    "DELETE in a CTE": lambda: select(delete(Note).returning(Note.id).cte("gone").c.id),
    # A loader's criteria are SQL the ORM renders into the statement (confirmation review
    # of issue 16: the shape walk never entered a loader option's strategies).
    "text() in a joinedload's criteria": lambda: select(Team)
    .options(joinedload(Team.notes.and_(text("1 = 1")))),
    "literal_column() in a selectinload's criteria": lambda: select(Team)
    .options(selectinload(Team.notes.and_(literal_column("body") == "x"))),
    "a term that can fail over a subquery's bare column": lambda: select(
        (bare := select(Note.id).subquery()).c.id
    ).where(bare.c.id * 2 > 2),
    "update SET from a Core subquery": lambda: update(Note).where(Note.id == 1)
    .values(body=select(NOTE.c.body).where(NOTE.c.id == 3).scalar_subquery()),
    "CAST to a user-defined type": lambda: select(cast(Note.id, RawType())),
    # SQL a type writes as the statement compiles (second confirmation review of issue 16)
    "a type's column_expression, type_coerce": lambda: select(type_coerce(Note.body, ColumnSql)),
    "a type's column_expression, cast": lambda: select(cast(Note.body, ColumnSql)),
    "a type's bind_expression, bindparam": lambda: select(
        Note.body, bindparam("p", "x", type_=BindSql)
    ),
    "a type's bind_expression, literal": lambda: select(Note.body, literal("x", BindSql)),
    "CAST to a NUMERIC with SQL in its precision": lambda: select(
        cast(Note.id, Numeric(precision=SQL_IN_PRECISION, scale=2))  # type: ignore[arg-type]
    ),
    "CAST to a decorator whose type there has SQL in it": lambda: select(
        cast(Note.id, NumericOnEachDatabase())
    ),
    "a kind the allow-list does not know (lambda_stmt)": lambda: lambda_stmt(
        lambda: select(Note.id)
    ),
    # SQLAlchemy gives the entity of a Core SELECT's only column no criteria here.
    "aggregate filter, no entity in the columns": lambda: select(
        func.count(Note.id).filter(Note.id > 1)
    ),
    # A value tested for truth is converted row by row (MariaDB fails quoting a hidden one).
    "a text column as a condition": lambda: select(Note.id).where(Note.body),
    "a text column coerced to a boolean": lambda: select(Note.id)
    .where(type_coerce(Note.body, Boolean)),
    "a subquery's number compared with a text column": lambda: select(Note.id)
    .where(Note.body == select(Note.team_id).where(Note.id == 1).scalar_subquery()),
    # Look-alikes of the policy's own markers, which an app would have to import to build.
    "a guard the app made": lambda: select(NOTE).where(policy_guard(NOTE.c.id, true())),
    "a user-statement marker the app made": lambda: select(NOTE)
    .options(UserStatement(frozenset({(None, "sh_note")}))),
}


UNSUPPORTED = {
    ("values() as a FROM", "sqlite"),  # no (VALUES ...) AS name (columns)
    ("values() as a FROM", "mariadb"),
    ("aggregate filter", "mariadb"),  # no FILTER (WHERE ...)
    ("lateral subquery", "sqlite"),
    ("lateral subquery", "mariadb"),
    ("tablesample of an aliased entity", "sqlite"),
    ("tablesample of an aliased entity", "mariadb"),
}
"""Shapes a database has no SQL for."""


async def test_legit_shapes_answer_as_row_level_security(world: World) -> None:
    wrong = []
    for name, build in LEGIT.items():
        if (name, world.kind) in UNSUPPORTED:
            continue
        statement = build()
        got, expected = await as_alice(world, statement), await oracle(world, statement)
        if got != expected:
            wrong.append(f"{name}: {got} != {expected}")
    assert not wrong, "\n".join(wrong)


async def test_unfilterable_shapes_are_refused(world: World) -> None:
    ran = {}
    for name, build in REFUSED.items():
        outcome = await as_alice(world, build())
        if outcome != "refused" and not str(outcome).startswith("unsupported"):
            ran[name] = outcome
    assert not ran


async def test_loaded_objects_show_only_readable_relatives(world: World) -> None:
    """Lazy loads (through a link table too) and session.get are filtered like queries."""
    async with world.session() as session:
        team = await session.get(Team, 1)
        assert team is not None and await session.get(Team, 2) is None
        notes = await session.run_sync(lambda _: [n.id for n in team.notes])
        tags = await session.run_sync(lambda _: [t.notes for t in (team.notes[0].tags)])
        assert notes == [1, 2, 4]
        assert [[n.id for n in linked] for linked in tags] == [[1, 4]]


FORGED_REFRESHES: dict[str, Callable[[], Any]] = {
    "Core scalar subquery": lambda: select(
        Note.id, select(TEAM.c.name).where(TEAM.c.id == 2).scalar_subquery()
    ),
    "aliased self-join": lambda: select(Note.id, n2.body).join(n2, n2.id != Note.id),
    "entity only in a join": lambda: select(Note.id)
    .join(Team, Team.id != Note.team_id).where(Team.owner == "bob"),
}


async def test_a_statement_marked_as_a_refresh_is_checked(world: World) -> None:
    """Regression (security review, low): a statement whose private compile options said
    "refresh" skipped the statement check, and SQLAlchemy leaves loader criteria out of a
    refresh, so app code setting the flag read Core tables and aliases unfiltered."""
    leaked = {}
    for name, build in FORGED_REFRESHES.items():
        statement = build()
        statement._compile_options = _ORMCompileState.default_compile_options + {
            "_for_refresh_state": True
        }
        got = await as_alice(world, statement)
        if got != "refused" and got != await oracle(world, build()):
            leaked[name] = got
    assert not leaked


async def test_app_code_cannot_mark_its_statement_internal(world: World) -> None:
    """Regression (security review, medium): ``execution_options(capebase_internal=True)``
    turned the policy off for any statement; only capebase's own token does now."""
    for options in ({"capebase_internal": True}, {"capebase_internal": object()}):
        statement = select(Note.body).execution_options(**options)
        assert await as_alice(world, statement) == await oracle(world, statement)
    async with world.session() as session:
        updated = await session.execute(
            update(Note).values(body="mine").execution_options(capebase_internal=True)
        )
        await session.commit()
    assert updated.rowcount == 2  # type: ignore[attr-defined]  # alice's own two notes


async def test_bulk_statements_change_and_return_only_permitted_rows(world: World) -> None:
    """Subqueries in a bulk statement's WHERE and RETURNING are filtered like SELECTs."""
    hidden_team = select(Team.name).where(Team.id == 2).scalar_subquery()
    async with world.session() as session:
        in_team = select(Note.id).where(Note.team_id == 1)  # 1, 2 and bob's locked 4
        updated = await session.execute(
            update(Note).where(Note.id.in_(in_team)).values(body="edited")
        )
        assert updated.rowcount == 2  # type: ignore[attr-defined]
        gone = await session.execute(delete(Note).where(Note.body == "b-secret"))
        assert gone.rowcount == 0  # type: ignore[attr-defined]
        if world.kind != "mariadb":  # MariaDB has no UPDATE ... RETURNING
            returned = await session.execute(
                update(Note).where(Note.id == 1).values(body="again")
                .returning(Note.id, hidden_team)
            )
            assert returned.all() == [(1, None)]
        await session.commit()
    async with world.cape.get_privileged_session() as session:
        bodies = dict((await session.execute(select(Note.id, Note.body))).all())
    first = "edited" if world.kind == "mariadb" else "again"
    assert bodies == {1: first, 2: "edited", 3: "b-secret", 4: "b-locked", 5: "case"}


async def test_a_rule_may_read_other_tables_in_its_own_subquery(db_url: str) -> None:
    """What a rule reads is the rule's business: a membership table in its subquery is not
    the caller's Core table (a user session reading it directly is refused)."""
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url)
    cape.permission_required(Team, actions=["read"], where=lambda ctx: Team.id.in_(
        select(membership.c.team_id).where(membership.c.user == ctx.id)
    ))
    async with app_client(app):
        async with cape.get_privileged_session() as session:
            session.add_all(Team(id=i, owner=o, name=n) for i, o, n in TEAMS)
            await session.execute(insert(membership).values(team_id=2, user="alice"))
            await session.commit()
        async with cape.get_session(ALICE) as session:
            assert (await session.execute(select(Team.name))).all() == [("bob team",)]
            t2 = aliased(Team)
            pairs = select(Team.id, t2.id).join(t2, t2.id == Team.id)
            assert (await session.execute(pairs)).all() == [(2, 2)]
            with pytest.raises(UnfilterableStatementError):
                await session.execute(select(Team.id, membership.c.user))
