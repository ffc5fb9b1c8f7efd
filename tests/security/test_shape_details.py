"""The statement allow-list (``policy.shapes``) node by node: each check's exact refusal, the
look-alikes of refused shapes that must pass, and the walk itself (every slot, every node once,
from cold caches). test_statement_shapes.py runs whole shapes against a database; these need
none. Written against the survivors of ``make mutate MUTATE=shapes`` (issue 17).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    and_,
    cast,
    delete,
    extract,
    func,
    insert,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import aliased, joinedload, with_loader_criteria
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, ColumnElement, UnaryExpression
from sqlalchemy.sql.visitors import InternalTraversal

from capebase import CapeBase, UnfilterableStatementError
from capebase.policy import shape_kinds, shapes
from capebase.policy.shapes import require_known_shape
from capebase.testing import app_client
from tests._databases import DbKind

from ._shapes import ALICE, NOTES, TEAMS, Note, RawType, Team, World, open_world

USE_ORM = (
    " Use ORM statements on mapped classes (select(Model), update(Model), ...), or "
    "`async with cape.get_privileged_session()` for SQL the policy cannot see into."
)


class Upper(TypeDecorator[str]):
    """A type of the app's over a SQLAlchemy type: a CAST to it renders VARCHAR."""

    impl = String(10)
    cache_ok = True


class OverRaw(TypeDecorator[str]):
    """A TypeDecorator over a user-defined type: the CAST renders the inner type's text."""

    impl = RawType
    cache_ok = True


OTHER_TABLE = aliased(Team, Note.__table__, adapt_on_names=True)
"""Team's rules over the rows of sh_note."""


def unknown_operator(left: Any, right: Any) -> Any:  # an operator SQLAlchemy does not know
    return left


def text_in_a_dict_slot() -> Any:
    """An UPDATE's SET values are a dict slot: its values are walked too."""
    return update(Note).values(body=text("(SELECT max(body) FROM sh_note)"))


REFUSALS: dict[str, tuple[Callable[[], Any], str]] = {
    "custom operator": (
        lambda: select(Note.id).where(Note.id.op("IN (SELECT id FROM sh_note) OR")(1)),
        "The custom operator 'IN (SELECT id FROM sh_note) OR' is SQL text a user session "
        "cannot check.",
    ),
    "custom operator as a modifier": (
        lambda: select(Note.id).order_by(
            UnaryExpression(Note.id.expression, modifier=operators.custom_op("; DELETE"))
        ),
        "The custom operator '; DELETE' is SQL text a user session cannot check.",
    ),
    "unknown operator": (
        lambda: select(Note.id).where(
            BinaryExpression(Note.id.expression, literal(1), operator=unknown_operator)
        ),
        f"Unknown SQL operator {unknown_operator!r}.",
    ),
    "function off the list": (
        lambda: select(Note.id, func.query_to_xml("SELECT 1", True, False, "")),
        "The SQL function query_to_xml() is not on capebase's list of functions a user "
        "session may call (policy.sql_functions.SAFE_FUNCTIONS).",
    ),
    "listed function in a schema": (
        lambda: select(func.pg_catalog.lower(Note.body)),
        "The SQL function lower() is not on capebase's list of functions a user session may "
        "call (policy.sql_functions.SAFE_FUNCTIONS).",
    ),
    "EXTRACT field": (
        lambda: select(extract("year FROM now()) + (SELECT 1", Note.id)),
        "Extract 'year FROM now()) + (SELECT 1' cannot be checked in a user session.",
    ),
    "collation": (
        lambda: select(Note.body.collate("NOCASE; x")),
        "CollationClause 'NOCASE; x' cannot be checked in a user session.",
    ),
    "ORDER BY a label name": (
        lambda: select(Note.body.label("b")).order_by("b, (SELECT 1)"),
        "textual_label_reference 'b, (SELECT 1)' cannot be checked in a user session.",
    ),
    "CAST to a user-defined type": (
        lambda: select(cast(Note.id, RawType())),
        "CAST to RawType, a user-defined type, cannot be checked in a user session.",
    ),
    "CAST to a TypeDecorator over one": (
        lambda: select(cast(Note.id, OverRaw())),
        "CAST to RawType, a user-defined type, cannot be checked in a user session.",
    ),
    "with_loader_criteria lambda": (
        lambda: select(Note).options(with_loader_criteria(Note, lambda cls: cls.id > 0)),
        "with_loader_criteria() given a lambda cannot be filtered in a user session.",
    ),
    "INSERT in a CTE": (
        lambda: select(insert(Note).values(id=9).returning(Note.id).cte("f").c.id),
        "INSERT inside another statement cannot be checked in a user session; run it as a "
        "statement of its own.",
    ),
    "prefix": (
        lambda: select(Note.id).prefix_with("/* x */"),
        "Select with prefixes cannot be checked in a user session (SQL text the policy cannot "
        "see into).",
    ),
    "dialect option": (
        lambda: delete(Note).where(Note.id == 1).with_dialect_options(mysql_limit=1),
        "Delete with dialect_options cannot be checked in a user session (SQL text the policy "
        "cannot see into).",
    ),
    "text in a SET value": (
        text_in_a_dict_slot,
        "text() SQL cannot be filtered in a user session.",
    ),
    "loader path ending in an alias of another table": (
        lambda: select(Note).options(
            joinedload(Note.team.of_type(aliased(Team, Note.__table__, adapt_on_names=True)))
        ),
        "aliased(Team, sh_note) reads another table under Team's rules.",
    ),
    "text after a shared node": (
        lambda: select(Note.id).where(and_(text("1 = 1"), shared := Note.id > 1, shared)),
        "text() SQL cannot be filtered in a user session.",
    ),
    **{
        f"an alias of another table {where}": (
            build,
            "aliased(Team, sh_note) reads another table under Team's rules.",
        )
        for where, build in {
            "in with_loader_criteria": lambda: select(Note).options(
                with_loader_criteria(OTHER_TABLE, true())
            ),
            "as a SET key": lambda: update(Note).values({OTHER_TABLE.id: 5}),
            "joined": lambda: select(Note.id).join(OTHER_TABLE, true()),
            "in select_from": lambda: select(Note.id).select_from(OTHER_TABLE),
        }.items()
    },
}


def refusal(statement: Any) -> str:
    with pytest.raises(UnfilterableStatementError) as refused:
        require_known_shape(statement)
    return str(refused.value)


def test_each_check_refuses_saying_what() -> None:
    said = {name: refusal(build()) for name, (build, _message) in REFUSALS.items()}
    assert said == {name: message + USE_ORM for name, (_build, message) in REFUSALS.items()}


def mysql_read_its_options() -> Any:
    statement = update(Note).where(Note.id == 1).values(body="x")
    statement.kwargs.get("mysql_limit")  # as MySQL's compiler reads them: fills in defaults
    return statement


PASSES: dict[str, Callable[[], Any]] = {
    "a safe custom operator": lambda: select(Note.id).where(Note.id.op("<>")(1)),
    "EXTRACT of a field": lambda: select(extract("year", Note.id)),
    "a collation name": lambda: select(Note.body.collate("NOCASE")),
    "ORDER BY a label name": lambda: select(Note.body.label("b")).order_by("b"),
    "CAST to a TypeDecorator over a SQLAlchemy type": lambda: select(cast(Note.id, Upper())),
    "an app's with_loader_criteria": lambda: select(Note).options(
        with_loader_criteria(Note, Note.id > 0)
    ),
    "an update whose MySQL options were read": mysql_read_its_options,
    "joinedload of_type an alias": lambda: select(Note).options(
        joinedload(Note.team.of_type(aliased(Team)))
    ),
    "a wildcard under a relationship's loader (a path ending in a token)": lambda: select(
        Note
    ).options(joinedload(Note.team).lazyload("*")),
}


@pytest.mark.parametrize("name", PASSES)
def test_look_alikes_of_refused_shapes_pass(name: str) -> None:
    assert Note.__mapper__ in require_known_shape(PASSES[name]())


def test_the_checks_work_from_cold_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """What to do with each kind's slots is computed once per kind; from an empty cache it is
    the same (mutmut's workers inherit a warm one)."""
    monkeypatch.setattr(shapes, "_PLANS", {})
    test_each_check_refuses_saying_what()
    for build in PASSES.values():
        require_known_shape(build())
    assert shapes._plan(type(select(Note.id))) == shapes._PLANS[type(select(Note.id))]
    slots = {name: action for name, action in shapes._PLANS[type(select(Note.id))]}
    assert (slots["_prefixes"], slots["_raw_columns"]) == ("must be empty", "walk")
    assert "_limit_clause" in slots and "_distinct" not in slots  # a node; a plain value
    assert slots["_compile_state_funcs"] == "ORM functions only"


def test_a_word_check_accepts_one_word_and_nothing_else() -> None:
    """The check of a string rendered as written, built afresh (the allow-list's own were
    built at import): one word passes; SQL, or no string at all, is refused."""
    field = shape_kinds._word("field")
    field(extract("year", Note.id))
    refused = {}
    for name, check, node in (
        ("SQL", field, extract("year FROM x", Note.id)),
        ("no such attribute", shape_kinds._word("no_such_attribute"), extract("year", Note.id)),
    ):
        with pytest.raises(UnfilterableStatementError) as error:
            check(node)
        refused[name] = str(error.value)
    assert refused == {
        "SQL": "Extract 'year FROM x' cannot be checked in a user session." + USE_ORM,
        "no such attribute": "Extract '' cannot be checked in a user session." + USE_ORM,
    }


class Odd(ColumnElement[Any]):
    """A kind with a slot of a traversal kind the allow-list does not know."""

    _traverse_internals: ClassVar[Any] = [
        ("unknown", InternalTraversal.dp_named_ddl_element),
        ("name", InternalTraversal.dp_string),
    ]


def test_a_slot_of_an_unknown_kind_must_be_empty() -> None:
    assert shapes._plan(Odd) == (("unknown", "must be empty"),)


def test_the_slot_sets_name_sqlalchemys_traversal_kinds() -> None:
    assert shape_kinds._slots("string", "boolean") == frozenset(
        {InternalTraversal.dp_string, InternalTraversal.dp_boolean}
    )


@pytest.fixture
async def world(db_url: str, db_kind: DbKind) -> AsyncIterator[World]:
    async with open_world(db_url, db_kind) as opened:
        yield opened


async def test_the_policys_own_predicates_are_not_checked_as_the_callers(world: World) -> None:
    """A rule may call any function (its SQL is the app's, not the caller's): the lazy loads
    that carry the rule's predicate on to a relationship must not be refused for it."""
    # Off SAFE_FUNCTIONS, and there on each database (PostgreSQL has no hex()).
    unlisted = func.md5 if world.kind == "postgresql" else func.hex
    world.cape.permission_required(
        Team, where=lambda _ctx: unlisted(Team.owner) == "", actions=["read"]
    )
    async with world.session() as session:
        notes = (await session.execute(select(Note).order_by(Note.id))).scalars().all()
        teams = await session.run_sync(lambda _: [(n.id, n.team and n.team.name) for n in notes])
    visible = [(i, "alice team" if team == 1 else None) for i, _o, _b, _l, team in NOTES]
    assert teams == [(i, name) for i, name in visible if i not in (3, 5)]


async def test_refusals_name_a_core_table_without_its_schema(world: World) -> None:
    """The refusal names the table as the app wrote it (``sh_team``), schema or not."""
    qualified = Table("sh_team", MetaData(), Column("id", Integer), schema="main")
    async with world.session() as session:
        with pytest.raises(UnfilterableStatementError) as read:
            await session.execute(select(Note.id, qualified.c.id))
        with pytest.raises(UnfilterableStatementError) as updated:
            await session.execute(
                update(Note).where(Note.team_id == qualified.c.id).values(body="x")
            )
    assert str(read.value).startswith("Table sh_team is read without the permission filter")
    assert str(updated.value).startswith(
        "An UPDATE or DELETE in a user session may read only its own table (sh_team is "
    )


async def test_a_rule_over_core_columns_filters_aliases_too(db_url: str) -> None:
    """A rule written with the table's Core columns filters an alias of the entity (a
    self-join, a join from another entity) as it filters the entity: the loader criteria
    adapt them to the alias too."""
    app = FastAPI()
    cape = CapeBase(app=app, db_path=db_url)
    cape.permission_required(Team, owner_field="owner", actions=["read"])
    cape.permission_required(
        Note, where=lambda ctx: Note.__table__.c.owner == ctx.id, actions=["read"]
    )
    alias = aliased(Note)
    async with app_client(app):
        async with cape.get_privileged_session() as session:
            session.add_all(Team(id=i, owner=o, name=n) for i, o, n in TEAMS)
            await session.flush()
            session.add_all(
                Note(id=i, owner=o, body=b, locked=lk, team_id=t) for i, o, b, lk, t in NOTES
            )
            await session.commit()
        async with cape.get_session(ALICE) as session:
            answers = [
                (await session.execute(statement)).all()
                for statement in (
                    select(Note.id).order_by(Note.id),
                    select(alias.id).order_by(alias.id),
                    select(Note.id, alias.id).join(alias, alias.id != Note.id).order_by(Note.id),
                    select(Team.name, alias.id).join(alias, alias.team_id == Team.id)
                    .order_by(alias.id),
                )
            ]
    assert answers == [
        [(1,), (2,)],
        [(1,), (2,)],
        [(1, 2), (2, 1)],
        [("alice team", 1), ("alice team", 2)],
    ]
