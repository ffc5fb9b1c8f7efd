"""Errors and warnings tell nothing of the rows a caller may not read (``policy.fallible``).

A database evaluates a statement's conditions in the order it likes: an app's term can run on
a row before the policy's filter drops it. A term that can fail (an overflow, a bad CAST, a
division by zero, a scalar subquery of several rows, malformed JSON) would then fail, or warn,
because of a hidden row, and the error (often quoting the value) answers a question about it.
Found by the statement-check attack of issue 16 (finding 2), on all three databases.

The oracle, as in ``test_statement_shapes``: a user session's outcome (its rows, or the fact
that it failed) must be the outcome of a privileged session over the rows the caller may read;
a statement the check cannot make safe may be refused instead. Every probe below fails (or
warns) only because of a hidden row's values, so a leak shows as a difference.

OWASP API Security Top 10 (2023): API1:2023 Broken Object Level Authorization (a side
channel that reads objects the caller may not).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    not_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.orm import joinedload

from tests._databases import DbKind

from ._shapes import Note, Tag, Team, World, open_world, outcome

MIN_BIGINT = -(2**63)

# Conditions true on a hidden row only: bob's note 3 ("b-secret", team 2) and note 5 ("case",
# team 2, owner "Alice"); alice reads notes 1, 2 (hers) and 4 (locked), and team 1.
HIDDEN_NOTE = Note.body == "b-secret"
HIDDEN_TEAM = Team.name == "bob team"


def _overflow(condition: Any) -> Any:
    """abs() of the smallest BIGINT where ``condition`` holds: an overflow error there."""
    return func.abs(case((condition, cast(bindparam("low", MIN_BIGINT), BigInteger)), else_=1))


def _bad_cast(condition: Any) -> Any:
    """A CAST of a hidden text to an integer where ``condition`` (``text_column == value``)
    holds (PostgreSQL: an error that quotes it; MariaDB: a warning that does)."""
    return cast(case((condition, condition.left), else_="1"), Integer)


def _bad_json(condition: Any) -> Any:
    return func.json_extract(case((condition, condition.left), else_="{}"), "$.a")


def _two_tags(condition: Any) -> Any:
    """A scalar subquery of two rows (both tags are public) where ``condition`` holds."""
    return (
        select(Tag.id).where(Tag.id >= case((condition, 1), else_=2)).scalar_subquery()
    )


def _divide(condition: Any) -> Any:
    return 10 / case((condition, 0), else_=1)


FAILING = {
    "overflow": _overflow,
    "bad cast": _bad_cast,
    "bad json": _bad_json,
    "scalar subquery of two rows": _two_tags,
    "division by zero": _divide,
}

def _count_where(fail: Callable[[Any], Any]) -> Any:
    return select(func.count()).select_from(Note).where(fail(HIDDEN_NOTE) > 0).scalar_subquery()


derived = select(Note.id, _overflow(HIDDEN_NOTE).label("x")).subquery()
grouped = select(Note.team_id, func.count().label("n")).group_by(Note.team_id)

PROBES: dict[str, Callable[[Callable[[Any], Any]], Any]] = {
    "WHERE term": lambda fail: select(Note.id).where(fail(HIDDEN_NOTE) > 0),
    "WHERE term beside an equality": lambda fail: select(Note.id)
    .where(Note.owner != "nobody", fail(HIDDEN_NOTE) > 0),
    "OR": lambda fail: select(Note.id).where((Note.id < 0) | (fail(HIDDEN_NOTE) > 0)),
    "joined entity's column": lambda fail: select(Note.id)
    .join(Note.team).where(fail(HIDDEN_TEAM) > 0),
    "ON clause": lambda fail: select(Team.id)
    .join(Note, and_(Note.team_id == Team.id, fail(HIDDEN_NOTE) > 0)),
    "outer join ON clause": lambda fail: select(Team.id)
    .outerjoin(Note, and_(Note.team_id == Team.id, fail(HIDDEN_NOTE) > 0)),
    "select list": lambda fail: select(Note.id, fail(HIDDEN_NOTE)),
    "ORDER BY": lambda fail: select(Note.id).order_by(fail(HIDDEN_NOTE)),
    "correlated EXISTS": lambda fail: select(Team.id)
    .where(exists().where(Note.team_id == Team.id, fail(HIDDEN_NOTE) > 0)),
    "subquery's column filtered outside": lambda fail: select(
        (sub := select(Note.id, fail(HIDDEN_NOTE).label("x")).subquery()).c.id
    ).where(sub.c.x > 0),
    "HAVING": lambda fail: select(Note.team_id)
    .group_by(Note.team_id).having(func.max(fail(HIDDEN_NOTE)) > 0),
    "grouped by the failing term": lambda fail: select(
        (term := fail(HIDDEN_NOTE)), func.count()
    ).group_by(term),
    "aggregate argument": lambda fail: select(func.sum(fail(HIDDEN_NOTE))),
    "subquery in a grouping key": lambda fail: select(func.count()).select_from(Team).group_by(
        select(Note.id).where(fail(HIDDEN_NOTE) > 0).limit(1).scalar_subquery()
    ),
    # (alice may update her own notes only; the oracle, privileged, would update others)
    "bulk UPDATE's WHERE": lambda fail: update(Note)
    .where(fail(HIDDEN_NOTE) > 0, Note.owner == "alice").values(body="x"),
    # Clauses evaluated once, and RETURNING (confirmation review of issue 16, finding 1)
    "LIMIT's subquery": lambda fail: select(Tag.id).limit(_count_where(fail)),
    "OFFSET's subquery": lambda fail: select(Tag.id).offset(_count_where(fail)),
    "DELETE ... RETURNING's subquery": lambda fail: delete(Note)
    .where(Note.id == 1).returning(_count_where(fail)),
    "UPDATE ... RETURNING's subquery": lambda fail: update(Note)
    .where(Note.id == 1).values(body="a1").returning(_count_where(fail)),
    # A loader's criteria, which the ORM adds as it compiles (finding 2): refused
    "joinedload criteria": lambda fail: select(Team)
    .options(joinedload(Team.notes.and_(fail(HIDDEN_NOTE) > 0))),
    # Team's rule is one equality, which SQLite and MariaDB propagate into other terms.
    "entity with a one-equality rule": lambda fail: select(Team.id).where(fail(HIDDEN_TEAM) > 0),
    "one-equality rule, term after it": lambda fail: select(Team.id)
    .where(Team.owner == "alice", fail(HIDDEN_TEAM) > 0),
}

# Where a failing term cannot fail on that database, the probe proves nothing there.
CANNOT_FAIL: dict[str, set[DbKind]] = {
    "bad cast": {"sqlite"},  # no error (MariaDB warns, quoting the value: checked below)
    "bad json": {"postgresql"},  # no json_extract (MariaDB: NULL and a warning)
    "division by zero": {"sqlite", "mariadb"},  # NULL
}

SECRETS = ("b-secret", "bob team", "case")
"""Values of hidden rows that must not appear in an error or warning alice sees."""


@pytest.fixture
async def world(db_url: str, db_kind: DbKind) -> AsyncIterator[World]:
    async with open_world(db_url, db_kind) as opened:
        yield opened


async def test_no_error_or_warning_depends_on_a_hidden_row(world: World) -> None:
    ran = 0
    problems: list[str] = []
    for failing_name, fail in FAILING.items():
        if world.kind in CANNOT_FAIL.get(failing_name, set()):
            continue
        for probe_name, probe in PROBES.items():
            statement = probe(fail)
            async with world.session() as session:
                mine, my_warnings = await outcome(session, statement)
            async with world.cape.get_privileged_session() as session:
                # The oracle: the same statement where the hidden rows are not.
                await session.execute(Note.__table__.delete().where(Note.id.in_([3, 5])))
                await session.execute(Team.__table__.delete().where(Team.id == 2))
                expected, _ = await outcome(session, statement)
            ran += 1
            said = repr(mine) + " ".join(my_warnings)
            if mine == "refused":
                continue
            failed = isinstance(mine, tuple) and mine and mine[0] == "failed"
            expected_failed = isinstance(expected, tuple) and expected and expected[0] == "failed"
            if failed != expected_failed or (not failed and mine != expected):
                problems.append(f"{failing_name} / {probe_name}: {mine!r}, expected {expected!r}")
            elif any(secret in said for secret in SECRETS):
                problems.append(f"{failing_name} / {probe_name} quotes a hidden value: {said}")
    assert ran >= 2 * len(PROBES), ran  # every probe ran with at least two failing terms
    assert not problems, "\n".join(problems)


async def test_no_lock_error_depends_on_a_hidden_row(world: World) -> None:
    """MySQL and MariaDB lock the rows an index lookup meets before the read filter drops
    them: NOWAIT would fail while another user writes a hidden row (statement-check attack,
    finding 6). It is refused there; elsewhere it answers as the oracle."""
    statement = select(Note.id).where(Note.id.in_([1, 3])).with_for_update(nowait=True)
    async with world.cape.get_privileged_session() as bob:
        # bob holds a lock on his note 3, which alice cannot read
        await bob.execute(update(Note).where(Note.id == 3).values(body="b-secret 2"))
        async with world.session() as session:
            mine, _ = await outcome(session, statement)
        await bob.rollback()
    if world.kind == "mariadb":
        assert mine == "refused"
    elif world.kind == "postgresql":
        assert mine == [(1,)]  # PostgreSQL locks only the rows it returns
    async with world.session() as session:  # no lock held: the same answer everywhere
        assert await outcome(session, statement.with_for_update()) == ([(1,)], [])


# Regression (review of issue 16, finding 2): a comparison was taken to be unable to fail
# unless both sides were bare columns of different types. MariaDB (strict mode) converts a
# text column compared with a number row by row and, in an UPDATE or DELETE, fails on the
# first text that is not one, quoting it ('Truncated incorrect DECIMAL value: 'b-secret''):
# with alice's note 3 hidden, whether the statement failed and what it said told bob's text.
# In a SELECT the same conversion warns, which asyncmy logs (``outcome`` records the log).
ONE_HIDDEN = and_(Note.id > 2, Note.id < 4)  # bob's note 3: the scan meets that row only
# (A range, not ``id == 3``: MariaDB reads a row found by a constant key while it plans the
# statement, and evaluates the guarded term on it; see the test after these.)


def _alice_updates(*where: Any) -> Any:
    return update(Note).where(ONE_HIDDEN, *where).values(locked=False)


COMPARISONS: dict[str, Callable[[], Any]] = {
    "text column = a number": lambda: _alice_updates(Note.body == 5),
    "text column != a number": lambda: _alice_updates(Note.body != 5),
    "text column < a number": lambda: _alice_updates(Note.body < 5),
    "text column IN numbers": lambda: _alice_updates(Note.body.in_([5, 6])),
    "text column NOT IN numbers": lambda: _alice_updates(Note.body.not_in([5, 6])),
    "text column BETWEEN numbers": lambda: _alice_updates(Note.body.between(1, 2)),
    "number column = a text": lambda: _alice_updates(Note.team_id == "x"),
    "text column = a number column under type_coerce": lambda: _alice_updates(
        Note.body == type_coerce(Note.team_id, String)
    ),
    "text column = a labelled number column": lambda: _alice_updates(
        Note.body == type_coerce(Note.team_id, String).label("t")
    ),
    "text column = a subquery's coerced number column": lambda: _alice_updates(
        Note.body == select(type_coerce(Note.team_id, String).label("t")).subquery().c.t
    ),
    "text column = true": lambda: _alice_updates(Note.body == true()),
    # MariaDB compares a row found by a constant key with a scalar subquery's value while it
    # plans the UPDATE, CASE or not: a subquery compared across classes is refused.
    "text column = a subquery of a number, row by primary key": lambda: update(Note)
    .where(Note.id == 3, Note.body == select(Note.team_id).where(Note.id == 1).scalar_subquery())
    .values(locked=False),
    "text column IS true (coerced)": lambda: _alice_updates(
        type_coerce(Note.body, Boolean).is_(True)
    ),
    "bindparam given a number at execution": lambda: select(Note.id)
    .where(ONE_HIDDEN, Note.body == bindparam("given", type_=String)),
    "DELETE, text column = a number": lambda: delete(Note).where(ONE_HIDDEN, Note.body == 5),
    "SELECT, text column = a number (a warning)": lambda: select(Note.id)
    .where(ONE_HIDDEN, Note.body == 5),
    # A value tested for truth is converted the same way: refused.
    "WHERE a text column": lambda: _alice_updates(Note.body),
    "NOT a text column": lambda: _alice_updates(not_(Note.body)),
    "a text column coerced to a boolean": lambda: _alice_updates(
        type_coerce(Note.body, Boolean)
    ),
    "CASE WHEN a text column": lambda: _alice_updates(
        case((type_coerce(Note.body, Boolean), 1), else_=0) == 1
    ),
}

TRUTH_TESTS = {
    "WHERE a text column", "NOT a text column", "a text column coerced to a boolean",
    "CASE WHEN a text column",
}


async def _outcome_with(session: Any, statement: Any) -> tuple[Any, list[str]]:
    if "given" in {b.key for b in statement._get_embedded_bindparams()}:
        real = session.execute

        async def execute(statement: Any, *_args: Any, **kw: Any) -> Any:
            return await real(statement, {"given": 5}, **kw)

        session.execute = execute
    return await outcome(session, statement)


@pytest.mark.parametrize("name", list(COMPARISONS))
async def test_no_conversion_of_a_hidden_value_fails_or_warns(name: str, world: World) -> None:
    statement = COMPARISONS[name]()
    async with world.session() as session:
        mine, my_warnings = await _outcome_with(session, statement)
    if name in TRUTH_TESTS:
        assert mine == "refused"
        return
    if mine == "refused":
        return  # what the check cannot make safe it may refuse
    async with world.cape.get_privileged_session() as session:
        await session.execute(Note.__table__.delete().where(Note.id.in_([3, 5])))
        expected, _ = await _outcome_with(session, statement)
    failed = isinstance(mine, tuple) and mine[0] == "failed"
    assert failed == (isinstance(expected, tuple) and expected[0] == "failed"), (mine, expected)
    if failed:
        assert mine == expected
    said = repr(mine) + " ".join(my_warnings)
    assert not any(secret in said for secret in SECRETS), said


LEGIT_COMPARISONS: dict[str, Callable[[], Any]] = {
    "number column = a number": lambda: select(Note.id).where(Note.team_id == 1),
    "text column = a text": lambda: select(Note.id).where(Note.body == "a1"),
    "text column IN texts": lambda: select(Note.id).where(Note.body.in_(["a1", "x"])),
    "number column BETWEEN numbers": lambda: select(Note.id).where(Note.id.between(1, 3)),
    "boolean column IS true": lambda: select(Note.id).where(Note.locked.is_(True)),
    "boolean column as a condition": lambda: select(Note.id).where(Note.locked),
    "NOT a boolean column": lambda: select(Note.id).where(not_(Note.locked)),
    "IN a subquery of the same class": lambda: select(Team.id)
    .where(Team.id.in_(select(Note.team_id))),
}


@pytest.mark.parametrize("name", list(LEGIT_COMPARISONS))
async def test_comparisons_of_one_class_run_as_they_are(name: str, world: World) -> None:
    """The near-misses: comparisons of one class stay as written (no CASE: indexes serve
    them), and answer as the oracle."""
    from capebase.policy.fallible import can_fail

    statement = LEGIT_COMPARISONS[name]()
    assert not any(can_fail(c) for c in statement._where_criteria)
    async with world.session() as session:
        mine, _ = await outcome(session, statement)
    async with world.cape.get_privileged_session() as session:
        await session.execute(Note.__table__.delete().where(Note.id.in_([3, 5])))
        await session.execute(Team.__table__.delete().where(Team.id == 2))
        expected, _ = await outcome(session, statement)
    assert mine == expected


@pytest.mark.xfail(
    strict=True,
    reason="not fixed: MariaDB reads a row found by a constant primary key while it plans "
    "a SELECT (here the one reading a bulk UPDATE's rows) and evaluates a guarded term "
    "(CASE WHEN <read filters> THEN term) on it: its warning (logged by asyncmy, not "
    "returned to the caller) quotes the hidden value",
)
async def test_mariadb_const_row_warning(world: World) -> None:
    if world.kind != "mariadb":
        pytest.xfail("MariaDB only")
    # (the bulk UPDATE's own outcome is right: the warning comes from the SELECT ... FOR
    # UPDATE that reads the rows it changes)
    statement = update(Note).where(Note.id == 3, Note.body == 5).values(locked=False)
    async with world.session() as session:
        mine, my_warnings = await outcome(session, statement)
    assert mine == [("rowcount", 0)]
    assert not any("b-secret" in w for w in my_warnings), my_warnings
