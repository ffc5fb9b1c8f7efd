"""The policy's predicates as they travel in a user session's statement: each wrapped in a
``policy_guard`` naming the FROM reference it filters, so that ``coverage`` can find it in the
compiled statement."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm.exc import UnmappedColumnError
from sqlalchemy.sql import expression
from sqlalchemy.sql.compiler import SQLCompiler

from .._compat.sqlalchemy import InternalTraversal, with_traversed

TRUSTED = "capebase_policy_predicate"
"""Compiler keyword set while a guard's predicate renders: the tables a rule reads (in a
subquery of its own) are the rule's business, not the caller's."""


OPEN_GUARDS = "capebase_open_guards"
"""Compiler keyword: the ids of the guards whose predicate is rendering (a term inside one is
not run under that very guard)."""


class _Token:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<capebase policy>"


POLICY = _Token()
"""Marks what the policy made (``guard``, ``coverage.user_statement``): only what carries this
very object counts as the policy's; a look-alike an app builds is checked like its own SQL.
SQLAlchemy's copies (clones, annotated and adapted versions) keep it."""


class policy_guard(expression.FunctionElement[bool]):
    """``policy_guard(*anchors, predicate)``: renders as ``predicate``; the anchors (one
    column per table of the entity) say which FROM reference it filters."""

    type = Boolean()
    name = "policy_guard"
    # A condition already: SQLite and MySQL must not render it as ``(...) = 1``.
    _is_implicitly_boolean = True
    made_by: _Token | None = None
    # ``made_by`` is in the cache key: a look-alike never shares the policy's compiled form.
    _traverse_internals = with_traversed(
        expression.FunctionElement, ("made_by", InternalTraversal.dp_plain_obj)
    )


def is_policy_guard(element: Any) -> bool:
    """Whether ``element`` is a guard the policy made (see ``POLICY``)."""
    return isinstance(element, policy_guard) and element.__dict__.get("made_by") is POLICY


@compiles(policy_guard)
def _compile_guard(element: policy_guard, compiler: SQLCompiler, **kw: Any) -> str:
    *_anchors, predicate = list(element.clauses)
    kw[TRUSTED] = is_policy_guard(element)
    kw[OPEN_GUARDS] = kw.get(OPEN_GUARDS, frozenset()) | {id(element)}
    return f"({compiler.process(predicate, **kw)})"


class app_expression(expression.FunctionElement[Any]):
    """An expression of the app's inside a guard's predicate (a SET value an UPDATE's new
    image is checked with): checked like any part of the statement, not trusted as the rule."""

    inherit_cache = True
    name = "app_expression"

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.type = value.type


@compiles(app_expression)
def _compile_app_expression(element: app_expression, compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = list(element.clauses)
    kw.pop(TRUSTED, None)
    return f"({compiler.process(value, **kw)})"


def guard(model: type[Any], predicate: ColumnElement[bool]) -> policy_guard:
    """``predicate`` (over ``model``'s columns) marked as the policy's filter of ``model``."""
    mapper = sa_inspect(model)
    anchors = []
    for table in mapper.tables:
        column = next(c for c in table.c if mapper.has_property(_key(mapper, c)))
        anchors.append(getattr(model, _key(mapper, column)))
    element = policy_guard(*anchors, predicate)
    element.made_by = POLICY
    return element


def _key(mapper: Any, column: Any) -> str:
    try:
        return str(mapper.get_property_by_column(column).key)
    except UnmappedColumnError:  # no property to anchor to
        return ""
