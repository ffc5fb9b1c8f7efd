"""Text comparisons that mean on MySQL and MariaDB what they mean in Python and elsewhere.

Their default collations ignore case, accents and trailing spaces; these expressions render
the plain comparison on other databases and a byte-wise one on MySQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import expression
from sqlalchemy.sql.compiler import SQLCompiler


class binary_collated(expression.FunctionElement[str]):
    """A text column compared character by character, case and accents included.

    On MySQL/MariaDB this renders ``CONVERT(col USING utf8mb4) COLLATE utf8mb4_bin``: the default
    collations there make ``LIKE 'a%'`` match ``'Apple'`` and ``'%e'`` match ``'Café'``. Elsewhere
    it is the column itself.
    """

    type = String()
    inherit_cache = True
    name = "binary_collated"


@compiles(binary_collated)
def _compile_collated_default(element: binary_collated, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    return compiler.process(column, **kw)


@compiles(binary_collated, "mysql")
def _compile_collated_mysql(element: binary_collated, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    return f"CONVERT({compiler.process(column, **kw)} USING utf8mb4) COLLATE utf8mb4_bin"


class code_point_ordered(expression.FunctionElement[str]):
    """A text column ordered and compared (``<``, ``>``) by code point.

    On MySQL/MariaDB this renders ``CAST(col AS BINARY)`` (UTF-8 bytes sort in code point
    order): their default collations ignore case and trailing spaces, so ``'B' > 'a'`` and
    ``'a ' > 'a'`` would be false there and true in Python. Elsewhere it is the column itself
    (SQLite compares code points; PostgreSQL uses the database's collation, code points under
    ``C`` or ``C.UTF-8``). The cast leaves no index for MySQL to sort or range-scan with.
    """

    type = String()
    inherit_cache = True
    name = "code_point_ordered"


@compiles(code_point_ordered)
def _compile_ordered_default(
    element: code_point_ordered, compiler: SQLCompiler, **kw: Any
) -> str:
    (column,) = list(element.clauses)
    return compiler.process(column, **kw)


@compiles(code_point_ordered, "mysql")
def _compile_ordered_mysql(element: code_point_ordered, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    return f"CAST({compiler.process(column, **kw)} AS BINARY)"


class strict_text(expression.FunctionElement[bool]):
    """``strict_text(plain, strict)``: ``plain`` where text comparison is exact already, and
    ``(plain AND strict)`` on MySQL, where ``strict`` is the same test on ``binary_collated``
    text; ``plain`` keeps an index usable for prefix matches."""

    type = Boolean()
    inherit_cache = True
    name = "strict_text"
    # Already a condition: SQLite and MySQL must not render it as ``(...) = 1``.
    _is_implicitly_boolean = True


@compiles(strict_text)
def _compile_strict_default(element: strict_text, compiler: SQLCompiler, **kw: Any) -> str:
    plain, _strict = list(element.clauses)
    return f"({compiler.process(plain, **kw)})"


@compiles(strict_text, "mysql")
def _compile_strict_mysql(element: strict_text, compiler: SQLCompiler, **kw: Any) -> str:
    plain, strict = list(element.clauses)
    return f"({compiler.process(plain, **kw)} AND {compiler.process(strict, **kw)})"
