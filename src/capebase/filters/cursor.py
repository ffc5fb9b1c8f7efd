"""Cursors of keyset paging (``?after=``): the sort values of a page's last row, as opaque text.

A cursor is base64url JSON: the order it was made for (``-qty,id``) and one value per sort
key, each in its filter text (``2024-05-01T12:30:00Z``) or null. It is not signed: what it
holds is a row the caller was just shown, in columns the caller may filter on (secret
columns cannot be sorted on), and what it does is AND a keyset condition to the query, which
the read rules and filters still bound. A forged cursor can therefore only select what
``?field__gt=`` could: a narrower page, never a row the rules hide. Its order is checked so
that a cursor of another order is a clear 400, not a page of the wrong rows.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from ..errors import QueryError
from .order import SortKey

MAX_CURSOR_LENGTH = 4096
"""The longest ``after=`` accepted (a cursor holds one value per sort key)."""


def order_text(keys: Sequence[SortKey]) -> str:
    """The order ``keys`` sort by, as ``order_by`` writes it, the tie-breaking key included."""
    return ",".join(("-" if key.descending else "") + key.name for key in keys)


def encode_cursor(keys: Sequence[SortKey], row: Mapping[str, Any]) -> str | None:
    """The cursor after ``row`` (its JSON form: the values as the response shows them);
    ``None`` when a sort value has no filter text (an array)."""
    values: list[str | None] = []
    for key in keys:
        if key.name not in row:
            return None
        value = row[key.name]
        if value is None or isinstance(value, str):
            values.append(value)
        elif isinstance(value, bool):
            values.append("true" if value else "false")
        elif type(value) is int:
            values.append(str(value))
        elif isinstance(value, int | float):
            values.append(json.dumps(value))
        else:
            return None
    text = json.dumps({"o": order_text(keys), "v": values}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(raw: str, keys: Sequence[SortKey]) -> list[Any]:
    """The sort values of the cursor ``raw``, parsed as the columns' filter values.

    Raises:
        QueryError: 400 naming what is wrong: not a cursor, made for another order, or
            a value the column cannot hold.
    """
    if len(raw) > MAX_CURSOR_LENGTH:
        raise QueryError(f"Invalid cursor in 'after': longer than {MAX_CURSOR_LENGTH} characters")
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise QueryError(
            "Invalid cursor in 'after': not a cursor this API issued (use the one from the "
            "Link header)"
        ) from None
    if not (
        isinstance(decoded, dict)
        and isinstance(decoded.get("o"), str)
        and isinstance(decoded.get("v"), list)
        and all(v is None or isinstance(v, str) for v in decoded["v"])
        and all(_is_text(v) for v in (decoded["o"], *decoded["v"]) if v is not None)
    ):
        raise QueryError("Invalid cursor in 'after': not a cursor this API issued")
    expected = order_text(keys)
    if decoded["o"] != expected or len(decoded["v"]) != len(keys):
        raise QueryError(
            f"Invalid cursor in 'after': it was issued for order_by={decoded['o']}, and this "
            f"request orders by {expected}; keep the order_by of the first page"
        )
    values: list[Any] = []
    for key, text in zip(keys, decoded["v"], strict=True):
        if text is None:
            if not key.column.nullable:
                raise QueryError(f"Invalid cursor in 'after': {key.name!r} cannot be null")
            values.append(None)
            continue
        try:
            values.append(key.field.parse(text))
        except (ValidationError, ValueError):
            raise QueryError(
                f"Invalid cursor in 'after': {text!r} is no value of {key.name!r}"
            ) from None
    return values


def _is_text(value: str) -> bool:
    """Whether ``value`` is text a database takes: JSON's ``\\ud800`` escape decodes to a
    lone surrogate, which no encoding can send (a URL's escapes never make one)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
