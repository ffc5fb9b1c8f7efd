"""Which terms of a user session's statement are found able to fail, and wrapped
(``policy.fallible``): every term that can fail, once, and nothing else.

``test_error_oracles`` shows that no error tells of a hidden row, which a check wrapping every
term passes too; on SQLite (where mutation testing runs) most of its failing terms cannot fail
at all. These tests pin the decisions themselves, without a database (issue 17).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import (
    Integer,
    case,
    cast,
    delete,
    exists,
    func,
    literal_column,
    not_,
    select,
    text,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.sql import visitors

from capebase.policy import sqlexpr
from capebase.policy.fallible import can_fail, fallible, is_aggregate
from capebase.policy.fallible_marks import mark, mark_expression

from ._shapes import Note, Tag, Team

CAN_FAIL: dict[str, tuple[Callable[[], Any], bool]] = {
    # comparisons, tests, AND/OR, IN a list cannot fail
    "equality": (lambda: Note.id == 1, False),
    "columns of one type compared": (lambda: Note.id == Note.team_id, False),
    "IS": (lambda: Note.locked.is_(True), False),
    "IN a list": (lambda: Note.id.in_([1, 2]), False),
    # A row value's class is not read element by element (yet): guarded, which is safe and
    # only costs an index (issue 16's fifth review made unknown classes guarded).
    "tuple IN": (lambda: tuple_(Note.id, Note.team_id).in_([(1, 2)]), True),
    "AND": (lambda: (Note.id == 1) & (Note.id == 2), False),
    "NOT of a boolean column": (lambda: ~Note.locked, False),
    "DESC": (lambda: Note.id.desc(), False),
    "NULLS FIRST": (lambda: Note.id.nulls_first(), False),
    "DISTINCT": (lambda: Note.id.distinct(), False),
    "COLLATE": (lambda: Note.body.collate("binary"), False),
    "a column": (lambda: Note.__table__.c.id, False),
    "a type_coerce": (lambda: type_coerce(Note.id, Integer), False),
    "LIKE a pattern of the app's": (lambda: Note.body.like("a%"), False),
    "an aggregate": (lambda: func.count(Note.id), False),
    "an aggregate in capitals": (lambda: func.GROUP_CONCAT(Note.body), False),
    "capebase's exact comparison": (lambda: sqlexpr.exact_equals(Note.body, "a"), False),
    "a term wrapped already": (lambda: fallible(Note.id + 1), False),
    # what can raise or warn
    "text compared with a number (MySQL converts, quoting the text)": (
        lambda: Note.body == Note.id, True,
    ),
    "LIKE a pattern read from a row": (lambda: Note.body.like(Note.owner), True),
    "arithmetic": (lambda: Note.id + 1, True),
    "concatenation": (lambda: Note.body + "x", True),
    "negation": (lambda: -Note.id, True),
    "CAST": (lambda: cast(Note.body, Integer), True),
    "a function": (lambda: func.abs(Note.id), True),
    "a scalar subquery (more than one row is an error)": (
        lambda: select(Tag.id).scalar_subquery(), True,
    ),
    "SQL text": (lambda: text("1"), True),
}


@pytest.mark.parametrize("name", list(CAN_FAIL))
def test_can_fail(name: str) -> None:
    term, expected = CAN_FAIL[name]
    assert can_fail(term()) is expected


def test_aggregates_are_known_by_name_in_any_case() -> None:
    assert is_aggregate(func.GROUP_CONCAT(Note.body))
    assert is_aggregate(func.count())
    assert not is_aggregate(func.abs(Note.id))
    assert not is_aggregate(Note.id)


def _wrapped(statement: Any) -> list[str]:
    """The terms ``mark`` wraps in ``statement``, as SQL, once per wrapper object."""
    found = {id(node): node for node in visitors.iterate(mark(statement))
             if isinstance(node, fallible)}
    return sorted(str(node.term) for node in found.values())


sub = select(Note.id, (Note.id * 2).label("x")).subquery()
bucket = case((Note.id > 1, 1), else_=0)  # a grouping key that cannot fail
key = Note.id + 1
count_where = select(func.count()).where(Note.id - 1 > 0).scalar_subquery()

MARKED: dict[str, tuple[Callable[[], Any], list[str]]] = {
    "WHERE": (lambda: select(Note.id).where(Note.id + 1 > 2), ["sh_note.id + :id_1"]),
    "select list": (lambda: select(Note.id, func.abs(Note.id)), ["abs(sh_note.id)"]),
    "ORDER BY": (lambda: select(Note.id).order_by(-Note.id), ["-sh_note.id"]),
    "ON clause": (
        lambda: select(Note.id).join(Team, Team.id == Note.team_id + 0),
        ["sh_note.team_id + :team_id_1"],
    ),
    "a subquery read through its columns only": (
        lambda: select(sub.c.id), ["sh_note.id * :id_1"],
    ),
    "a subquery in FROM": (
        lambda: select(Note.id).select_from(Note).join(sub, sub.c.id == Note.id),
        ["sh_note.id * :id_1"],
    ),
    "each member of a UNION": (
        lambda: select(Note.id + 1).union(select(Tag.id - 1)),
        ["sh_note.id + :id_1", "sh_tag.id - :id_1"],
    ),
    "inside EXISTS": (
        lambda: select(Team.id).where(exists().where(Note.id / 2 > 1)),
        ["sh_note.id / CAST(:id_1 AS NUMERIC)"],
    ),
    "a scalar subquery, and what it holds": (
        lambda: select(Note.id).where(Note.id == select(Tag.id + 1).scalar_subquery()),
        ["(SELECT (sh_tag.id + :id_1) AS fallible_1 \nFROM sh_tag)", "sh_tag.id + :id_1"],
    ),
    "IN a subquery (any number of rows)": (
        lambda: select(Note.id).where(Note.id.in_(select(Tag.id + 1))),
        ["sh_tag.id + :id_1"],
    ),
    "the left side of IN a subquery": (
        lambda: select(Note.id).where((Note.id + 1).in_(select(Tag.id))),
        ["sh_note.id + :id_1"],
    ),
    "LIMIT's subquery (LIMIT itself runs once)": (
        lambda: select(Tag.id).limit(count_where), ["sh_note.id - :id_1"],
    ),
    "a grouping key, once for every place it is in": (
        lambda: select(key, func.count()).group_by(key).order_by(key), ["sh_note.id + :id_1"],
    ),
    "an aggregate's argument": (
        lambda: select(func.sum(Note.id * 2)), ["sh_note.id * :id_1"],
    ),
    "a key a failing term reads outside the aggregates": (
        lambda: select(Note.team_id + 1, func.count()).group_by(Note.team_id),
        ["sh_note.team_id"],
    ),
    "a key equal to (not the same object as) a term elsewhere": (
        lambda: select(Note.id + 1, func.count()).group_by(Note.id + 1), ["sh_note.id + :id_1"],
    ),
    "a key read by a failing term of the key's own kind": (
        lambda: select(case((Note.locked, bucket + 1), else_=0), func.count())
        .group_by(bucket, Note.locked),
        ["CASE WHEN (sh_note.id > :id_1) THEN :param_1 ELSE :param_2 END"],
    ),
    "grouped keys read plainly": (
        lambda: select(Note.team_id, func.count()).group_by(Note.team_id), [],
    ),
    "a scalar subquery outside the aggregates (its own rows)": (
        lambda: select(select(Tag.id + 1).limit(1).scalar_subquery(), func.count())
        .group_by(Note.team_id),
        ["sh_tag.id + :id_1"],
    ),
    "a window's aggregate argument reading a key": (
        lambda: select(func.sum(Note.team_id + 1).over()).group_by(Note.team_id),
        ["sh_note.team_id"],
    ),
    "a window of a function that is no aggregate": (
        lambda: select(func.abs(Note.team_id).over()).group_by(Note.team_id),
        ["sh_note.team_id"],
    ),
    "a window inside a term that can fail": (
        lambda: select(func.sum(Note.team_id).over() + 1).group_by(Note.team_id),
        ["sh_note.team_id"],
    ),
    "an aggregate inside a window's aggregate": (
        lambda: select(func.sum(func.count(-Note.id)).over()).group_by(Note.team_id),
        ["-sh_note.id"],
    ),
    "a term inside HAVING's aggregate": (
        lambda: select(Note.team_id).group_by(Note.team_id).having(func.max(-Note.id) > 0),
        ["-sh_note.id"],
    ),
    "a grouped window's function argument": (
        lambda: select(func.sum(func.count()).over(order_by=Note.team_id + 1))
        .group_by(Note.team_id),
        ["sh_note.team_id"],
    ),
    # the key is wrapped for this level's rows, the subquery's term for the subquery's rows
    # (issue 17: a grouping key's subqueries were not looked into)
    "a subquery in a grouping key": (
        lambda: select(func.count()).group_by(
            select(Tag.id).where(Tag.id + 1 > 0).limit(1).scalar_subquery() == Note.id
        ),
        ["(SELECT sh_tag.id \nFROM sh_tag \nWHERE (sh_tag.id + :id_1) > :param_1\n LIMIT :param_2)"
         " = sh_note.id", "sh_tag.id + :id_1"],
    ),
    "UPDATE's WHERE": (
        lambda: update(Note).where(Note.id * 2 > 1).values(body="x"), ["sh_note.id * :id_1"],
    ),
    "DELETE's RETURNING": (
        lambda: delete(Note).where(Note.id == 1).returning(Note.id + 1), ["sh_note.id + :id_1"],
    ),
    "nothing that can fail": (
        lambda: select(Note.id, literal_column("1")).where(not_(Note.id == 1)), [],
    ),
}


@pytest.mark.parametrize("name", list(MARKED))
def test_mark_wraps_each_term_that_can_fail(name: str) -> None:
    statement, expected = MARKED[name]
    assert _wrapped(statement()) == expected


def test_a_statement_with_nothing_to_wrap_is_kept_as_it_is() -> None:
    statement = select(Note.id).where(Note.id == 1)
    assert mark(statement) is statement


def test_a_grouping_key_is_one_term_wherever_it_is() -> None:
    marked = mark(select(key, func.count()).group_by(key).order_by(key))
    wrappers = [node for node in visitors.iterate(marked) if isinstance(node, fallible)]
    assert len(wrappers) == 3 and len({id(w) for w in wrappers}) == 1


def test_equal_keys_are_one_term() -> None:
    marked = mark(select(Note.id + 1, func.count()).group_by(Note.id + 1))
    wrappers = [node for node in visitors.iterate(marked) if isinstance(node, fallible)]
    assert len(wrappers) == 2 and len({id(w) for w in wrappers}) == 1


def test_mark_expression_wraps_a_set_value_that_can_fail() -> None:
    assert mark_expression(Note.id) is not None
    plain = Note.id * 1
    assert mark_expression(Note.body) is Note.body
    wrapped = mark_expression(Note.id == plain)
    assert [str(n.term) for n in visitors.iterate(wrapped) if isinstance(n, fallible)] == [
        "sh_note.id * :id_1"
    ]
