"""Statements in user sessions: SELECTs filtered, bulk writes restricted, unfilterable SQL refused.

Every SELECT gets the read predicate for every entity it touches (joins, aliases, subqueries,
relationship loads, refreshes); bulk UPDATE/DELETE get the read and update/delete predicates
(UPDATE on both images); bulk INSERT rows, given as parameters or as a VALUES list, are
checked like flushed ones (``enforcement``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Delete, Table, Update, and_, event, insert, literal
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper, ORMExecuteState
from sqlalchemy.sql import elements, selectable, visitors
from sqlalchemy.types import NullType

from .._compat.sqlalchemy import (
    AliasAdaptingCriteria,
    Annotated,
    FromStatement,
    has_multi_values,
    has_post_values_clause,
    has_prefixes,
    multi_values,
    parent_entity,
    plain,
    statement_values,
)
from ..auth.context import AuthContext
from ..auth.fields import server_values
from ..db.sessions import INTERNAL, CapeSyncSession, scope_of
from ..errors import PermissionDeniedError, UnfilterableStatementError
from ..observability.observer import count_denial
from .enforcement import check_image
from .registry import Policy
from .sqlexpr import NO_OPTIONS

_USE_ORM = (
    "Use ORM statements on mapped classes (select(Model), update(Model), ...), or "
    "`async with cape.get_privileged_session()` for SQL the policy cannot see into."
)


def read_criteria(policy: Policy, ctx: AuthContext, models: Iterable[type[Any]]) -> list[Any]:
    """Loader options restricting every occurrence of ``models`` to rows ``ctx`` may read."""
    return [
        AliasAdaptingCriteria(model, policy.sql_filter(model, "read", ctx), include_aliases=True)
        for model in models
    ]


@event.listens_for(CapeSyncSession, "do_orm_execute")
def _filter_statement(state: ORMExecuteState) -> None:
    scope = scope_of(state.session)
    if scope is None or scope.ctx is None or state.execution_options.get(INTERNAL):
        return
    ctx = scope.ctx
    if not state.is_orm_statement:
        raise UnfilterableStatementError(
            "A user session cannot run raw SQL or Core statements on tables: the permission "
            f"policy cannot be applied to them. {_USE_ORM}"
        )
    statement: Any = state.statement
    if not (state.is_relationship_load or state.is_column_load):
        _require_filterable(statement, scope.policy.governed_tables())
    models = _models_in(statement, state.all_mappers)
    if state.is_select:
        statement = statement.options(*read_criteria(scope.policy, ctx, models))
        if state.is_column_load:
            # SQLAlchemy leaves loader criteria out of refreshes (and loads of expired or
            # deferred attributes), but an object can enter a session without being read, e.g.
            # through make_transient_to_detached(); so the refreshed entity is filtered here.
            statement = statement.where(
                *(scope.policy.sql_filter(m.class_, "read", ctx) for m in state.all_mappers)
            )
        state.statement = statement
    elif state.is_update or state.is_delete:
        restricted = _restrict_bulk(state, scope.policy, ctx)
        # What a bulk statement reads (subqueries in its WHERE or SET) is filtered like a
        # SELECT, so it cannot copy or probe rows the caller may not read.
        state.statement = restricted.options(*read_criteria(scope.policy, ctx, models))
    elif state.is_insert:
        _check_bulk_insert(state, scope.policy, ctx)


def _require_filterable(statement: Any, governed: frozenset[Any] = frozenset()) -> None:
    """Raise UnfilterableStatementError if ``statement`` reads anything the policy can't filter:
    SQL text, or a table used as a Core ``Table`` rather than through its mapped class.

    Loader criteria reach a table only where a SELECT names its class, so each SELECT (and
    the UPDATE or DELETE itself) may use a table as Core only if it names the table's class
    too; elsewhere, the class named in another part of the statement does not cover it
    (``union_all(select(Note.x), select(Note.__table__.c.x))``). The association tables of
    the classes the statement names may be read as Core anywhere, unless a rule governs them
    (a link model with rules of its own: ``governed`` holds the governed tables).
    """
    if isinstance(statement, FromStatement):
        raise UnfilterableStatementError(
            f"select(...).from_statement(...) cannot be filtered in a user session. {_USE_ORM}"
        )
    target = _dml_target(statement)
    used: dict[int, set[Any]] = {}  # scope -> the tables it uses as Core
    named: dict[int, set[Any]] = {}  # scope -> the tables of the classes it names
    secondaries: set[Any] = set()
    for element, scope in _walk(statement):
        if isinstance(element, elements.TextClause | selectable.TextualSelect) or (
            isinstance(element, elements.ColumnClause)
            and element.is_literal
            and element.name != "*"
        ):
            raise UnfilterableStatementError(
                f"text() and literal_column() SQL cannot be filtered in a user session. {_USE_ORM}"
            )
        entity = parent_entity(element)
        if entity is not None:
            _require_own_table(entity)
            if target is not None and scope == id(statement) and (
                getattr(entity, "is_aliased_class", False) or entity.mapper is not target
            ):
                # Loader criteria filter an UPDATE's or DELETE's target, not the other
                # entities its WHERE or SET bring in as extra FROMs.
                raise UnfilterableStatementError(
                    "An UPDATE or DELETE in a user session may name only its own table outside "
                    f"subqueries; put other entities in a select(...) subquery. {_USE_ORM}"
                )
            tables = named.setdefault(scope, set())
            if getattr(entity, "is_aliased_class", False):
                # The criteria filter the alias only: it covers no Core use of the table.
                tables.add(plain(entity.selectable))
            else:
                tables.update(entity.mapper.tables)
            secondaries.update(_secondary_tables(entity.mapper))
        if isinstance(element, Annotated):  # ORM attributes and entities
            continue
        if isinstance(element, selectable.TableClause) or (
            # A Core alias (or TABLESAMPLE, LATERAL) of a table is filtered no more than the
            # table itself.
            isinstance(element, selectable.FromClauseAlias)
            and isinstance(element.element, selectable.TableClause)
        ):
            used.setdefault(scope, set()).add(plain(element))
        elif isinstance(element, elements.ColumnClause) and isinstance(
            element.table, selectable.TableClause | selectable.FromClauseAlias
        ):
            used.setdefault(scope, set()).add(element.table)
    refused = {
        table
        for scope, tables in used.items()
        for table in tables - named.get(scope, set()) - (secondaries - governed)
    }
    uncovered = sorted({getattr(t, "name", str(t)) for t in refused})
    if uncovered:
        raise UnfilterableStatementError(
            f"Table(s) {', '.join(uncovered)} are used as Core tables, which a user session "
            f"cannot filter; use their mapped classes instead. {_USE_ORM}"
        )


def _dml_target(statement: Any) -> Mapper[Any] | None:
    """The mapper an ORM UPDATE or DELETE changes, or None for other statements."""
    if not isinstance(statement, Update | Delete):
        return None
    entity = (statement.entity_description or {}).get("entity")
    return None if entity is None else sa_inspect(entity).mapper


def _require_own_table(entity: Any) -> None:
    """Refuse ``aliased(Model, other_table)``: the model's rules would judge another model's
    rows (``adapt_on_names`` maps any table with matching column names)."""
    if not getattr(entity, "is_aliased_class", False):
        return
    base = plain(entity.selectable)
    while isinstance(base, selectable.Alias):
        base = plain(base.element)
    if isinstance(base, selectable.TableClause) and base not in entity.mapper.tables:
        raise UnfilterableStatementError(
            f"aliased({entity.mapper.class_.__name__}, {base.name}) reads another table "
            f"under {entity.mapper.class_.__name__}'s rules. {_USE_ORM}"
        )


def _walk(statement: Any) -> Iterator[tuple[Any, int]]:
    """Every element of ``statement``, like ``visitors.iterate``, except the tables behind
    columns (a column's table is judged from the column, see ``_require_filterable``); each
    with its scope: the id of the innermost SELECT (or the statement) it is part of."""
    stack: list[tuple[Any, int]] = [(statement, id(statement))]
    seen: set[tuple[int, int]] = set()  # a table can be in several SELECTs
    while stack:
        element, scope = stack.pop()
        if (id(element), scope) in seen:
            continue
        seen.add((id(element), scope))
        yield element, scope
        if isinstance(element, elements.ColumnClause):
            continue
        inner = id(element) if isinstance(element, selectable.Select) else scope
        stack.extend((child, inner) for child in element.get_children())


@cache
def _secondary_tables(mapper: Mapper[Any]) -> frozenset[Any]:
    """The association tables of ``mapper``'s relationships."""
    return frozenset(rel.secondary for rel in mapper.relationships if rel.secondary is not None)



def _models_in(statement: Any, mappers: Iterable[Mapper[Any]]) -> set[type[Any]]:
    """Every mapped class a statement can load, including through relationships."""
    found: set[Mapper[Any]] = set(mappers)
    for element in visitors.iterate(statement):
        entity = parent_entity(element)
        if entity is not None:
            found.add(entity.mapper)
    models: set[type[Any]] = set()
    for mapper in found:
        models.update(_reachable(mapper))
    return models


@cache
def _reachable(mapper: Mapper[Any]) -> frozenset[type[Any]]:
    """``mapper``'s class and every class reachable from it through relationships."""
    seen: set[Mapper[Any]] = set()
    todo = [mapper]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(rel.mapper for rel in current.relationships)
    return frozenset(m.class_ for m in seen)


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
    predicate = and_(policy.sql_filter(model, "read", ctx), policy.sql_filter(model, action, ctx))
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
        new_image = _substitute_columns(policy.sql_filter(model, action, ctx), table, assignments)
        if new_image is not None:
            predicate = and_(predicate, new_image)
    return statement.where(predicate)


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
        return value
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
