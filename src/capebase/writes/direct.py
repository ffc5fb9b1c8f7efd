"""The generated create, update and delete as one short transaction on the driver connection.

The ORM session path (flush, capture hooks, refresh) is general; these three routes always do
the same thing: lock or insert one row, check the rules in Python on its images, write it with
``RETURNING``, and add its change-log row in the same transaction. That is two to four
statements and no ORM bookkeeping. The rules and the change-log rows are exactly the session's:
``Policy.check_row`` is the Python form of the same predicate (tests/policy checks they agree),
and ``change_record`` is what session capture writes.

When Python cannot decide a rule (a ``where`` it cannot evaluate) the transaction is rolled back
and ``Undecided`` sends the route to the session path, which asks the database.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from sqlalchemy import Insert, Select, Table, Update, bindparam, delete, insert, select, update

from ..changes.capture import change_record
from ..changes.changelog import changes
from ..db.direct import DirectExecutor, DirectTransaction
from ..db.drivers import Row
from ..db.sessions import ChangeSink
from ..errors import NotFoundError, PermissionDeniedError
from ..identity.context import AuthContext
from ..identity.fields import auth_fields, server_values
from ..policy.referential import (
    Effect,
    denial,
    has_delete_actions,
    key_columns,
    on_delete,
    run_async,
)
from ..policy.sqlexpr import equals
from .conditions import Precondition

if TYPE_CHECKING:
    from ..crud.published import PublishedModel
    from ..policy import Policy

KEY = "capebase_key"
"""The bound parameter of the primary key in prebuilt statements."""


class Undecided(Exception):
    """A rule Python cannot evaluate: the route takes the session path instead."""


class DirectWriter:
    """Create, update and delete of one published model on ``direct``, checked by ``policy``,
    their changes logged for ``sink``."""

    def __init__(
        self, policy: Policy, sink: ChangeSink, published: PublishedModel, direct: DirectExecutor
    ) -> None:
        self.policy = policy
        self.sink = sink
        self.published = published
        self.direct = direct
        table = published.table
        self.columns = tuple(table.c.keys())
        key = bindparam(KEY, type_=published.pk.type)
        self._lock_by_key = direct.prebuilt(
            select(table).where(equals(published.pk, key)).with_for_update()
        )
        self._delete_by_key = direct.prebuilt(delete(table).where(equals(published.pk, key)))
        direct.prebuilt(_LOG_INSERT)
        fields = published.model.model_fields
        self._defaults = {k: _default_maker(fields.get(k)) for k in self.columns}
        self._none_is_value = frozenset(c.key for c in table.c if c.type.should_evaluate_none)
        self._auth_fields = auth_fields(published.model)
        self._insert_defaults = _python_defaults(c.default for c in table.c)
        self._update_defaults = _python_defaults(c.onupdate for c in table.c)
        self._inserts: dict[frozenset[str], Insert] = {}
        self._updates: dict[frozenset[str], Update] = {}

    @staticmethod
    def supports(published: PublishedModel, direct: DirectExecutor | None) -> bool:
        """Whether the direct path can write ``published``'s table: the dialect returns rows
        from INSERT and UPDATE, and every Python-side column default is a value or a function
        of no arguments (one taking SQLAlchemy's execution context needs Core)."""
        if direct is None:
            return False
        dialect = direct.dialect
        if not (dialect.insert_returning and dialect.update_returning):
            return False
        fields = published.model.model_fields
        if any(f.default_factory_takes_validated_data for f in fields.values()):
            return False  # pydantic's factories of the validated data: only the model knows
        defaults: list[Any] = [d for c in published.table.c for d in (c.default, c.onupdate)]
        return all(
            not _is_python_side(d) or d.is_scalar or hasattr(d.arg, "__wrapped__")
            for d in defaults
        )

    async def create(self, ctx: AuthContext, values: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a row from ``values`` (column keys) as ``ctx``; the row as stored."""
        image = self._new_image(values, ctx)
        self._require("create", ctx, image)
        # As the ORM does: None is left out, so column and server defaults apply, except for
        # types that store None as a value of their own (JSON's null).
        stored = {k: v for k, v in image.items() if v is not None or k in self._none_is_value}
        for name, default in self._insert_defaults.items():
            if name not in stored:
                stored[name] = _default_value(default)
        async with self.direct.transaction() as tx:
            rows = await tx.fetch(self._insert(frozenset(stored)), _bound(stored))
            new = self._image(rows[0])
            self._log(tx, ctx, "INSERT", None, new)
        self._notify()
        return new

    def _new_image(self, values: Mapping[str, Any], ctx: AuthContext) -> dict[str, Any]:
        """The row ``Model(**values)`` would insert for ``ctx``: the model's defaults, then
        the auth fields (``fill_auth_fields``), without building an ORM instance."""
        image: dict[str, Any] = {}
        for name, make_default in self._defaults.items():
            image[name] = values[name] if name in values else make_default()
        image.update(server_values(self.published.model, ctx, self._auth_fields))
        return image

    async def update(
        self,
        ctx: AuthContext,
        key: Any,
        changes_: Mapping[str, Any],
        precondition: Precondition | None = None,
    ) -> dict[str, Any]:
        """Apply ``changes_`` to the row ``key`` as ``ctx``, if ``precondition`` holds on
        it; the row as stored."""
        columns = self.published.table.c
        async with self.direct.transaction() as tx:
            old = await self._locked(tx, ctx, key, "update", precondition)
            new = {**old, **{k: v for k, v in changes_.items() if k in columns}}
            if new == old:
                return old  # nothing to write, as a session would flush nothing
            if any(new[k] != old[k] for k in key_columns(self.published.table)):
                raise Undecided  # ON UPDATE actions: the session's flush checks them
            self._require("update", ctx, new)
            changed = {k: v for k, v in new.items() if v != old[k]}
            for name, default in self._update_defaults.items():
                if name not in changed:
                    changed[name] = _default_value(default)
            rows = await tx.fetch(self._update(frozenset(changed)), {**_bound(changed), KEY: key})
            new = self._image(rows[0])
            if new != old:
                self._log(tx, ctx, "UPDATE", old, new)
        self._notify()
        return new

    async def delete(
        self, ctx: AuthContext, key: Any, precondition: Precondition | None = None
    ) -> None:
        """Delete the row ``key`` as ``ctx`` if ``precondition`` holds on it, and what the
        database's ON DELETE actions write with it (each checked as ``ctx``: see
        ``policy.referential``)."""
        table = self.published.table
        async with self.direct.transaction() as tx:
            old = await self._locked(tx, ctx, key, "delete", precondition)
            effects: list[Effect] = []
            if has_delete_actions(table):
                effects = await run_async(on_delete(table, [old]), partial(_fetch, tx))
                denied = denial(self.policy, ctx, effects, _undecided)
                if denied is not None:
                    action, model = denied
                    raise PermissionDeniedError(
                        action, model.__name__, is_anonymous=ctx.is_anonymous
                    )
            tx.execute(self._delete_by_key, {KEY: key})
            self._log(tx, ctx, "DELETE", old, None)
            for effect in effects:
                self._log(tx, ctx, effect.op, effect.old, effect.new, effect.table)
        self._notify()

    async def _locked(
        self,
        tx: DirectTransaction,
        ctx: AuthContext,
        key: Any,
        action: str,
        precondition: Precondition | None,
    ) -> dict[str, Any]:
        """The row ``key``, locked: 404 unless ``ctx`` may read it, 403 unless ``action`` it,
        412 unless ``precondition`` holds on it."""
        p = self.published
        rows = await tx.fetch(self._lock_by_key, {KEY: key})
        old = self._image(rows[0]) if rows else None
        readable = False if old is None else self.policy.check_row(p.model, "read", ctx, old)
        if readable is None:
            raise Undecided
        if not readable or old is None:
            raise NotFoundError(p.name, key)
        self._require(action, ctx, old)
        if precondition is not None:
            precondition(old)
        return old

    def _require(self, action: str, ctx: AuthContext, row: Mapping[str, Any]) -> None:
        p = self.published
        verdict = self.policy.check_row(p.model, action, ctx, row)
        if verdict is None:
            raise Undecided
        if not verdict:
            raise PermissionDeniedError(action, p.name, is_anonymous=ctx.is_anonymous)

    def _log(
        self,
        tx: DirectTransaction,
        ctx: AuthContext,
        op: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        table: Table | None = None,
    ) -> None:
        if not self.sink.capture:
            return
        table = self.published.table if table is None else table
        record = change_record(table, op, old, new, ctx, self.sink.has_handlers(table.name))
        tx.execute(_LOG_INSERT, _bound(record))

    def _notify(self) -> None:
        if self.sink.capture:
            self.sink.notify()

    def _image(self, row: Row) -> dict[str, Any]:
        return dict(zip(self.columns, row, strict=True))

    def _insert(self, keys: frozenset[str]) -> Insert:
        # One statement object per column set: SQLAlchemy memoizes its cache key, so a request
        # only binds values.
        statement = self._inserts.get(keys)
        if statement is None:
            table = self.published.table
            statement = insert(table).values(_parameters(keys))
            statement = statement.returning(*table.c)
            self._inserts[keys] = statement = self.direct.prebuilt(statement)
        return statement

    def _update(self, keys: frozenset[str]) -> Update:
        statement = self._updates.get(keys)
        if statement is None:
            p = self.published
            statement = (
                update(p.table)
                .where(equals(p.pk, bindparam(KEY, type_=p.pk.type)))
                .values(_parameters(keys))
                .returning(*p.table.c)
            )
            self._updates[keys] = statement = self.direct.prebuilt(statement)
        return statement


async def _fetch(tx: DirectTransaction, statement: Select[Any]) -> list[dict[str, Any]]:
    keys = [str(c.key) for c in statement.selected_columns]
    return [dict(zip(keys, row, strict=True)) for row in await tx.fetch(statement)]


def _undecided(_model: type[Any], _action: str, _row: Mapping[str, Any]) -> bool:
    raise Undecided


def _default_maker(field: FieldInfo | None) -> Callable[[], Any]:
    """What the model puts in a field its caller left out: its default factory's value, a
    copy of its default, or None (a required field, or a column with no field)."""
    if field is None or (field.default is PydanticUndefined and field.default_factory is None):
        return lambda: None
    if field.default_factory is not None:
        return cast(Callable[[], Any], field.default_factory)  # `supports` refused the others
    default = field.default
    if isinstance(default, list | dict | set | bytearray):
        return lambda: copy.deepcopy(default)
    return lambda: default


def _is_python_side(default: Any) -> bool:
    """A Column ``default``/``onupdate`` Core computes in Python before the statement runs."""
    return default is not None and (default.is_scalar or default.is_callable)


def _python_defaults(defaults: Iterable[Any]) -> dict[str, Any]:
    return {d.column.key: d for d in defaults if _is_python_side(d)}


def _default_value(default: Any) -> Any:
    # A callable default of no arguments is wrapped by SQLAlchemy to take (and ignore) the
    # execution context; ``supports`` refused the others.
    return default.arg if default.is_scalar else default.arg(None)


def _parameters(keys: frozenset[str]) -> dict[str, Any]:
    # SQLAlchemy reserves a column's own name for its automatic VALUES/SET parameter.
    return {k: bindparam(f"v_{k}") for k in sorted(keys)}


def _bound(values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"v_{k}": v for k, v in values.items()}


_LOG_INSERT = insert(changes).values(
    _parameters(frozenset(c.key for c in changes.c) - {"id", "claimed_by", "claimed_at"})
)
