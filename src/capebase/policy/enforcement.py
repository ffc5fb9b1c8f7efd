"""Enforcement of the policy inside user sessions: filtered statements and checked flushes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, event, inspect, select
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, UOWTransaction, with_loader_criteria
from sqlalchemy.sql import visitors

from ..auth.context import AuthContext
from ..auth.fields import auth_fields
from ..db.sessions import INTERNAL, CapeSyncSession, scope_of
from ..errors import PermissionDeniedError, UnfilterableStatementError
from .registry import Policy
from .sqlexpr import with_row_values


@event.listens_for(CapeSyncSession, "do_orm_execute")
def _filter_statement(state: ORMExecuteState) -> None:
    scope = scope_of(state.session)
    if scope is None or scope.ctx is None or state.execution_options.get(INTERNAL):
        return
    ctx = scope.ctx
    if not state.is_orm_statement:
        raise UnfilterableStatementError(
            "A user session cannot run raw SQL or Core statements on tables: the permission "
            "policy cannot be applied to them. Use ORM statements (select(Model), "
            "update(Model), ...) or `async with cape.get_privileged_session()`."
        )
    if state.is_select:
        if state.is_column_load:
            return  # refreshes attributes of an object this session could already read
        models = _models_in(state.statement, state.all_mappers)
        state.statement = state.statement.options(
            *(
                with_loader_criteria(
                    model, scope.policy.sql_filter(model, "read", ctx), include_aliases=True
                )
                for model in models
            )
        )
    elif state.is_update or state.is_delete:
        state.statement = _restrict_bulk(state, scope.policy, ctx)
    elif state.is_insert:
        _check_bulk_insert(state, scope.policy, ctx)


def _models_in(statement: Any, mappers: Iterable[Mapper[Any]]) -> set[type[Any]]:
    """Every mapped class a statement can load, including through relationships."""
    found: set[Mapper[Any]] = set(mappers)
    for element in visitors.iterate(statement):
        entity = getattr(element, "_annotations", {}).get("parententity")
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
    """Add the update/delete predicate to a bulk statement's WHERE.

    For UPDATE the new image must pass too: each column the statement SETs is replaced, in the
    predicate, by the expression it is set to, so the database checks both images at once.
    """
    statement = state.statement
    model = statement.entity_description["entity"]
    if state.is_executemany:
        raise UnfilterableStatementError(
            f"Bulk UPDATE/DELETE of {model.__name__} by primary key lists cannot be checked in a "
            "user session; load the objects and change them, or use "
            "update(Model).where(...).values(...)."
        )
    action = "update" if state.is_update else "delete"
    predicate = policy.sql_filter(model, action, ctx)
    if action == "update":
        values: Mapping[Any, Any] = getattr(statement, "_values", None) or {}
        new_image = _substitute_columns(predicate, model.__table__, values)
        predicate = and_(predicate, new_image)
    return statement.where(predicate)


def _substitute_columns(
    predicate: ColumnElement[bool], table: Table, values: Mapping[Any, Any]
) -> ColumnElement[bool]:
    by_key = {getattr(col, "key", col): expr for col, expr in values.items()}

    def replace(element: Any) -> Any:
        if isinstance(element, visitors.ExternallyTraversible) and getattr(
            element, "table", None
        ) is table and getattr(element, "key", None) in by_key:
            return by_key[element.key]
        return None

    result: ColumnElement[bool] = visitors.replacement_traverse(predicate, {}, replace)
    return result


def _check_bulk_insert(state: ORMExecuteState, policy: Policy, ctx: AuthContext) -> None:
    statement = state.statement
    model = statement.entity_description["entity"]
    filled = {name: marker.value_from(ctx) for name, marker in auth_fields(model).items()}
    if getattr(statement, "_multi_values", None) or getattr(statement, "select", None) is not None:
        raise UnfilterableStatementError(
            f"INSERT ... VALUES lists and INSERT ... SELECT into {model.__name__} cannot be "
            "checked in a user session; pass the rows as parameters: "
            "session.execute(insert(Model), [{...}, ...])"
        )
    rows: list[dict[str, Any]]
    if isinstance(state.parameters, list):
        rows = [dict(row) for row in state.parameters]
    else:
        fixed = {getattr(col, "key", col): _literal_value(v) for col, v in
                 (getattr(statement, "_values", None) or {}).items()}
        rows = [{**fixed, **dict(state.parameters or {})}]
    for row in rows:
        row.update({k: v for k, v in filled.items() if v is not None})
        _check_image(state.session, policy, model, "create", ctx, row)
    if isinstance(state.parameters, list):
        state.parameters = rows
    elif filled:
        state.parameters = rows[0]


def _literal_value(value: Any) -> Any:
    effective = getattr(value, "effective_value", value)
    if isinstance(effective, ColumnElement):
        raise UnfilterableStatementError(
            "INSERT values computed by SQL expressions cannot be checked in a user session"
        )
    return effective


@event.listens_for(CapeSyncSession, "before_flush")
def _check_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    scope = scope_of(session)
    if scope is None or scope.ctx is None:
        return
    ctx, policy = scope.ctx, scope.policy
    for obj in list(session.new):
        fill_auth_fields(obj, ctx)
        _check_image(session, policy, type(obj), "create", ctx, row_image(obj))
    dirty: dict[type[Any], list[Any]] = {}
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=False):
            dirty.setdefault(type(obj), []).append(obj)
    for model, objects in dirty.items():
        _check_stored(session, policy, model, "update", ctx, objects)
        for obj in objects:
            _check_image(session, policy, model, "update", ctx, row_image(obj))
    deleted: dict[type[Any], list[Any]] = {}
    for obj in session.deleted:
        deleted.setdefault(type(obj), []).append(obj)
    for model, objects in deleted.items():
        _check_stored(session, policy, model, "delete", ctx, objects)


def fill_auth_fields(obj: Any, ctx: AuthContext) -> None:
    """Set ``obj``'s FROM_AUTH_ID / FROM_AUTH_ROLE / from_context fields from ``ctx``.

    The context wins over a value the client sent: a caller cannot create rows in another
    user's name.
    """
    for name, marker in auth_fields(type(obj)).items():
        value = marker.value_from(ctx)
        if value is not None:
            setattr(obj, name, value)


def row_image(obj: Any) -> dict[str, Any]:
    """The current column values of a mapped object, by column key."""
    state = inspect(obj)
    return {attr.key: state.dict.get(attr.key) for attr in state.mapper.column_attrs}


def _check_image(
    session: Session,
    policy: Policy,
    model: type[Any],
    action: str,
    ctx: AuthContext,
    row: Mapping[str, Any],
) -> None:
    """Raise PermissionDeniedError unless ``ctx`` may ``action`` the row image ``row``."""
    verdict = policy.check_row(model, action, ctx, row)
    if verdict is None:
        verdict = check_in_database(session, policy, model, action, ctx, row)
    if not verdict:
        raise PermissionDeniedError(action, model.__name__, is_anonymous=ctx.is_anonymous)


def check_in_database(
    session: Session,
    policy: Policy,
    model: type[Any],
    action: str,
    ctx: AuthContext,
    row: Mapping[str, Any],
) -> bool:
    """Ask the database to evaluate the policy predicate over a row image it does not store."""
    predicate = with_row_values(policy.sql_filter(model, action, ctx), model.__table__, row)
    result = session.execute(
        select(predicate.label("allowed")), execution_options={INTERNAL: True}
    ).scalar()
    return bool(result)


def _check_stored(
    session: Session,
    policy: Policy,
    model: type[Any],
    action: str,
    ctx: AuthContext,
    objects: list[Any],
) -> None:
    """Check the stored rows behind ``objects`` against the predicate, in one query.

    The database, not the object's in-memory history, is the old image: a detached object
    re-attached with made-up values must not be able to pass as its own old image.
    """
    table: Table = model.__table__
    pk_columns = list(table.primary_key.columns)
    idents = []
    for obj in objects:
        identity = inspect(obj).identity
        if identity is None:
            raise PermissionDeniedError(action, model.__name__, is_anonymous=ctx.is_anonymous)
        idents.append(tuple(identity))
    if len(pk_columns) == 1:
        key_filter = pk_columns[0].in_([i[0] for i in idents])
    else:
        from sqlalchemy import tuple_

        key_filter = tuple_(*pk_columns).in_(idents)
    statement = (
        select(*pk_columns)
        .where(key_filter, policy.sql_filter(model, action, ctx))
        .with_for_update()
    )
    allowed = {tuple(row) for row in session.execute(statement, execution_options={INTERNAL: True})}
    if any(ident not in allowed for ident in idents):
        raise PermissionDeniedError(action, model.__name__, is_anonymous=ctx.is_anonymous)
