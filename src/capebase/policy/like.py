"""SQL ``LIKE`` as every database runs a policy's patterns, and the same match in Python.

The databases disagree on a few points, which ``sqlexpr.exact_text`` settles before a pattern
reaches one: the escape character is a backslash unless the expression names another (PostgreSQL
and MySQL default to it, SQLite has none), and a pattern value ending with a lone escape
character ends with that character literally (PostgreSQL rejects such a pattern, SQLite matches
nothing, MySQL reads a literal one). Matching is then exact on every database: case, accents
and trailing spaces count; ``%`` is any run of characters and ``_`` exactly one.

``startswith``, ``endswith`` and ``contains`` (and their negated and case-folding kin) take
their value as text, not as a pattern: ``title.startswith(ctx.context["tag"])`` with a tag of
``"a%"`` admits titles starting with ``a%``, not every title starting with ``a``. Unless the
expression names its own escape character (``autoescape=True`` or ``escape=``, which mean
the value is already escaped), the value's ``%``, ``_`` and escape characters are escaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from sqlalchemy.sql import operators

DEFAULT_ESCAPE = "\\"

PATTERN_OPERATORS = frozenset({
    operators.like_op, operators.not_like_op,
    operators.startswith_op, operators.not_startswith_op,
    operators.endswith_op, operators.not_endswith_op,
    operators.contains_op, operators.not_contains_op,
})
"""Case-sensitive pattern operators, which Python evaluates."""

CASE_FOLDING_OPERATORS = frozenset({
    operators.ilike_op, operators.not_ilike_op,
    operators.istartswith_op, operators.not_istartswith_op,
    operators.iendswith_op, operators.not_iendswith_op,
    operators.icontains_op, operators.not_icontains_op,
})
"""Case-insensitive ones: each database lowers non-ASCII letters its own way (SQLite only
ASCII), so Python leaves them to the database."""

LITERAL_VALUE_OPERATORS = frozenset({
    operators.startswith_op, operators.not_startswith_op,
    operators.endswith_op, operators.not_endswith_op,
    operators.contains_op, operators.not_contains_op,
    operators.istartswith_op, operators.not_istartswith_op,
    operators.iendswith_op, operators.not_iendswith_op,
    operators.icontains_op, operators.not_icontains_op,
})
"""Operators whose value is text to find, not a pattern (see the module)."""

NEGATED = frozenset({
    operators.not_like_op, operators.not_startswith_op, operators.not_endswith_op,
    operators.not_contains_op,
})

_AROUND: dict[object, tuple[str, str]] = {
    operators.like_op: ("", ""), operators.not_like_op: ("", ""),
    operators.startswith_op: ("", "%"), operators.not_startswith_op: ("", "%"),
    operators.endswith_op: ("%", ""), operators.not_endswith_op: ("%", ""),
    operators.contains_op: ("%", "%"), operators.not_contains_op: ("%", "%"),
}


def escaped(value: str, escape: str) -> str:
    """``value`` as a pattern that matches exactly ``value``: its escape characters, ``%`` and
    ``_`` each preceded by ``escape``."""
    return "".join(escape + char if char in (escape, "%", "_") else char for char in value)


def is_literal_value(op: object, modifiers: Mapping[str, object]) -> bool:
    """Whether ``column <op> value`` takes ``value`` as text (see the module)."""
    return op in LITERAL_VALUE_OPERATORS and modifiers.get("escape") is None


def closed_value(value: str, escape: str) -> str:
    """``value`` with a trailing lone ``escape`` doubled, so that it stands for itself."""
    trailing = len(value) - len(value.rstrip(escape))
    return value + escape if trailing % 2 == 1 else value


def pattern_for(op: object, value: str, escape: str) -> str:
    """The whole pattern the database matches for ``column <op> value``."""
    before, after = _AROUND[op]
    return before + closed_value(value, escape) + after


def like_matches(text: str, pattern: str, escape: str) -> bool:
    """Whether ``text LIKE pattern ESCAPE escape`` holds, exactly (case and accents count)."""
    return _compiled(pattern, escape).fullmatch(text) is not None


@lru_cache(maxsize=512)
def _compiled(pattern: str, escape: str) -> re.Pattern[str]:
    parts: list[str] = []
    literal = False
    for char in pattern:
        if literal:
            parts.append(re.escape(char))
            literal = False
        elif char == escape:
            literal = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    if literal:  # closed_value leaves none; a lone one at the end stands for itself
        parts.append(re.escape(escape))
    return re.compile("".join(parts), re.DOTALL)
