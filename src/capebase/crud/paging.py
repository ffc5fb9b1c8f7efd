"""Keyset paging of the list route: the page after a cursor, its ``Link: rel="next"``, and
the ``envelope=true`` body."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

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
    return encode_cursor(keys, row_json.dump_python(rows[-1], mode="json"))


def next_link(request: Request, cursor: str) -> str:
    """The ``Link`` header of the next page: this request's path and query with ``after``
    the cursor (and no ``offset``), as a relative reference (RFC 8288), so that it holds
    behind any proxy."""
    params = [
        (key, value)
        for key, value in request.query_params.multi_items()
        if key not in ("after", "offset")
    ]
    params.append(("after", cursor))
    target = quote(request.url.path, safe="/") + "?" + urlencode(params, quote_via=quote)
    return f'<{target}>; rel="next"'


def enveloped(items: bytes, cursor: str | None) -> bytes:
    """The ``envelope=true`` body: ``{"items": [...], "next": cursor or null}``."""
    return b'{"items":' + items + b',"next":' + json.dumps(cursor).encode() + b"}"
