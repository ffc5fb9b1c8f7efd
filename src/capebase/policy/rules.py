"""A permission rule, and its two compiled forms: a SQL predicate and a row predicate."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Column, ColumnElement, Table, false, inspect, true
from sqlalchemy.sql import elements
from sqlmodel.sql.sqltypes import AutoString

from ..db.mapping import require_plain_columns, require_table
from ..errors import ConfigurationError
from ..identity.context import AuthContext
from .evaluate import NotEvaluable, evaluate
from .sqlexpr import equals, exact_text, one_of

logger = logging.getLogger("capebase.policy")

Action = Literal["create", "read", "update", "delete"]
ACTIONS: tuple[Action, ...] = get_args(Action)

WhereClause = Callable[[AuthContext], ColumnElement[bool]]

_NO_MATCH = object()


@dataclass(frozen=True, eq=False)
class Rule:
    """One ``permission_required`` call: who (``roles``) may do what (``actions``) to which rows.

    The row conditions (owner, context fields, where) are AND-ed; ``roles=None`` means everyone.
    """

    model: type[Any]
    table: Table
    actions: frozenset[Action]
    roles: frozenset[str] | None
    owner_field: str | None
    context_fields: Mapping[str, str]
    where: WhereClause | None
    index: int

    def applies_to(self, ctx: AuthContext) -> bool:
        """Whether this rule speaks for ``ctx``'s role at all."""
        return self.roles is None or ctx.role in self.roles

    def sql(self, ctx: AuthContext) -> ColumnElement[bool]:
        """The SQL predicate rows must satisfy under this rule, for ``ctx``."""
        conditions: list[ColumnElement[bool]] = []
        if self.owner_field is not None:
            owner = self._coerce(self.owner_field, ctx.id)
            if owner is _NO_MATCH:
                return false()
            conditions.append(equals(self._column(self.owner_field), owner))
        for field, key in self.context_fields.items():
            column = self._column(field)
            if key not in ctx.context:
                return false()
            raw = ctx.context[key]
            if isinstance(raw, list | tuple | set | frozenset):
                values = [v for v in (self._coerce(field, r) for r in raw) if v is not _NO_MATCH]
                if not values:
                    return false()
                conditions.append(one_of(column, values))
            else:
                value = self._coerce(field, raw)
                if value is _NO_MATCH:
                    return false()
                conditions.append(equals(column, value))
        if self.where is not None:
            expression = self.where_expression(ctx)
            if expression is None:
                return false()
            conditions.append(exact_text(expression))
        if not conditions:
            return true()
        return conditions[0] if len(conditions) == 1 else _and(conditions)

    def matches(self, ctx: AuthContext, row: Mapping[str, Any]) -> bool | None:
        """Whether ``row`` satisfies this rule for ``ctx``; ``None`` if Python cannot tell:
        a ``where`` it cannot evaluate, or a column the rule reads that ``row`` lacks (a
        change image holds no secret field), which is not judged as NULL."""
        undecided = False
        if self.owner_field is not None:
            owner = self._coerce(self.owner_field, ctx.id)
            if owner is _NO_MATCH:
                return False
            if self.owner_field not in row:
                undecided = True
            elif row[self.owner_field] != owner:
                return False
        for field, key in self.context_fields.items():
            if key not in ctx.context:
                return False
            if field not in row:
                undecided = True
                continue
            raw = ctx.context[key]
            value = row[field]
            if value is None:
                return False
            if isinstance(raw, list | tuple | set | frozenset):
                allowed = [v for v in (self._coerce(field, r) for r in raw) if v is not _NO_MATCH]
                if value not in allowed:
                    return False
            elif value != self._coerce(field, raw):
                return False
        if self.where is not None:
            expression = self.where_expression(ctx)
            if expression is None:
                return False
            try:
                if evaluate(expression, row, self.table) is not True:
                    return False
            except NotEvaluable:
                return None
        return None if undecided else True

    def where_expression(self, ctx: AuthContext) -> ColumnElement[bool] | None:
        """The ``where`` callable's expression for ``ctx``; ``None`` when ``ctx`` lacks a
        context key it reads (the rule then matches nothing, as ``context_fields`` would)."""
        if self.where is None:
            return None
        try:
            expression: Any = self.where(ctx)
        except LookupError as exc:
            logger.debug("%s: no match for %r, missing %s", self.describe(), ctx.id, exc)
            return None
        if isinstance(expression, bool):
            return true() if expression else false()
        if not isinstance(expression, elements.ColumnElement):
            raise ConfigurationError(
                f"{self.describe()}: where= returned {type(expression).__name__}; it must return "
                "a SQLAlchemy boolean expression, e.g. Doc.level <= ctx.context['clearance']"
            )
        return expression

    def _column(self, field: str) -> ColumnElement[Any]:
        """The model's ORM attribute for column ``field``, so that SQLAlchemy can adapt the
        predicate to aliases and eager-load joins of the model."""
        return _orm_columns(self.model)[field]

    def pins(self, ctx: AuthContext) -> list[tuple[str, Any]] | None:
        """Column values one of which every row this rule lets ``ctx`` see must have.

        ``None`` when the rule pins no column (it may match any row); ``[]`` when it can
        match no row at all for ``ctx``. Used to index realtime subscribers.
        """
        if self.owner_field is not None:
            owner = self._coerce(self.owner_field, ctx.id)
            return [] if owner is _NO_MATCH else [(self.owner_field, owner)]
        for field, key in self.context_fields.items():
            if key not in ctx.context:
                return []
            raw = ctx.context[key]
            values = raw if isinstance(raw, list | tuple | set | frozenset) else [raw]
            coerced = [v for v in (self._coerce(field, r) for r in values) if v is not _NO_MATCH]
            return [(field, v) for v in coerced]
        return None

    def _coerce(self, field: str, value: Any) -> Any:
        """``value`` as the column's Python type; context values arrive as text."""
        if value is None:
            return _NO_MATCH
        column: Column[Any] = self.table.c[field]
        if isinstance(column.type, AutoString):
            # SQLModel's ``str`` columns name no Python type (SQLAlchemy's default, ``object``):
            # unchecked, a number reached the database, which compares it its own way.
            python_type: type[Any] = str
        else:
            try:
                python_type = column.type.python_type
            except NotImplementedError:
                return value
        # A value the column's type cannot hold matches no row: passing it on would let the
        # database coerce it its own way (or fail), and the Python predicate could not agree.
        if isinstance(value, bool) != (python_type is bool):
            return _NO_MATCH
        if isinstance(value, python_type):
            return value
        try:
            if python_type is int:
                if isinstance(value, float):
                    return int(value) if value.is_integer() else _NO_MATCH
                return int(value) if isinstance(value, str) else _NO_MATCH
            if python_type is str:
                return str(value) if isinstance(value, int | float | uuid.UUID) else _NO_MATCH
            if python_type is uuid.UUID:
                return uuid.UUID(str(value))
            return _adapter(python_type).validate_python(value)
        except (TypeError, ValueError, ValidationError):
            return _NO_MATCH

    def describe(self) -> str:
        """A one-line account of the rule, for ``explain`` and logs."""
        parts = [f"rule #{self.index} on {self.model.__name__}"]
        parts.append("actions=" + ",".join(sorted(self.actions)))
        parts.append("role=" + ("*" if self.roles is None else ",".join(sorted(self.roles))))
        if self.owner_field:
            parts.append(f"owner_field={self.owner_field}")
        if self.context_fields:
            fields = ",".join(f"{f}<-{k}" for f, k in self.context_fields.items())
            parts.append(f"context_fields={fields}")
        if self.where is not None:
            parts.append("where=" + getattr(self.where, "__name__", "callable"))
        return " ".join(parts)


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}
_ORM_COLUMNS: dict[Any, dict[str, ColumnElement[Any]]] = {}


def _adapter(python_type: type[Any]) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(python_type)
    if adapter is None:
        adapter = _ADAPTERS[python_type] = TypeAdapter(python_type)
    return adapter


def _orm_columns(model: type[Any]) -> dict[str, ColumnElement[Any]]:
    """Column key → the ORM-annotated column of ``model``'s attribute for it."""
    columns = _ORM_COLUMNS.get(model)
    if columns is None:
        mapper = inspect(model)
        columns = {}
        for prop in mapper.column_attrs:
            for column in prop.columns:
                if isinstance(column, Column) and column.table is mapper.local_table:
                    columns[column.key] = getattr(model, prop.key).__clause_element__()
        _ORM_COLUMNS[model] = columns
    return columns


def _and(conditions: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    from sqlalchemy import and_

    return and_(*conditions)


def build_rule(
    model: type[Any],
    *,
    actions: Sequence[str] | str,
    role: str | Sequence[str] | None,
    owner_field: str | None,
    context_fields: Sequence[str] | Mapping[str, str] | None,
    where: WhereClause | None,
    index: int,
) -> Rule:
    """Validate the arguments of ``permission_required`` and build a Rule.

    Raises:
        ConfigurationError: unknown action, field, or a model that is not a table.
    """
    table = require_table(model, "{name} is not a table model")
    require_plain_columns(model, "permission_required on")
    action_list = [actions] if isinstance(actions, str) else list(actions)
    if not action_list:
        raise ConfigurationError("permission_required needs at least one action")
    if "*" in action_list:
        chosen = frozenset(ACTIONS)
    else:
        unknown = [a for a in action_list if a not in ACTIONS]
        if unknown:
            raise ConfigurationError(
                f"Unknown action {unknown[0]!r}; use one of {', '.join(ACTIONS)} or '*'"
            )
        chosen = frozenset(action_list)  # type: ignore[arg-type]  # checked just above
    roles: frozenset[str] | None
    if role is None or role == "*":
        roles = None
    elif isinstance(role, str):
        roles = frozenset([role])
    else:
        roles = None if "*" in role else frozenset(role)
    if context_fields is None:
        mapping: dict[str, str] = {}
    elif isinstance(context_fields, Mapping):
        mapping = dict(context_fields)
    else:
        mapping = {f: f for f in context_fields}
    for field in [owner_field, *mapping]:
        if field is not None and field not in table.c:
            raise ConfigurationError(
                f"{model.__name__} has no column {field!r} "
                f"(columns: {', '.join(c.key for c in table.c)})"
            )
    if where is not None and not callable(where):
        raise ConfigurationError(
            "where= must be a callable taking the AuthContext and returning a SQLAlchemy "
            "boolean expression, e.g. where=lambda ctx: Doc.level <= ctx.context['clearance']"
        )
    return Rule(
        model=model,
        table=table,
        actions=chosen,
        roles=roles,
        owner_field=owner_field,
        context_fields=mapping,
        where=where,
        index=index,
    )
