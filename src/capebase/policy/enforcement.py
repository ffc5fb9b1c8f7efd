"""Flush checks in user sessions: creates, updates (both images) and deletes, before any SQL.

What this checks is recorded; ``flush_rows`` then checks, as each row is written, every write
the flush makes that was not checked here as it is written (a foreign key a relationship sets
at flush, a child a collection adopts). Statements a session runs are filtered in
``statements``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Table, inspect, select, tuple_
from sqlalchemy.engine import Result
from sqlalchemy.orm import InstanceState, Session, UOWTransaction
from sqlalchemy.sql import ClauseElement, Executable

from ..db.sessions import INTERNAL, scope_of
from ..errors import PermissionDeniedError, UnfilterableStatementError
from ..identity.context import AuthContext
from ..identity.fields import server_values
from ..observer import count_denial
from .mapper_sql import require_plain_mappings
from .registry import Policy
from .sqlexpr import with_row_values

Execute = Callable[[Executable], Result[Any]]
"""Runs one of the checks' own statements, unfiltered: ``session.execute`` with ``INTERNAL``
before the flush, the flush's connection during it."""

CHECKED_KEY = "capebase.checked"
"""``session.info`` key of the writes ``before_flush`` checked: ``{state: Checked}``."""


@dataclass(frozen=True, slots=True)
class Checked:
    """A write ``before_flush`` allowed: the action, the row image checked and, for an update,
    the stored row it was checked against."""

    action: str
    image: Mapping[str, Any] | None = None
    stored: Mapping[str, Any] | None = None


def check_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    scope = scope_of(session)
    if scope is None or scope.ctx is None:
        return
    ctx, policy = scope.ctx, scope.policy
    # The mapping's own SQL (a column type's bind_expression, a default or onupdate given as
    # SQL) is written into the flush's statements, which no statement check sees.
    require_plain_mappings(
        {type(obj) for obj in (*session.new, *session.dirty, *session.deleted)},
        session.get_bind().dialect,
    )
    checked: dict[InstanceState[Any], Checked] = {}
    session.info[CHECKED_KEY] = checked
    for obj in list(session.new):
        fill_auth_fields(obj, ctx)
        image = row_image(obj)
        refuse_sql_values(type(obj), image)
        check_image(session, policy, type(obj), "create", ctx, image)
        checked[inspect(obj)] = Checked("create", image)
    dirty: dict[type[Any], list[Any]] = {}
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=False):
            dirty.setdefault(type(obj), []).append(obj)
    for model, objects in dirty.items():
        stored = check_stored(session, policy, model, "update", ctx, objects)
        for obj, old in zip(objects, stored, strict=True):
            image = new_image(obj, old)
            refuse_sql_values(model, image)
            check_image(session, policy, model, "update", ctx, image)
            checked[inspect(obj)] = Checked("update", image, old)
    deleted: dict[type[Any], list[Any]] = {}
    for obj in session.deleted:
        deleted.setdefault(type(obj), []).append(obj)
    for model, objects in deleted.items():
        check_stored(session, policy, model, "delete", ctx, objects)
        checked.update((inspect(obj), Checked("delete")) for obj in objects)


def refuse_sql_values(model: type[Any], image: Mapping[str, Any]) -> None:
    """An attribute set to a SQL expression (a subquery, ``text()``) runs that SQL in the
    flush's INSERT or UPDATE, which no statement check sees: it could copy any row."""
    for name, value in image.items():
        if isinstance(value, ClauseElement):
            raise UnfilterableStatementError(
                f"{model.__name__}.{name} is set to a SQL expression, which a user session "
                "cannot check; set a value (or use a privileged session)."
            )


def fill_auth_fields(obj: Any, ctx: AuthContext) -> None:
    """Set ``obj``'s FROM_AUTH_ID / FROM_AUTH_ROLE / from_context fields from ``ctx``.

    Whatever the object holds is replaced, also where the context has no value (an anonymous
    caller, a missing context key: the field's default, else None): a caller can neither
    create rows in another user's name nor choose a value the context does not give it.
    """
    for name, value in server_values(type(obj), ctx).items():
        setattr(obj, name, value)


def row_image(obj: Any) -> dict[str, Any]:
    """The current column values of a mapped object, by column key."""
    state = inspect(obj)
    return {attr.key: state.dict.get(attr.key) for attr in state.mapper.column_attrs}


def new_image(obj: Any, stored: Mapping[str, Any]) -> dict[str, Any]:
    """The row an UPDATE of ``obj`` leaves: the stored row with the changed attributes applied.

    Attributes not loaded (expired, deferred) keep their stored value rather than looking NULL.
    """
    state = inspect(obj)
    image = dict(stored)
    for attr in state.mapper.column_attrs:
        history = state.attrs[attr.key].history
        if history.added or history.deleted:
            image[attr.key] = history.added[0] if history.added else None
    return image


def check_image(
    session: Session,
    policy: Policy,
    model: type[Any],
    action: str,
    ctx: AuthContext,
    row: Mapping[str, Any],
    execute: Execute | None = None,
) -> None:
    """Raise PermissionDeniedError unless ``ctx`` may ``action`` the row image ``row``."""
    verdict = policy.check_row(model, action, ctx, row)
    if verdict is None:
        verdict = check_in_database(session, policy, model, action, ctx, row, execute)
    if not verdict:
        raise count_denial(
            session,
            PermissionDeniedError(action, model.__name__, is_anonymous=ctx.is_anonymous),
        )


def check_in_database(
    session: Session,
    policy: Policy,
    model: type[Any],
    action: str,
    ctx: AuthContext,
    row: Mapping[str, Any],
    execute: Execute | None = None,
) -> bool:
    """Ask the database to evaluate the policy predicate over a row image it does not store."""
    predicate = with_row_values(policy.sql_filter(model, action, ctx), model.__table__, row)
    run = execute or _internal(session)
    return bool(run(select(predicate.label("allowed"))).scalar())


def _internal(session: Session) -> Execute:
    return partial(session.execute, execution_options=INTERNAL)


def check_stored(
    session: Session,
    policy: Policy,
    model: type[Any],
    action: str,
    ctx: AuthContext,
    objects: list[Any],
    execute: Execute | None = None,
) -> list[dict[str, Any]]:
    """Check the stored rows behind ``objects`` against the predicate, in one query, and
    return them (by column key, in the order of ``objects``).

    The database, not the object's in-memory history, is the old image: a detached object
    re-attached with made-up values must not be able to pass as its own old image.
    """
    table: Table = model.__table__
    pk_columns = list(table.primary_key.columns)
    idents = []
    for obj in objects:
        identity = inspect(obj).identity
        if identity is None:
            raise count_denial(
                session,
                PermissionDeniedError(action, model.__name__, is_anonymous=ctx.is_anonymous),
            )
        idents.append(tuple(identity))
    if len(pk_columns) == 1:
        key_filter = pk_columns[0].in_([i[0] for i in idents])
    else:
        key_filter = tuple_(*pk_columns).in_(idents)
    statement = (
        select(table).where(key_filter, policy.sql_filter(model, action, ctx)).with_for_update()
    )
    result = (execute or _internal(session))(statement).mappings()
    allowed = {
        tuple(row[c.key] for c in pk_columns): {c.key: row[c.key] for c in table.c}
        for row in result
    }
    if any(ident not in allowed for ident in idents):
        raise count_denial(
            session,
            PermissionDeniedError(action, model.__name__, is_anonymous=ctx.is_anonymous),
        )
    return [allowed[ident] for ident in idents]
