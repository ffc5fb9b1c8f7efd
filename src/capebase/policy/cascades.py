"""Sessions: the rows a delete or key change makes the database write by ON DELETE / ON UPDATE.

Before a session deletes a row (a flushed ``session.delete()`` or a bulk ``delete(Model)``) or
changes a key other rows refer to, ``referential`` works out what the database's own actions
will write. A user session checks each of those rows as the caller (see ``referential.denial``)
and refuses the write if any is denied, a hidden row and a visible one alike. Every session that
records changes passes them to ``changes.capture``, which logs them with the write itself:
``EFFECTS_KEY`` in ``session.info`` for a flush, ``EFFECTS_OPTION`` for a statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from sqlalchemy import Table, inspect, literal, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.orm import InstanceState, Mapper, ORMExecuteState, Session, UOWTransaction
from sqlalchemy.orm.exc import UnmappedColumnError
from sqlalchemy.sql import Select, elements
from sqlalchemy.types import NullType

from .._compat.sqlalchemy import parent_entity, plain, statement_values
from ..db.sessions import SessionScope, is_internal, scope_of
from ..errors import PermissionDeniedError, UnfilterableStatementError
from ..observer import count_denial
from . import statements as _statements  # noqa: F401  its statement filter must run first
from .enforcement import check_in_database
from .referential import (
    Effect,
    Image,
    Key,
    denial,
    has_delete_actions,
    key_columns,
    on_delete,
    on_key_change,
    run,
)

EFFECTS_KEY = "capebase.referential"
"""``session.info`` key of the rows referential actions wrote in the running flush."""

EFFECTS_OPTION = "capebase_referential"
"""Execution option carrying the rows a bulk statement's referential actions write."""

_DELETING = "capebase.deleting"


def _recording(scope: SessionScope) -> bool:
    return scope.sink is not None and scope.sink.capture


def _scope(session: Session | None) -> SessionScope | None:
    """The scope of ``session`` if this hook has work there: checks or the change log."""
    scope = scope_of(session) if session is not None else None
    if scope is None or (scope.ctx is None and not _recording(scope)):
        return None
    return scope


def _fetch(connection: Connection) -> Callable[[Select[Any]], list[Image]]:
    return lambda statement: [dict(r) for r in connection.execute(statement).mappings()]


def _apply(
    session: Session, scope: SessionScope, effects: list[Effect], connection: Connection
) -> None:
    """Refuse ``effects`` the caller may not cause; else keep them for the change log."""
    ctx = scope.ctx
    if ctx is not None and effects:
        policy = scope.policy

        def ask(model: type[Any], action: str, row: Image) -> bool:
            return check_in_database(session, policy, model, action, ctx, row, connection.execute)

        denied = denial(policy, ctx, effects, ask)
        if denied is not None:
            action, model = denied
            raise count_denial(
                session,
                PermissionDeniedError(action, model.__name__, is_anonymous=ctx.is_anonymous),
            )


def start_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    session.info.pop(EFFECTS_KEY, None)
    session.info.pop(_DELETING, None)


def _deleting(session: Session) -> set[Key]:
    """The rows this flush deletes itself: no referential action deletes them."""
    keys = session.info.get(_DELETING)
    if keys is None:
        keys = set()
        for obj in session.deleted:
            state: InstanceState[Any] = inspect(obj)
            if state.identity is not None:
                keys.update((table, tuple(state.identity)) for table in state.mapper.tables)
        session.info[_DELETING] = keys
    return cast(set[Key], keys)


def _stored(connection: Connection, table: Table, identity: tuple[Any, ...]) -> Image | None:
    pk = list(table.primary_key.columns)
    row = connection.execute(
        select(table).where(*(c == v for c, v in zip(pk, identity, strict=True)))
    ).mappings().first()
    return None if row is None else dict(row)


def _flushing(
    target: Any,
) -> tuple[InstanceState[Any], Session, SessionScope, tuple[Any, ...]] | None:
    """``target``'s state, session, session scope and identity, when a session that captures
    or checks is writing a stored row of it."""
    state: InstanceState[Any] = inspect(target)
    session, identity = state.session, state.identity
    scope = _scope(session)
    if scope is None or session is None or identity is None:
        return None
    return state, session, scope, tuple(identity)


def before_delete(mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    tables = [t for t in mapper.tables if isinstance(t, Table) and has_delete_actions(t)]
    flushing = _flushing(target) if tables else None
    if flushing is None:
        return
    _state, session, scope, identity = flushing
    for table in tables:
        row = _stored(connection, table, tuple(identity))
        if row is None:
            continue
        plan = on_delete(table, [row], _deleting(session))
        _keep(session, scope, run(plan, _fetch(connection)), connection)


def before_key_change(mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    tables = [t for t in mapper.tables if isinstance(t, Table) and key_columns(t)]
    flushing = _flushing(target) if tables else None
    if flushing is None:
        return
    state, session, scope, identity = flushing
    for table in tables:
        changed = _changed_values(mapper, state, table)
        if not set(changed) & key_columns(table):
            continue
        old = _stored(connection, table, tuple(identity))
        if old is None:
            continue
        plan = on_key_change(table, [(old, {**old, **changed})])
        _keep(session, scope, run(plan, _fetch(connection)), connection)


def _changed_values(mapper: Mapper[Any], state: InstanceState[Any], table: Table) -> Image:
    """The new values of ``table``'s columns this flush changes, by column key."""
    changed: Image = {}
    for column in table.c:
        try:
            prop = mapper.get_property_by_column(column)
        except UnmappedColumnError:
            continue
        history = state.attrs[prop.key].history
        if history.added:
            changed[column.key] = history.added[0]
    return changed


def _keep(
    session: Session, scope: SessionScope, effects: list[Effect], connection: Connection
) -> None:
    _apply(session, scope, effects, connection)
    if effects and _recording(scope):
        session.info.setdefault(EFFECTS_KEY, []).extend(effects)


def target_table(statement: Any) -> Table:
    """The table an INSERT/UPDATE/DELETE writes: its entity's, or (a Core statement on a
    mapped table whose WHERE names ORM attributes, which SQLAlchemy runs as an ORM
    statement) the table itself."""
    if parent_entity(statement.table) is not None:
        table: Table = statement.entity_description["table"]
        return table
    return cast(Table, plain(statement.table))


# Registered after the statement filter (``statements``) and before change capture, so it sees
# the statement with the caller's predicates and capture sees the effects.
def bulk_referential_actions(state: ORMExecuteState) -> None:
    if not (state.is_delete or state.is_update) or not state.is_orm_statement:
        return
    if is_internal(state.execution_options):
        return
    scope = _scope(state.session)
    if scope is None:
        return
    statement: Any = state.statement
    table = target_table(statement)
    if state.is_delete:
        if has_delete_actions(table):
            _bulk_delete(state, scope, table)
    elif key_columns(table) & _set_columns(state):
        _bulk_key_change(state, scope, table)


def _set_columns(state: ORMExecuteState) -> set[str]:
    statement: Any = state.statement
    names = {c if isinstance(c, str) else str(c.key) for c in statement_values(statement)}
    parameters: Any = state.parameters
    for row in parameters if isinstance(parameters, list) else [parameters or {}]:
        names.update(str(name) for name in row)
    return names


def _bulk_delete(state: ORMExecuteState, scope: SessionScope, table: Table) -> None:
    session, connection = state.session, state.session.connection()
    pk = list(table.primary_key.columns)
    rows = _targets(state, table)
    keys = [tuple(row[c.key] for c in pk) for row in rows]
    # Exactly the rows checked are deleted, whatever a concurrent insert adds meanwhile.
    condition = pk[0].in_([k[0] for k in keys]) if len(pk) == 1 else tuple_(*pk).in_(keys)
    statement: Any = state.statement
    if not state.is_executemany:
        state.statement = statement.where(condition)
    effects = run(on_delete(table, rows), _fetch(connection))
    _apply(session, scope, effects, connection)
    if effects and _recording(scope):
        state.update_execution_options(**{EFFECTS_OPTION: effects})


def _targets(state: ORMExecuteState, table: Table) -> list[Image]:
    """The rows the statement will delete, locked: for a user, through the session, so that
    its read filter applies everywhere (subqueries too) exactly as on the statement."""
    statement: Any = state.statement
    pk = list(table.primary_key.columns)
    connection = state.session.connection()
    if state.is_executemany:
        parameters: list[Mapping[str, Any]] = state.parameters  # type: ignore[assignment]
        keys = [tuple(p[c.key] for c in pk) for p in parameters]
        condition = pk[0].in_([k[0] for k in keys]) if len(pk) == 1 else tuple_(*pk).in_(keys)
        return _fetch(connection)(select(table).where(condition).with_for_update())
    model = statement.entity_description["entity"]
    mapper: Mapper[Any] = inspect(model)
    props = [mapper.get_property_by_column(column) for column in table.c]
    query = select(*(getattr(model, prop.key) for prop in props))
    if statement.whereclause is not None:
        query = query.where(statement.whereclause)
    result = state.session.execute(query.with_for_update(), state.parameters or {})
    return [
        {column.key: value for column, value in zip(table.c, row, strict=True)}
        for row in result
    ]


def _bulk_key_change(state: ORMExecuteState, scope: SessionScope, table: Table) -> None:
    if scope.ctx is not None:
        raise UnfilterableStatementError(
            f"A bulk UPDATE of {table.name} in a user session changes a key other rows refer "
            "to with ON UPDATE actions, which it cannot check; load the objects and change "
            "them, or use a privileged session."
        )
    statement: Any = state.statement
    connection = state.session.connection()
    values = {
        c if isinstance(c, str) else str(c.key): v for c, v in statement_values(statement).items()
    }
    given: Any = state.parameters
    if isinstance(given, Mapping):
        # Execution parameters named after columns are SET values too.
        values.update({k: v for k, v in given.items() if k in table.c})
    pairs: list[tuple[Image, Image]] = []
    if state.is_executemany:
        parameters: list[Mapping[str, Any]] = state.parameters  # type: ignore[assignment]
        pk = list(table.primary_key.columns)
        for row in parameters:
            old = _stored(connection, table, tuple(row[c.key] for c in pk))
            if old is not None:
                pairs.append((old, {**old, **{k: row[k] for k in row if k in table.c}}))
    else:
        # The new values as the database computes them from each old row.
        labels = {name: f"capebase_new_{i}" for i, name in enumerate(values)}
        query = select(table, *(
            _as_expression(values[name], table, name, given).label(labels[name]) for name in values
        ))
        if statement.whereclause is not None:
            query = query.where(statement.whereclause)
        found = connection.execute(query.with_for_update(), state.parameters or {}).mappings()
        for stored in found:
            before = {c.key: stored[c] for c in table.c}
            pairs.append((before, {**before, **{n: stored[labels[n]] for n in values}}))
    effects = run(on_key_change(table, pairs), _fetch(connection))
    if effects and _recording(scope):
        state.update_execution_options(**{EFFECTS_OPTION: effects})


def _as_expression(value: Any, table: Table, name: str, parameters: Any) -> Any:
    column_type = table.c[name].type
    if isinstance(value, elements.BindParameter):
        # ``.values(id=...)`` leaves the parameter untyped; the SELECT needs the column's type.
        raw = (parameters or {}).get(value.key, value.effective_value)
        return literal(raw, type_=column_type if isinstance(value.type, NullType) else value.type)
    if isinstance(value, elements.ClauseElement):
        return value
    return literal(value, type_=column_type)
