"""The grammar of related rows: ``expand=project,comments(limit=5)``, conditions on related
fields (``project__name__startswith=A``) and ``select=`` items of expanded rows
(``select=id,project.name``).

::

    expand   := item ("," item)*
    item     := relation ["(" "limit=" n ")"]          limit: one-to-many relations only

What the names mean (which relations exist, which rows they reach) is the routes' business:
they hand the parsers here a ``RelatedFilters`` that knows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Container
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import ColumnElement

from ..errors import QueryError

if TYPE_CHECKING:
    from .groups import Term
    from .query import FilterField

_ITEM = re.compile(r"(?P<name>[^,()]+?)(?:\((?P<options>[^()]*)\))?")


@dataclass(frozen=True, slots=True)
class ExpandItem:
    """One relation to expand, with the most related rows per row of a one-to-many one
    (``None``: as configured)."""

    name: str
    limit: int | None = None


def parse_expand(raw: str | None, *, max_expand: int, max_limit: int) -> list[ExpandItem]:
    """The relations ``expand=raw`` names, in order (none without it).

    Raises:
        QueryError: 400 naming what is wrong: an empty item, a nested relation, an option
            other than ``limit``, a limit not in 1..``max_limit``, a relation named twice,
            more than ``max_expand`` relations.
    """
    if raw is None:
        return []
    items: list[ExpandItem] = []
    for part in _split_items(raw):
        match = _ITEM.fullmatch(part.strip())
        if match is None or not match["name"].strip():
            raise QueryError(
                f"Malformed expand={raw!r}: expected relation or relation(limit=n) items, "
                "separated by commas"
            )
        name = match["name"].strip()
        if "." in name:
            raise QueryError(
                f"Cannot expand {name!r}: expand reaches one level of relations (the relations "
                "of the listed rows), not the relations of related rows"
            )
        limit = None if match["options"] is None else _limit(name, match["options"], max_limit)
        if any(item.name == name for item in items):
            raise QueryError(f"expand names {name!r} twice")
        items.append(ExpandItem(name, limit))
    if not items:
        raise QueryError("expand names no relation; use expand=relation,relation,...")
    if len(items) > max_expand:
        raise QueryError(
            f"Too many relations in expand: {len(items)} given, at most {max_expand} "
            "(LimitsConfig.max_expand)"
        )
    return items


def _split_items(raw: str) -> list[str]:
    """``raw`` split on the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(raw):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(raw[start:index])
            start = index + 1
    parts.append(raw[start:])
    if depth != 0:
        raise QueryError(f"Malformed expand={raw!r}: unbalanced parentheses")
    return parts if raw.strip() else []


def _limit(name: str, options: str, max_limit: int) -> int:
    key, separator, value = options.partition("=")
    if key.strip() != "limit" or not separator:
        raise QueryError(
            f"Unknown expand option {options!r} of {name!r}; the one option is limit: "
            f"{name}(limit=10)"
        )
    value = value.strip()
    if not value.isdigit() or not 1 <= int(value) <= max_limit:
        raise QueryError(
            f"Invalid expand limit {value!r} of {name!r}: a whole number from 1 to {max_limit} "
            "(LimitsConfig.max_expand_limit)"
        )
    return int(value)


Scope = Callable[[ColumnElement[bool]], ColumnElement[bool]]
"""Turns a condition on a related row's column into a condition on the listed row."""


class RelatedFilters(Protocol):
    """What the filter grammar needs to know of a model's relations."""

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is a relation (rather than an unknown field)."""

    def field(self, relation: str, name: str) -> tuple[FilterField, Scope]:
        """The field ``name`` of the rows ``relation`` reaches, and the scope that makes a
        condition on it one on the listed rows.

        Raises:
            QueryError: 400 for a relation that cannot be used, or an unknown field.
        """


def related_term(
    term: Term, related: RelatedFilters
) -> tuple[str, str, FilterField, Scope] | None:
    """The condition ``term`` puts on a related field (``project__name__startswith=A``):
    its display name (``project__name``), operator, field and scope; ``None`` when ``term``
    names no relation.

    Raises:
        QueryError: 400 for a term naming a relation but none of its fields, or a field the
            relation's rows do not have.
    """
    if term.name not in related:
        return None
    _head, separator, rest = term.key.partition("__")
    field_name, op_separator, op = rest.partition("__")
    if not separator or not field_name:
        raise QueryError(
            f"{term.key!r} names the relation {term.name!r}, not a field of it; filter on "
            f"its fields: {term.name}__field=value or {term.name}__field__op=value"
        )
    field, scope = related.field(term.name, field_name)
    return f"{term.name}__{field_name}", op if op_separator else "eq", field, scope


def parse_related_select(
    raw: str | None, expanded: Collection[str], relations: Container[str]
) -> tuple[str | None, dict[str, set[str] | None], bool]:
    """Split ``select=raw`` into the listed rows' own fields (as ``select=`` text; ``None``
    for all), the fields picked of each expanded relation (``project.name``; ``None``: all),
    and whether any item named an expanded relation.

    Raises:
        QueryError: 400 for an item naming a relation (one of ``relations``) that is not
            expanded.
    """
    if raw is None:
        return None, {}, False
    own: list[str] = []
    picked: dict[str, set[str] | None] = {}
    named = False
    for item in (part.strip() for part in raw.split(",")):
        relation, dot, field = item.partition(".")
        if not dot and relation not in expanded and relation not in relations:
            own.append(item)
            continue
        if relation not in expanded:
            raise QueryError(
                f"select names {item!r}, but {relation!r} is not expanded; add expand={relation}"
            )
        named = True
        if not dot:
            picked[relation] = None
        elif relation not in picked or picked[relation] is not None:
            fields = picked.setdefault(relation, set())
            assert fields is not None
            fields.add(field.strip())
    return ",".join(own), picked, named
