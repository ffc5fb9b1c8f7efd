"""Statements in user sessions: SELECTs filtered, bulk writes restricted, unfilterable SQL refused.

Every statement is first checked against the allow-list of ``shapes`` (no SQL text, no unknown
construct). Every SELECT then gets the read predicate for every entity it touches (joins,
aliases, subqueries, relationship loads, refreshes), and ``coverage`` checks, as it compiles,
that each table it reads is filtered where it is read. Bulk UPDATE/DELETE get the read and
update/delete predicates (UPDATE on both images); bulk INSERT rows, given as parameters or as
a VALUES list, are checked like flushed ones (``enforcement``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, insert, literal
from sqlalchemy.orm import Mapper, ORMExecuteState
from sqlalchemy.sql import elements, visitors
from sqlalchemy.types import NullType

from .._compat.sqlalchemy import (
    AliasAdaptingCriteria,
    for_update,
    has_multi_values,
    has_post_values_clause,
    has_prefixes,
    multi_values,
    plain,
    statement_values,
)
from ..db.sessions import is_internal, scope_of
from ..errors import PermissionDeniedError, UnfilterableStatementError
from ..identity.context import AuthContext
from ..identity.fields import server_values
from ..observer import count_denial
from . import fallible_sql  # noqa: F401 (how a fallible term renders)
from .coverage import require_covered, user_statement
from .enforcement import check_image
from .fallible_marks import mark, mark_expression
from .guards import app_expression, guard
from .mapper_sql import require_plain_mappings
from .registry import Policy
from .shape_kinds import USE_ORM
from .shapes import known_shape
from .sqlexpr import NO_OPTIONS


def read_criteria(policy: Policy, ctx: AuthContext, models: Iterable[type[Any]]) -> list[Any]:
    """Loader options restricting every occurrence of ``models`` to rows ``ctx`` may read."""
    return [
        AliasAdaptingCriteria(
            model, guard(model, policy.sql_filter(model, "read", ctx)), include_aliases=True
        )
        for model in models
    ]


def filter_statement(state: ORMExecuteState) -> None:
    scope = scope_of(state.session)
    if scope is None or scope.ctx is None or is_internal(state.execution_options):
        return
    ctx, policy = scope.ctx, scope.policy
    # Relationship loads and refreshes are checked too: the flags that mark them are
    # compile options app code can set on any statement.
    shape = known_shape(state.statement, state.session.get_bind().dialect)
    named = shape.mappers
    if not (state.is_orm_statement or state.is_select):
        raise UnfilterableStatementError(
            "A user session cannot run raw SQL or Core statements that write to tables: the "
            f"permission policy cannot be applied to them. {USE_ORM}"
        )
    if state.execution_options.get("schema_translate_map"):
        raise UnfilterableStatementError(
            "schema_translate_map would have a user session read tables the policy does not "
            f"know under the names of those it does. {USE_ORM}"
        )
    _refuse_lock_probes(state)
    models = _models_in([*named, *state.all_mappers])
    require_plain_mappings(models, state.session.get_bind().dialect)
    options = [user_statement(_free_tables(policy, models)), *read_criteria(policy, ctx, models)]
    if state.is_select:
        statement: Any = (
            mark(state.statement, state.parameters) if shape.may_fail else state.statement
        ).options(*options)
        if state.is_column_load:
            # SQLAlchemy leaves loader criteria out of refreshes (and loads of expired or
            # deferred attributes), but an object can enter a session without being read, e.g.
            # through make_transient_to_detached(); so the refreshed entity is filtered here.
            statement = statement.where(
                *(guard(m.class_, policy.sql_filter(m.class_, "read", ctx))
                  for m in state.all_mappers)
            )
        state.statement = statement
    elif state.is_update or state.is_delete:
        # What a bulk statement reads (subqueries in its WHERE or SET) is filtered like a
        # SELECT, so it cannot copy or probe rows the caller may not read.
        state.statement = mark(_restrict_bulk(state, policy, ctx), state.parameters).options(
            *options
        )
        require_covered(state.statement, state.session.get_bind().dialect)
    elif state.is_insert:
        _check_bulk_insert(state, policy, ctx)
        state.statement = state.statement.options(*options)


def _refuse_lock_probes(state: ORMExecuteState) -> None:
    """MySQL and MariaDB lock the rows an index lookup meets before the WHERE clause (the
    read filter included) drops them: ``FOR UPDATE NOWAIT`` would fail because another user is
    writing a row this caller may not read."""
    lock = for_update(state.statement)
    if lock is None or not lock.nowait:
        return
    if state.session.get_bind().dialect.name == "mysql":
        raise UnfilterableStatementError(
            "with_for_update(nowait=True) cannot be used in a user session on MySQL or MariaDB: "
            "it would fail on rows locked by other users that the caller may not read; use "
            "with_for_update() (which waits), or a privileged session."
        )


@cache
def _secondary_tables(mapper: Mapper[Any]) -> frozenset[Any]:
    """The association tables of ``mapper``'s relationships."""
    return frozenset(rel.secondary for rel in mapper.relationships if rel.secondary is not None)


def _free_tables(policy: Policy, models: Iterable[type[Any]]) -> frozenset[Any]:
    """The association tables that no rule governs, of ``models`` and of the models the
    policy names (and those they reach): read freely, like any plain link table (a link model
    with rules of its own is filtered like any model)."""
    return _free_tables_of(policy, policy.version, frozenset(models))


@lru_cache(maxsize=1024)
def _free_tables_of(
    policy: Policy, _version: int, models: frozenset[type[Any]]
) -> frozenset[Any]:
    named = (m for model in policy.models() for m in _reachable(model.__mapper__))
    secondaries: set[Any] = set()
    for model in {*models, *named}:
        secondaries |= _secondary_tables(model.__mapper__)
    return frozenset(secondaries - policy.governed_tables())


def _models_in(mappers: Iterable[Mapper[Any]]) -> set[type[Any]]:
    """Every mapped class a statement naming ``mappers`` can load, through relationships too."""
    models: set[type[Any]] = set()
    for mapper in mappers:
        models.update(_reachable(mapper))
    return models


@lru_cache(maxsize=1024)
def _reachable(mapper: Mapper[Any]) -> frozenset[type[Any]]:
    """``mapper``'s class and every class a statement naming it can load: its subclasses (a
    polymorphic load, ``with_polymorphic="*"`` or ``selectin_polymorphic``, loads their
    columns too) and every class reachable from these through relationships. Kept until
    SQLAlchemy configures a class mapped since (``forget_reachable``)."""
    seen: set[Mapper[Any]] = set()
    todo = [mapper]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(current.self_and_descendants)
        todo.extend(rel.mapper for rel in current.relationships)
    return frozenset(m.class_ for m in seen)


def forget_reachable() -> None:
    """After SQLAlchemy configures newly mapped classes (a hook, ``hooks.py``): a subclass or
    a relationship mapped since may change what a statement naming a class can load."""
    _reachable.cache_clear()


def _restrict_bulk(state: ORMExecuteState, policy: Policy, ctx: AuthContext) -> Any:
    """Add the read and the update/delete predicates to a bulk statement's WHERE.

    For UPDATE the new image must pass too: each column the statement SETs is replaced, in the
    predicate, by the expression it is set to, so the database checks both images at once.
    """
    statement: Any = state.statement
    model = statement.entity_description["entity"]
    table: Table = model.__table__
    if state.is_executemany:
        raise UnfilterableStatementError(
            f"Bulk UPDATE/DELETE of {model.__name__} by primary key lists cannot be checked in a "
            "user session; load the objects and change them, or use "
            "update(Model).where(...).values(...)."
        )
    action = "update" if state.is_update else "delete"
    # Read is required too, as everywhere else (a row you cannot see, you cannot change). It is
    # put in the WHERE clause itself, not only in loader criteria, so that whatever inspects
    # the statement's WHERE (change capture) sees the rows it really affects.
    predicate: ColumnElement[bool] = guard(
        model, and_(policy.sql_filter(model, "read", ctx), policy.sql_filter(model, action, ctx))
    )
    if action == "update":
        parameters: Mapping[str, Any] = state.parameters or {}  # type: ignore[assignment]
        assignments = {
            _key(col): _set_value(expr, parameters, table.c[_key(col)].type)
            for col, expr in statement_values(statement).items()
        }
        # Execution parameters named after columns are SET values too: update(M).where(...)
        # executed with {"owner": "bob"} sets owner.
        for name, value in parameters.items():
            if name in table.c:
                assignments[name] = literal(value, type_=table.c[name].type)
        _require_independent_sets(model, table, assignments)
        new_image = _substitute_columns(policy.sql_filter(model, action, ctx), table, assignments)
        if new_image is not None:
            predicate = and_(predicate, guard(model, new_image))
    return statement.where(predicate)


def _require_independent_sets(model: Any, table: Table, assignments: Mapping[str, Any]) -> None:
    """Refuse a SET value that reads another column the same UPDATE sets: MySQL and MariaDB
    evaluate SET left to right, each value seeing the new values before it, so the new image
    the check substitutes (from the old row) would not be the row stored."""
    for name, expression in assignments.items():
        read = {
            element.key
            for element in visitors.iterate(expression)
            if isinstance(element, elements.ColumnClause) and plain(element.table) is table
        }
        others = sorted((read & set(assignments)) - {name})
        if others:
            raise UnfilterableStatementError(
                f"An UPDATE of {model.__name__} in a user session sets {name} from "
                f"{', '.join(others)}, which it also sets (MySQL and MariaDB read the new value, "
                "other databases the old one); set them in separate statements."
            )


def _set_value(value: Any, parameters: Mapping[str, Any], column_type: Any) -> Any:
    """A SET value as an expression the WHERE clause may repeat.

    The bind parameter ``.values(owner="bob")`` creates belongs to the SET clause, and SQLAlchemy
    refuses to render it twice; a fresh one with the same value is used instead, of the type
    the SET binds it with: its own, or else (``.values()`` leaves it untyped) the column's.
    """
    if isinstance(value, elements.BindParameter):
        raw = parameters.get(value.key, value.effective_value)
        bound = column_type if isinstance(value.type, NullType) else value.type
        return literal(raw, type_=bound)
    if isinstance(value, elements.ClauseElement):
        return app_expression(mark_expression(value))
    return literal(value)


def _key(column: Any) -> str:
    return column if isinstance(column, str) else str(column.key)


def _substitute_columns(
    predicate: ColumnElement[bool], table: Table, values: Mapping[str, Any]
) -> ColumnElement[bool] | None:
    """``predicate`` over the row as ``values`` leave it; ``None`` if they change nothing in it."""
    substituted = False

    def replace(element: Any, **_kw: Any) -> Any:
        nonlocal substituted
        if (
            isinstance(element, elements.ColumnClause)
            and plain(element.table) is table
            and element.key in values
        ):
            substituted = True
            return values[element.key]
        return None

    result: ColumnElement[bool] = visitors.replacement_traverse(predicate, NO_OPTIONS, replace)
    return result if substituted else None


def _check_bulk_insert(state: ORMExecuteState, policy: Policy, ctx: AuthContext) -> None:
    """Check each row an INSERT statement adds like a flushed object; the auth fields are
    filled from ``ctx``, and a statement naming another value for one is denied."""
    statement: Any = state.statement
    model = statement.entity_description["entity"]
    filled = server_values(model, ctx)
    if statement.select is not None:
        raise UnfilterableStatementError(
            f"INSERT ... SELECT into {model.__name__} cannot be checked in a user session: "
            "read the rows, then insert them as values or parameters"
        )
    if has_post_values_clause(statement):
        raise UnfilterableStatementError(
            f"INSERT ... ON CONFLICT / ON DUPLICATE KEY into {model.__name__} cannot be checked "
            "in a user session (it may update a row the caller may not update); insert, or "
            "load and change the row."
        )
    rows: list[dict[str, Any]]
    parameters: Any = state.parameters
    if has_multi_values(statement):
        # insert(M).values([{...}, ...]): literal rows, run as the parameter list they amount
        # to, so that each is checked and filled like any other.
        if parameters or has_prefixes(statement):
            raise UnfilterableStatementError(
                f"INSERT ... VALUES lists into {model.__name__} with parameters or prefixes "
                "cannot be checked in a user session; pass the rows as parameters: "
                "session.execute(insert(Model), [{...}, ...])"
            )
        rows = [_literal_row(row) for values in multi_values(statement) for row in values]
        options = statement.get_execution_options()
        state.statement = insert(model).execution_options(**options)
        parameters = rows
    elif isinstance(parameters, list):
        rows = [dict(row) for row in parameters]
    else:
        fixed = {_key(col): _literal_value(v) for col, v in statement_values(statement).items()}
        rows = [{**fixed, **dict(parameters or {})}]
    for row in rows:
        for name, value in filled.items():
            if row.get(name) is not None and row[name] != value:
                # A statement's VALUES are the code's own words: rewriting them silently
                # would hide the bug (or the attempt) of writing in another user's name.
                raise count_denial(
                    state.session,
                    PermissionDeniedError("create", model.__name__,
                                          is_anonymous=ctx.is_anonymous),
                )
            row[name] = value
        check_image(state.session, policy, model, "create", ctx, row)
    if isinstance(parameters, list):
        state.parameters = rows
    elif filled:
        # Parameters override the statement's own VALUES, so the filled fields win.
        given = parameters or {}  # None for insert(...).values(...) run without parameters
        state.parameters = {k: v for k, v in rows[0].items() if k in filled or k in given}


def _literal_row(row: Any) -> dict[str, Any]:
    """One row of ``insert(M).values([...])`` by column key, its values plain literals."""
    if not isinstance(row, Mapping):
        raise UnfilterableStatementError(
            "INSERT ... VALUES lists of tuples cannot be checked in a user session; give each "
            "row as a dict of column names"
        )
    return {_key(col): _literal_value(value) for col, value in row.items()}


def _literal_value(value: Any) -> Any:
    effective = getattr(value, "effective_value", value)
    if isinstance(effective, elements.ClauseElement):
        raise UnfilterableStatementError(
            "INSERT values computed by SQL expressions cannot be checked in a user session"
        )
    return effective
