"""SQL that a statement's types write into it, as the statement compiles.

A type can wrap each column it reads (``column_expression``) and each value it binds
(``bind_expression``) in SQL of its own, and a CAST's target type renders its arguments
(``Numeric(precision=...)``) as written; a ``TypeDecorator`` picks the type a database gets
(``load_dialect_impl``) only then. None of it is a node the shape walk can see, so a user
session refuses, at each typed node of its statement, a type that adds SQL, and a CAST target
whose arguments are not plain words and numbers, both as the session's database would compile
them. Types that only convert values in Python (SQLModel's, capebase's own) pass.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from .._compat.sqlalchemy import type_adds_sql
from ..errors import UnfilterableStatementError
from .shape_kinds import USE_ORM

_PLAIN_TEXT = re.compile(r"[\w ]*")
"""What a type's text argument may be when it is written into SQL as is (a collation, a
charset, interval fields): words and spaces."""

_CHECKED: dict[tuple[int, str], tuple[Any, str | None]] = {}
"""Types found safe or not, by identity and dialect (types are few and long-lived)."""


def require_plain_type(type_: Any, dialect: Dialect | None, *, written: bool) -> None:
    """Refuse ``type_`` (of a node of a user session's statement) if it adds SQL on
    ``dialect``; ``written``: it is a CAST's target, whose arguments are written too."""
    key = (id(type_), f"{dialect.name if dialect else ''}/{written}")
    cached = _CHECKED.get(key)
    if cached is None or cached[0] is not type_:
        if len(_CHECKED) > 4096:
            _CHECKED.clear()
        cached = _CHECKED[key] = (type_, _problem(type_, dialect, written=written))
    problem = cached[1]
    if problem is not None:
        raise UnfilterableStatementError(f"{problem}. {USE_ORM}")


def _problem(type_: Any, dialect: Dialect | None, *, written: bool) -> str | None:
    if not isinstance(type_, TypeEngine):
        return None
    for each in _chain(type_, dialect):
        if type_adds_sql(each):
            return (
                f"The type {type(each).__name__} adds SQL of its own to what it reads or binds "
                "(column_expression or bind_expression), which a user session cannot check"
            )
        if written and not isinstance(each, TypeDecorator):  # a decorator writes its impl
            if not type(each).__module__.startswith("sqlalchemy."):
                return (
                    f"CAST to {type(each).__name__}, a user-defined type, cannot be checked in "
                    "a user session"
                )
            for name, value in vars(each).items():
                if not _writes_plainly(value):
                    return (
                        f"CAST to {type(each).__name__} with {name}={value!r}: the type writes "
                        "that into the SQL as it is"
                    )
    return None


def _writes_plainly(value: Any) -> bool:
    """Whether an argument of a type reads as itself in SQL: a number, or words; a subclass of
    either may write anything (its ``__str__``)."""
    if isinstance(value, str):
        return type(value) is str and _PLAIN_TEXT.fullmatch(value) is not None
    if isinstance(value, int | float):
        return type(value) in (int, float, bool)
    return True


def _chain(type_: Any, dialect: Dialect | None, depth: int = 0) -> list[Any]:
    """``type_`` and what it stands for: a decorator's implementation (on ``dialect``, the one
    it picks there), the type a variant or the dialect puts in its place, and theirs."""
    found = [type_]
    if depth == _MAX_DEPTH:
        return found
    if isinstance(type_, TypeDecorator):
        if dialect is not None:
            found += _chain(type_.load_dialect_impl(dialect), dialect, depth + 1)
        found += _chain(type_.impl_instance, dialect, depth + 1)
    elif dialect is not None:
        implementation = type_.dialect_impl(dialect)
        # The dialect's own adaptation of a type is of its class (or a dialect subclass of
        # it); a variant's is another type, followed in turn.
        if isinstance(implementation, TypeDecorator) or not isinstance(
            implementation, type(type_)
        ):
            found += _chain(implementation, dialect, depth + 1)
        else:
            found.append(implementation)
    return found


_MAX_DEPTH = 8
"""Types standing for types followed at most (a cycle is a bug of the type, not a loop here)."""
