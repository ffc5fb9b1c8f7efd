"""A policy guard covers the FROM reference its anchors name only if its predicate reads that
same reference (``policy.coverage.filtered_by``).

SQLAlchemy adapts a rule's predicate along with its anchors when an entity is aliased; a
predicate left reading the entity's own table (or another alias of it) would filter other rows
than the ones read, so the check refuses such a statement. SQLAlchemy 2.1 adapts every rule
form the suite could reach through the ORM, so these build the guards directly, as the compiler
sees them (mutation testing, issue 17, found this branch untested).

OWASP API Security Top 10 (2023): API1:2023 Broken Object Level Authorization.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import and_, func, select
from sqlalchemy.dialects import sqlite

from capebase import UnfilterableStatementError
from capebase.policy.coverage import user_statement
from capebase.policy.guards import POLICY, policy_guard

from ._shapes import Note, Team

NOTE = Note.__table__
TEAM = Team.__table__
ALIAS = NOTE.alias("n2")
OTHER_ALIAS = NOTE.alias("n3")


def _guard(anchor: Any, predicate: Any) -> policy_guard:
    made = policy_guard(anchor, predicate)
    made.made_by = POLICY
    return made


def _compiles(reference: Any, predicate: Any) -> bool:
    """A self-join of the table (guarded as it should be) and ``reference`` guarded by
    ``predicate``: a predicate reading the table instead of the alias would pass the table's
    filter off as the alias's."""
    statement = (
        select(NOTE.c.id, reference.c.id)
        .where(_guard(NOTE.c.id, NOTE.c.owner == "alice"), _guard(reference.c.id, predicate))
        .options(user_statement([]))
    )
    try:
        statement.compile(dialect=sqlite.dialect())
    except UnfilterableStatementError:
        return False
    return True


@pytest.mark.parametrize(
    ("reference", "predicate", "covered"),
    [
        (ALIAS, ALIAS.c.owner == "alice", True),
        (ALIAS, NOTE.c.owner == "alice", False),
        (ALIAS, func.lower(NOTE.c.owner) == "alice", False),
        (ALIAS, (ALIAS.c.id > 0) & (NOTE.c.owner == "alice"), False),
        (ALIAS, OTHER_ALIAS.c.owner == "alice", False),
        # A rule may read another table in a subquery of its own: not the reference's base.
        (ALIAS, ALIAS.c.team_id.in_(select(TEAM.c.id).where(TEAM.c.owner == "alice")), True),
    ],
    ids=[
        "alias, adapted", "alias, predicate on the table", "alias, the table inside a function",
        "alias, the table in one of two terms", "alias, predicate on another alias",
        "alias, another table in a subquery",
    ],
)
def test_a_guard_covers_only_the_reference_its_predicate_reads(
    reference: Any, predicate: Any, covered: bool
) -> None:
    assert _compiles(reference, predicate) is covered


TEAM_ALIAS = TEAM.alias("t2")


def _joined_compiles(from_: Any, *columns: Any) -> bool:
    statement = select(*columns).select_from(from_).options(user_statement([]))
    try:
        statement.compile(dialect=sqlite.dialect())
    except UnfilterableStatementError:
        return False
    return True


def test_a_guard_in_an_inner_joins_on_filters_both_sides() -> None:
    on = and_(
        ALIAS.c.id == NOTE.c.id,
        _guard(NOTE.c.id, NOTE.c.owner == "alice"),
        _guard(ALIAS.c.id, ALIAS.c.owner == "alice"),
    )
    assert _joined_compiles(NOTE.join(ALIAS, on), NOTE.c.id, ALIAS.c.id)
    # an outer join keeps every row of its left side: a guard in its ON filters the right only
    assert not _joined_compiles(NOTE.outerjoin(ALIAS, on), NOTE.c.id, ALIAS.c.id)


def test_a_guard_reaches_into_a_parenthesised_join() -> None:
    inner = ALIAS.join(TEAM_ALIAS, TEAM_ALIAS.c.id == ALIAS.c.team_id).self_group()
    on = and_(
        ALIAS.c.id == NOTE.c.id,
        _guard(NOTE.c.id, NOTE.c.owner == "alice"),
        _guard(ALIAS.c.id, ALIAS.c.owner == "alice"),
        _guard(TEAM_ALIAS.c.id, TEAM_ALIAS.c.owner == "alice"),
    )
    assert _joined_compiles(NOTE.join(inner, on), NOTE.c.id, ALIAS.c.id, TEAM_ALIAS.c.name)


def test_a_rules_own_subquery_may_read_the_entitys_table() -> None:
    """Only the predicate's own level counts: a subquery of the rule reading the same table
    (notes of teams where the caller has a note) does not void the alias's guard."""
    mine = select(NOTE.c.team_id).where(NOTE.c.owner == "alice").scalar_subquery()
    assert _compiles(ALIAS, ALIAS.c.team_id.in_(mine))
