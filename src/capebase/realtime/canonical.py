"""Canonical text of what a read rule reads: a caller's claims, a rule's SQL and bound values.

Resume tokens are bound to it (``signing.stream_binding``), so a token resumes only a stream
whose caller and read rule are what they were when it was issued. Equal values give equal
text in every process of the app (a token issued by one resumes on another); values of
different types give different text, even where Python calls them equal (``1``, ``1.0``,
``True``). A value of any other type has no canonical text: ``NotCanonical``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy.sql import elements, visitors

MAX_DEPTH = 32


class NotCanonical(Exception):
    """A value (or a rule) that has no canonical text: a stream of it is never replayed."""


def canonical_text(value: Any) -> str:
    """``value`` as canonical text.

    Raises:
        NotCanonical: a value of a type not listed in ``_tagged``, or nested too deep.
    """
    return json.dumps(_tagged(value, 0), separators=(",", ":"), ensure_ascii=False)


def rule_fingerprint(expr: Any) -> bytes:
    """A digest of the SQL predicate ``expr``: its shape (as SQL text) and its bound values.

    Raises:
        NotCanonical: ``expr`` does not compile without a database, or holds a value
            computed when the statement runs (``bindparam(callable_=...)``) or of a type
            ``canonical_text`` does not know.
    """
    try:
        shape = str(expr)
    except Exception as exc:  # a dialect's own construct: no text without its database
        raise NotCanonical(f"the rule has no SQL text of its own ({exc})") from exc
    values = []
    for element in visitors.iterate(expr):
        if isinstance(element, elements.BindParameter):
            if element.callable is not None:
                raise NotCanonical("the rule holds a value computed when it runs")
            value = element.value
            if element.expanding and isinstance(value, list | tuple):
                value = frozenset(value)  # IN's values: their order says nothing
            values.append([type(element.type).__name__, _tagged(value, 0)])
    text = json.dumps([shape, values], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).digest()


_SCALARS: dict[type[Any], tuple[str, Any]] = {
    str: ("s", str),
    int: ("i", str),
    float: ("f", float.hex),
    Decimal: ("d", str),
    uuid.UUID: ("u", str),
    datetime: ("dt", datetime.isoformat),
    date: ("da", date.isoformat),
    time: ("t", time.isoformat),
    bytes: ("x", bytes.hex),
}
"""Exact types (a subclass may compare its own way) → tag and text."""


def _tagged(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise NotCanonical("a value nested too deep")
    if value is None:
        return None
    kind = type(value)
    if kind is bool:
        return ["b", value]
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        tag, text = scalar
        return [tag, text(value)]
    if kind is timedelta:
        return ["td", value.days, value.seconds, value.microseconds]
    if isinstance(value, Enum):
        return ["e", f"{kind.__module__}.{kind.__qualname__}", _tagged(value.value, depth + 1)]
    if kind is list or kind is tuple:
        return ["l" if kind is list else "tu", [_tagged(item, depth + 1) for item in value]]
    if kind is set or kind is frozenset:
        return ["set", sorted(_text(item, depth + 1) for item in value)]
    if isinstance(value, Mapping):
        items = sorted([_text(k, depth + 1), _text(v, depth + 1)] for k, v in value.items())
        return ["m", items]
    raise NotCanonical(f"a value of type {kind.__qualname__}")


def _text(value: Any, depth: int) -> str:
    return json.dumps(_tagged(value, depth), separators=(",", ":"), ensure_ascii=False)
