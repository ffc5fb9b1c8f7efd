"""Conditional requests on one row: its ``ETag``, and ``If-Match`` / ``If-None-Match`` (RFC 9110).

A row's ETag is a strong validator: a BLAKE2b digest of the row's JSON as every route serves
it, all its non-secret columns (whatever ``select=`` a GET asked for). It changes whenever a
value the caller can read changes, and is computed from nothing else: a secret column, which
no route returns, does not enter it, so an ETag never tells a caller that a value it cannot
read has changed. (The other side of that choice: a write that changes secret columns only
leaves the ETag as it was.) Every caller sees the same representation of a row, so it is one
ETag per row version for all of them.

The conditions of a write are checked by the writer on the row it has locked for the write
(``writes``), so that of two writers sending the same ``If-Match`` exactly one succeeds.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import TypeAdapter

from ..errors import PreconditionFailedError, QueryError

_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')
MAX_TAGS = 64
"""The most entity-tags one conditional header may list."""


def etag_of(body: bytes) -> str:
    """The strong ETag of a row whose full JSON body is ``body``."""
    digest = hashlib.blake2b(body, digest_size=16).digest()
    return '"' + base64.urlsafe_b64encode(digest).decode().rstrip("=") + '"'


@dataclass(frozen=True, slots=True)
class Tags:
    """The value of an ``If-Match`` or ``If-None-Match`` header: ``*`` or entity-tags."""

    is_any: bool
    strong: frozenset[str]
    """The opaque tags, quoted, sent without ``W/``."""
    weak: frozenset[str]
    """The opaque tags, quoted, sent with ``W/``."""

    def matches_strongly(self, etag: str) -> bool:
        """Whether ``etag`` matches by the strong comparison (If-Match): a weak tag never does."""
        return self.is_any or etag in self.strong

    def matches_weakly(self, etag: str) -> bool:
        """Whether ``etag`` matches by the weak comparison (If-None-Match)."""
        return self.is_any or etag in self.strong or etag in self.weak


def parse_tags(request: Request, name: str) -> Tags | None:
    """The entity-tags of the request's ``name`` header (several lines are one list);
    ``None`` when it has none.

    Raises:
        QueryError: 400 for a value that is neither ``*`` nor a list of quoted entity-tags.
    """
    lines = request.headers.getlist(name)
    if not lines:
        return None
    text = ",".join(lines).strip()
    if text == "*":
        return Tags(True, frozenset(), frozenset())
    strong: set[str] = set()
    weak: set[str] = set()
    position, count = 0, 0
    while position < len(text):
        found = _TAG.match(text, position)
        if found is None or count >= MAX_TAGS:
            raise QueryError(
                f"Invalid {name} header: expected * or a list of at most {MAX_TAGS} quoted "
                f'entity-tags (the ETag of a response, such as "abc"), got {text[:80]!r}'
            )
        (weak if found.group(1) else strong).add(f'"{found.group(2)}"')
        position, count = found.end(), count + 1
    if not count:
        raise QueryError(f"Invalid {name} header: it is empty")
    return Tags(False, frozenset(strong), frozenset(weak))


class Preconditions:
    """The ``If-Match`` and ``If-None-Match`` of a write, checked on the row as it is locked
    for the write: a callable the writer calls with the row before it changes anything.

    Raises (when called):
        PreconditionFailedError: a condition is false (412).
    """

    __slots__ = ("_if_match", "_if_none_match", "_key", "_model", "_row_json")

    def __init__(
        self,
        if_match: Tags | None,
        if_none_match: Tags | None,
        row_json: TypeAdapter[Any],
        model: str,
        key: Any,
    ) -> None:
        self._if_match = if_match
        self._if_none_match = if_none_match
        self._row_json = row_json
        self._model = model
        self._key = key

    @classmethod
    def of(
        cls, request: Request | None, row_json: TypeAdapter[Any], model: str, key: Any
    ) -> Preconditions | None:
        """The preconditions of ``request``; ``None`` when it sends none."""
        if request is None:
            return None
        if_match = parse_tags(request, "If-Match")
        if_none_match = parse_tags(request, "If-None-Match")
        if if_match is None and if_none_match is None:
            return None
        return cls(if_match, if_none_match, row_json, model, key)

    def __call__(self, row: Mapping[str, Any]) -> None:
        # RFC 9110 13.2.2: If-Match, then If-None-Match; a row that exists matches "*".
        etag = etag_of(self._row_json.dump_json(row))
        if self._if_match is not None and not self._if_match.matches_strongly(etag):
            raise PreconditionFailedError(self._model, self._key)
        if self._if_none_match is not None and self._if_none_match.matches_weakly(etag):
            raise PreconditionFailedError(self._model, self._key, header="If-None-Match")
