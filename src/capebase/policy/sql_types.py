"""SQL that a statement's types write into it, as the statement compiles.

A type can wrap each column it reads (``column_expression``) and each value it binds
(``bind_expression``) in SQL of its own, and a CAST's target type renders its arguments
(``Numeric(precision=...)``) as written; a ``TypeDecorator`` picks the type a database gets
(``load_dialect_impl``) only then. None of it is a node the shape walk can see, so a user
session refuses, at each typed node of its statement, a type that adds SQL, and a CAST target
whose arguments are not plain words and numbers, both as the session's database would compile
them. Types that only convert values in Python (SQLModel's, capebase's own) pass.

A CAST target's arguments pass only as what SQLAlchemy's own types keep: None, exactly a bool,
int or float, exactly a str (or an identifier SQLAlchemy quotes, ``quoted_name``) of words and
spaces, a type (checked in turn, as written: ``ARRAY``'s item type, a tuple's types), and lists,
tuples and mappings of these. Anything else (an object whose ``__str__`` is SQL, a subclass of
int or str) is refused.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import quoted_name
from sqlalchemy.types import Enum, SchemaType, TypeDecorator, TypeEngine

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


_ENUM_BOOKKEEPING = frozenset(
    {"enum_class", "values_callable", "_valid_lookup", "_object_lookup", "_sort_key_function"}
)
"""What an ``Enum`` keeps to convert values in Python (the class, its lookups): never written
into a CAST (a native enum writes its name, the others a VARCHAR of its length; MariaDB skips
the CAST)."""

_SCHEMA_BOOKKEEPING = frozenset({"metadata"})
"""What a type that creates a schema object (``Enum``, ``Boolean``) keeps for that: the
metadata it is created with."""


def _problem(
    type_: Any, dialect: Dialect | None, *, written: bool, depth: int = 0
) -> str | None:
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
                if _cached_by_sqlalchemy(each, name):
                    continue
                if isinstance(each, SchemaType) and name in _SCHEMA_BOOKKEEPING:
                    continue
                if isinstance(each, Enum) and name in _ENUM_BOOKKEEPING:
                    continue
                if isinstance(each, Enum) and name == "enums":
                    # the values: exactly strs, written only as quoted literals (DDL)
                    plain = isinstance(value, list) and all(type(v) is str for v in value)
                    problem = None if plain else "not a list of strs"
                else:
                    problem = _argument_problem(value, dialect, depth)
                if problem is not None:
                    return (
                        f"CAST to {type(each).__name__} with {name}={_shown(value)}: the type "
                        f"writes its arguments into the SQL ({problem})"
                    )
    return None


def _cached_by_sqlalchemy(type_: Any, name: str) -> bool:
    """Whether ``name`` in a type's ``vars()`` is SQLAlchemy's cache of one of its own
    properties (``_type_affinity``, the DDL ``dispatch``), not an argument."""
    descriptor = inspect.getattr_static(type(type_), name, None)
    return hasattr(descriptor, "__get__") and type(descriptor).__module__.startswith(
        "sqlalchemy."
    )


def _argument_problem(value: Any, dialect: Dialect | None, depth: int) -> str | None:
    """Why an argument of a CAST target type may not read as itself in SQL, or None: a
    number, words, or a type whose own arguments are such (an object of another class may
    write anything, its ``__str__``; so may a subclass of int or str)."""
    if value is None or type(value) in (bool, int, float):
        return None
    if type(value) in (str, quoted_name):
        return None if _PLAIN_TEXT.fullmatch(value) is not None else "not words and spaces"
    if depth >= _MAX_DEPTH:
        return "nested too deeply"
    if isinstance(value, TypeEngine):
        return _problem(value, dialect, written=True, depth=depth + 1)
    if type(value) in (list, tuple):
        items: list[Any] = list(value)
    elif type(value) is dict or (
        isinstance(value, Mapping) and type(value).__module__.startswith("sqlalchemy.")
    ):  # SQLAlchemy's immutabledict: a type's variants, by database name
        items = [*value.keys(), *value.values()]
    else:
        return f"a {type(value).__name__}, not a number, words or a type"
    for item in items:
        problem = _argument_problem(item, dialect, depth + 1)
        if problem is not None:
            return problem
    return None


def _shown(value: Any) -> str:
    """``value`` for a message, without calling a representation the app defines."""
    if value is None or type(value) in (bool, int, float, str):
        return repr(value)[:80]
    return f"<{type(value).__name__}>"


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
