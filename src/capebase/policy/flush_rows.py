"""Every row a user session's flush writes is checked as it is written, whatever wrote it.

``enforcement`` checks the session's new, changed and deleted objects before the flush. The
flush then writes more than those: a one-to-many collection append or remove, a many-to-one
set, or a new parent adopting children makes it UPDATE (or INSERT) foreign keys after those
checks, on rows the session never saw as changed; cascades delete orphans. So the mapper's
own ``before_insert`` / ``before_update`` / ``before_delete`` events, which fire for each row
just before its statement, check each write again unless ``before_flush`` checked exactly it.

A many-to-many relationship (``secondary=``, SQLModel's ``link_model=``) writes its
association table with no mapper event at all. Where a rule governs that table (it is a link
model with rules of its own), the write is refused: the app adds and deletes link objects,
whose rules are checked like any other row's. Association tables no rule governs stay free.

A ``post_update=True`` relationship writes its foreign key in a second UPDATE that fires no
mapper event either; a user session refuses to flush a change to one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.orm import InstanceState, Mapper, Session, UOWTransaction
from sqlalchemy.orm.base import PassiveFlag
from sqlalchemy.orm.interfaces import ONETOMANY
from sqlalchemy.sql import Delete, Insert, Update

from .._compat.sqlalchemy import issued_by_mapper
from ..db.sessions import SessionScope, flushing_scope, scope_of
from ..errors import UnfilterableStatementError
from ..identity.context import AuthContext
from .enforcement import (
    CHECKED_KEY,
    Checked,
    check_image,
    check_stored,
    fill_auth_fields,
    new_image,
    refuse_sql_values,
    row_image,
)
from .mapper_sql import require_plain_mappings
from .registry import Policy


class _Writer:
    """The user session flushing ``target``, what it acts as, and what it checked already."""

    def __init__(self, session: Session, scope: SessionScope, ctx: AuthContext) -> None:
        self.session = session
        self.policy: Policy = scope.policy
        self.ctx = ctx
        self.checked: dict[InstanceState[Any], Checked] = session.info.get(CHECKED_KEY, {})


def _writer(target: Any, connection: Connection) -> _Writer | None:
    session = inspect(target).session
    scope = scope_of(session) if session is not None else None
    if session is None or scope is None or scope.ctx is None:
        return None
    # A row whose model before_flush did not see (an object the flush cascaded to): its
    # mapping's SQL is checked too, as the row is written (``mapper_sql``; cached).
    require_plain_mappings([type(target)], connection.dialect)
    return _Writer(session, scope, scope.ctx)


def check_insert(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    writer = _writer(target, connection)
    if writer is None:
        return
    model, state = type(target), inspect(target)
    record = writer.checked.get(state)
    if record is not None and record.action == "create" and record.image == row_image(target):
        return
    fill_auth_fields(target, writer.ctx)
    image = row_image(target)
    refuse_sql_values(model, image)
    check_image(writer.session, writer.policy, model, "create", writer.ctx, image,
                connection.execute)


def check_update(mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    writer = _writer(target, connection)
    if writer is None:
        return
    model, state = type(target), inspect(target)
    if not any(state.attrs[attr.key].history.has_changes() for attr in mapper.column_attrs):
        return  # only relationships changed: this row is not written
    record = writer.checked.get(state)
    if record is not None and record.action == "update" and record.stored is not None:
        stored = record.stored
    else:
        # A row the flush changes though the session did not see it change: its stored row
        # must pass the update rule (and exist: a forged object of a hidden row and of a
        # missing one are denied alike, before any UPDATE could report a row count).
        (stored,) = check_stored(writer.session, writer.policy, model, "update", writer.ctx,
                                 [target], connection.execute)
    image = new_image(target, stored)
    if record is not None and record.action == "update" and record.image == image:
        return
    refuse_sql_values(model, image)
    check_image(writer.session, writer.policy, model, "update", writer.ctx, image,
                connection.execute)


def check_delete(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    writer = _writer(target, connection)
    if writer is None:
        return
    record = writer.checked.get(inspect(target))
    if record is not None and record.action == "delete":
        return
    check_stored(writer.session, writer.policy, type(target), "delete", writer.ctx, [target],
                 connection.execute)


def refuse_post_updates(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    scope = scope_of(session)
    if scope is None or scope.ctx is None:
        return
    for obj in [*session.new, *session.dirty, *session.deleted]:
        state = inspect(obj)
        for rel in state.mapper.relationships:
            if not rel.post_update:
                continue
            history = state.get_history(rel.key, PassiveFlag.PASSIVE_NO_INITIALIZE)
            # Deleting the "one" side of a one-to-many post_update nulls its children's keys.
            if history.added or history.deleted or (
                obj in session.deleted and rel.direction is ONETOMANY
            ):
                raise UnfilterableStatementError(
                    f"{type(obj).__name__}.{rel.key} has post_update=True: the flush would "
                    "write its foreign key in an UPDATE no permission check sees. In a user "
                    "session set the foreign key column itself, or use a privileged session."
                )


def refuse_association_writes(
    _conn: Connection,
    statement: Any,
    _multiparams: Any,
    _params: Any,
    execution_options: Any,
) -> None:
    scope = flushing_scope()
    if scope is None or scope.ctx is None or not isinstance(statement, Insert | Update | Delete):
        return
    table = statement.table
    model = _governing_model(scope.policy, table)
    if model is None or issued_by_mapper(execution_options, model):
        return
    # Refused whatever the rows hold, before the statement runs: the answer is the same for
    # a hidden link row and a missing one.
    through = ", ".join(_relationships_through(model, table)) or "a relationship"
    raise UnfilterableStatementError(
        f"{through} writes {model.__name__} rows (its association table) directly, past "
        f"{model.__name__}'s own rules; a user session refuses that. Add and delete "
        f"{model.__name__} objects instead (session.add({model.__name__}(...)), "
        "session.delete(link)), or use a privileged session."
    )


def _governing_model(policy: Policy, table: Any) -> type[Any] | None:
    """The model some rule names whose table is ``table``, if any."""
    for model in policy.models():
        if getattr(model, "__table__", None) is table:
            return model
    return None


def _relationships_through(model: type[Any], table: Any) -> list[str]:
    """``Class.attribute`` of each relationship whose association table is ``table``."""
    names = []
    for mapper in inspect(model).registry.mappers:
        for rel in mapper.relationships:
            if rel.secondary is table:
                names.append(f"{mapper.class_.__name__}.{rel.key}")
    return sorted(names)
