"""Keyset paging of the list route: the page after a cursor, its ``Link: rel="next"``, and
the ``envelope=true`` body."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, quote_from_bytes, unquote_plus

from fastapi import Request
from pydantic import TypeAdapter
from sqlalchemy import ColumnElement

from ..errors import QueryError
from ..filters.cursor import decode_cursor, encode_cursor
from ..filters.order import SortKey, after


def after_cursor(
    raw: str | None, keys: Sequence[SortKey], offset: int, dialect: str
) -> list[ColumnElement[bool]]:
    """The condition of the rows after the cursor ``raw`` (none without one).

    Raises:
        QueryError: 400 for a cursor that is not one, or one with ``offset``.
    """
    if raw is None:
        return []
    if offset:
        raise QueryError(
            "'after' and 'offset' cannot be combined: a cursor already says where the page "
            "starts"
        )
    return [after(keys, decode_cursor(raw, keys), dialect)]


def next_cursor(
    rows: list[dict[str, Any]], more: bool, keys: Sequence[SortKey], row_json: TypeAdapter[Any]
) -> str | None:
    """The cursor of the page after ``rows`` when there are ``more`` rows."""
    if not (more and rows):
        return None
    last = rows[-1]
    values = {key.name: last.get(key.name, _MISSING) for key in keys}
    # Integers and text are their own JSON form (the usual keys); anything else is
    # written as the response writes it.
    if not all(value is None or type(value) in (int, str) for value in values.values()):
        values = row_json.dump_python(last, mode="json", include=set(values))
    return encode_cursor(keys, values)


_MISSING = object()


def next_link(request: Request, cursor: str) -> str:
    """The ``Link`` header of the next page: this request's path and query with ``after``
    the cursor (and no ``offset``), as a relative reference (RFC 8288), so that it holds
    behind any proxy. The other parameters keep the escapes the client gave them; what a
    lenient server let through unescaped (``<``, ``>``, spaces) is escaped."""
    kept = [
        quote_from_bytes(part, safe=_KEEP)
        for part in request.scope["query_string"].split(b"&")
        if part and _name(part) not in ("after", "offset")
    ]
    kept.append("after=" + cursor)  # base64url: nothing to escape
    return f'<{_link_path(request)}?{"&".join(kept)}>; rel="next"'


def _link_path(request: Request) -> str:
    """The request's path as a link writes it. Building ``request.url`` costs more than the
    rest of the link, and a list route has one path per mount: remember the few there are."""
    key = (request.scope.get("root_path", ""), request.scope["path"])
    path = _PATHS.get(key)
    if path is None:
        path = quote(request.url.path, safe="/")
        if len(_PATHS) < _MAX_PATHS:
            _PATHS[key] = path
    return path


_PATHS: dict[tuple[str, str], str] = {}
_MAX_PATHS = 1024


_KEEP = "%=+-._~!$'()*,;:@/?"
"""What a query part keeps as it is: escapes, and the characters a URI query allows."""


def _name(part: bytes) -> str:
    return unquote_plus(part.partition(b"=")[0].decode("latin-1"))


def enveloped(items: bytes, cursor: str | None) -> bytes:
    """The ``envelope=true`` body: ``{"items": [...], "next": cursor or null}``."""
    return b'{"items":' + items + b',"next":' + json.dumps(cursor).encode() + b"}"
