"""Change capture inside sessions: the unit of work and bulk ORM statements alike.

Each captured change is written to the change log on the session's own connection, so it
commits or rolls back with the change itself; the hub is woken only after commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, insert, inspect, select
from sqlalchemy.engine import Connection, Result
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from .._compat.sqlalchemy import flush_writes, has_returning
from ..db.sessions import SessionScope, is_internal, scope_of
from ..errors import UnfilterableStatementError
from ..identity.context import AuthContext
from ..identity.request_id import current_client_request_id, current_request_id
from ..identity.secret_fields import without_secrets
from ..policy.cascades import EFFECTS_KEY, EFFECTS_OPTION, target_table
from ..policy.enforcement import row_image
from ..policy.referential import Effect
from .changelog import changes, encode_image, now, pk_fields

_CHANGED = "capebase.changed"


def _capturing(session: Session) -> SessionScope | None:
    scope = scope_of(session)
    if scope is None or scope.sink is None or not scope.sink.capture:
        return None
    return scope


_STORED_BEFORE = "capebase.stored_before"


def remember_stored_rows(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    """The rows updates and deletes are about to change, as stored: the old images. The
    objects' history cannot tell them when an attribute was expired or never loaded."""
    if _capturing(session) is None:
        return
    changing = [o for o in session.dirty if session.is_modified(o, include_collections=False)]
    # Looked up by identity, the key the row is stored under until this flush: an update may
    # change the primary key itself.
    session.info[_STORED_BEFORE] = _stored_rows(
        session.connection(), [(o, inspect(o).identity) for o in [*changing, *session.deleted]]
    )


def capture_unit_of_work(session: Session, flush: UOWTransaction) -> None:
    scope = _capturing(session)
    if scope is None:
        return
    before = session.info.pop(_STORED_BEFORE, {})
    connection = session.connection()
    # Only what this flush wrote: Session.flush(objects) leaves the other changes pending.
    inserted = [o for o in session.new if flush_writes(flush, o)]
    changed = [
        o for o in session.dirty
        if session.is_modified(o, include_collections=False) and flush_writes(flush, o)
    ]
    deleted = [o for o in session.deleted if flush_writes(flush, o)]
    # The new images as stored, too: column defaults, server defaults and onupdate values the
    # database computed are not (or not yet) on the objects.
    after = _stored_rows(connection, [(o, _current_key(o)) for o in [*inserted, *changed]])
    records: list[dict[str, Any]] = []
    for obj in inserted:
        new = after.get(id(obj)) or row_image(obj)
        records.append(_record(scope, _table_of(obj), "INSERT", None, new))
    for obj in changed:
        old = before.get(id(obj)) or _old_image(obj)
        new = after.get(id(obj)) or row_image(obj)
        if old != new:
            records.append(_record(scope, _table_of(obj), "UPDATE", old, new))
    for obj in deleted:
        old = before.get(id(obj)) or _old_image(obj)
        records.append(_record(scope, _table_of(obj), "DELETE", old, None))
    records.extend(_effect_records(scope, session.info.pop(EFFECTS_KEY, ())))
    _write(session, connection, records)


def _effect_records(scope: SessionScope, effects: Iterable[Effect]) -> list[dict[str, Any]]:
    """The change-log rows of what the database's referential actions wrote."""
    return [_record(scope, e.table, e.op, e.old, e.new) for e in effects]


def _current_key(obj: Any) -> tuple[Any, ...]:
    return tuple(inspect(obj).mapper.primary_key_from_instance(obj))


def _stored_rows(
    connection: Connection, objects: Sequence[tuple[Any, tuple[Any, ...] | None]]
) -> dict[int, dict[str, Any]]:
    """The row stored under each object's key (by ``id(obj)``), one query per table."""
    by_table: dict[Table, list[tuple[Any, tuple[Any, ...]]]] = {}
    for obj, key in objects:
        if key is None or any(value is None for value in key):
            continue
        by_table.setdefault(_table_of(obj), []).append((obj, key))
    found: dict[int, dict[str, Any]] = {}
    for table, pairs in by_table.items():
        pk = list(table.primary_key.columns)
        rows = {_key(row, pk): dict(row) for row in _rows_by_key(connection, table,
                                                                  [k for _o, k in pairs])}
        for obj, key in pairs:
            if key in rows:
                found[id(obj)] = rows[key]
    return found


# Registered after the policy's do_orm_execute hook (capebase.policy is imported first), so the
# statement seen here already carries the caller's permission predicate.
def capture_bulk(state: ORMExecuteState) -> Result[Any] | None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return None
    if is_internal(state.execution_options) or not state.is_orm_statement:
        return None
    scope = _capturing(state.session)
    if scope is None:
        return None
    # ORM DML statements (Insert/Update/Delete) all carry these attributes; Executable does not.
    statement: Any = state.statement
    table = target_table(statement)
    connection = state.session.connection()
    if state.is_insert:
        return _capture_bulk_insert(state, scope, table, connection)
    pk = list(table.primary_key.columns)
    if state.is_executemany:
        params: Sequence[Mapping[str, Any]] = state.parameters  # type: ignore[assignment]
        keys = [tuple(p[c.key] for c in pk) for p in params]
        before: Sequence[Mapping[Any, Any]] = _rows_by_key(connection, table, keys)
    else:
        query = select(table)
        if statement.whereclause is not None:
            query = query.where(statement.whereclause)
        before = connection.execute(query.with_for_update()).mappings().all()
    result = state.invoke_statement()
    if state.is_update:
        after = {
            _key(row, pk): dict(row)
            for row in _rows_by_key(connection, table, [_key(row, pk) for row in before])
        }
        records = [
            _record(scope, table, "UPDATE", dict(row), after[_key(row, pk)])
            for row in before
            if _key(row, pk) in after and after[_key(row, pk)] != dict(row)
        ]
    else:
        # The statement may carry filters the plain SELECT above did not (the policy filters
        # its subqueries): only rows that are really gone were deleted.
        remaining = {
            _key(row, pk) for row in _rows_by_key(connection, table, [_key(r, pk) for r in before])
        }
        records = [
            _record(scope, table, "DELETE", dict(row), None)
            for row in before
            if _key(row, pk) not in remaining
        ]
    records.extend(_effect_records(scope, state.local_execution_options.get(EFFECTS_OPTION, ())))
    _write(state.session, connection, records)
    return result


def _capture_bulk_insert(
    state: ORMExecuteState, scope: SessionScope, table: Table, connection: Connection
) -> Result[Any]:
    statement: Any = state.statement
    if has_returning(statement):
        raise UnfilterableStatementError(
            "insert(...).returning(...) is not supported in capebase sessions yet: drop "
            "returning() and read the rows back, or add the objects with session.add_all()"
        )
    result = state.invoke_statement(statement=statement.returning(*table.c))
    frozen = result.freeze()
    records = [_record(scope, table, "INSERT", None, dict(row._mapping)) for row in frozen().all()]
    _write(state.session, connection, records)
    return frozen()


def _rows_by_key(
    connection: Connection, table: Table, keys: Sequence[tuple[Any, ...]]
) -> Sequence[Mapping[Any, Any]]:
    if not keys:
        return []
    pk = list(table.primary_key.columns)
    if len(pk) == 1:
        condition = pk[0].in_([k[0] for k in keys])
    else:
        from sqlalchemy import tuple_

        condition = tuple_(*pk).in_(keys)
    return connection.execute(select(table).where(condition)).mappings().all()


def _key(row: Mapping[str, Any], pk: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(row[c.key] for c in pk)


def _table_of(obj: Any) -> Table:
    table = inspect(obj).mapper.local_table
    assert isinstance(table, Table)
    return table


def _old_image(obj: Any) -> dict[str, Any]:
    """Column values as loaded, before this flush's changes."""
    state = inspect(obj)
    image: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        history = state.attrs[attr.key].history
        if history.deleted:
            image[attr.key] = history.deleted[0]
        elif history.unchanged:
            image[attr.key] = history.unchanged[0]
        else:
            image[attr.key] = state.dict.get(attr.key)
    return image


def _record(
    scope: SessionScope,
    table: Table,
    op: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
) -> dict[str, Any]:
    assert scope.sink is not None
    return change_record(table, op, old, new, scope.ctx, scope.sink.has_handlers(table.name))


def change_record(
    table: Table,
    op: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    ctx: AuthContext | None,
    handlers_pending: bool,
) -> dict[str, Any]:
    """The change-log row of one change to ``table`` by ``ctx`` (``None``: privileged), as
    sessions write it and the generated routes' direct writes too."""
    image = new if new is not None else old
    assert image is not None
    pk_columns = list(table.primary_key.columns)
    pk = (
        image.get(pk_columns[0].key)
        if len(pk_columns) == 1
        else [image.get(c.key) for c in pk_columns]
    )
    return {
        "table_name": table.name,
        "op": op,
        **pk_fields(pk),
        "old": encode_image(without_secrets(table, old)),
        "new": encode_image(without_secrets(table, new)),
        "actor_id": ctx.id if ctx else None,
        "actor_role": ctx.role if ctx else None,
        "created_at": now(),
        "handlers_pending": handlers_pending,
        "request_id": current_request_id(),
        "client_request_id": current_client_request_id(),
    }


def _write(session: Session, connection: Connection, records: list[dict[str, Any]]) -> None:
    records = [r for r in records if r["table_name"] != changes.name]
    if not records:
        return
    connection.execute(insert(changes), records)
    session.info[_CHANGED] = True


def wake_sink(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        scope = scope_of(session)
        if scope is not None and scope.sink is not None:
            scope.sink.notify()


def forget_changes(session: Session) -> None:
    session.info.pop(_CHANGED, None)
