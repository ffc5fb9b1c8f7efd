"""How one model's changes look on the wire and to checks: decoding images, building messages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Table

from ..changes.changelog import ChangeRecord


@dataclass(eq=False)
class ModelView:
    """A model whose changes are streamed or handled; built once per model."""

    model: type[Any]
    table: Table
    read_schema: type[BaseModel]
    pk_key: str = field(init=False)

    def __post_init__(self) -> None:
        self.pk_key = next(iter(self.table.primary_key.columns)).key

    def decode(self, image: dict[str, Any] | None) -> dict[str, Any] | None:
        """A change-log image (JSON values) as Python values of the columns' types."""
        if image is None:
            return None
        try:
            return self.read_schema.model_validate(image).model_dump()
        except ValidationError:
            # A row the schema rejects (written outside capebase, say) is still checked by the
            # same rules; comparisons on mistyped values simply fail to match.
            return dict(image)

    def instance(self, image: dict[str, Any]) -> Any:
        """A model instance built from a decoded image, for handlers."""
        return self.model(**image)


class Message:
    """The JSON texts of one change, built at most once per variant and shared by subscribers."""

    __slots__ = ("_cache", "_items", "record")

    def __init__(self, record: ChangeRecord) -> None:
        self.record = record
        self._cache: dict[tuple[str, Selection], str] = {}
        self._items: dict[tuple[str, Selection], tuple[int, str]] = {}

    def item(
        self, event: str, view: ModelView, selection: Selection = None
    ) -> tuple[int, str]:
        """``(change id, text)`` for ``event``: what a subscriber's queue holds, one object
        shared by every subscriber that gets this variant."""
        key = (event, selection)
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = (self.record.id, self.text(event, view, selection))
        return item

    def text(self, event: str, view: ModelView, selection: Selection = None) -> str:
        """``{"id","table","event","payload","old","timestamp"}`` for ``event``.

        INSERT and UPDATE carry the new row; DELETE carries the primary key only, and ``old``
        carries the previous row for UPDATE and DELETE. With a ``selection`` (``?select=``),
        the rows carry those fields only (a DELETE's payload stays the primary key).
        """
        key = (event, selection)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        record = self.record
        if event == "DELETE":
            payload: Any = {view.pk_key: record.pk}
            old = _selected(record.old, selection)
        elif event == "INSERT":
            payload, old = _selected(record.new, selection), None
        else:
            payload, old = _selected(record.new, selection), _selected(record.old, selection)
        text = self._text(event, payload, old)
        self._cache[key] = text
        return text

    def read_now(
        self, event: str, view: ModelView, row: dict[str, Any] | None, selection: Selection
    ) -> tuple[int, str]:
        """``(change id, text)`` for a subscriber whose rule the database judged: the row
        as it may read it now (``Visibility.as_read_now``) in place of the change's images,
        no ``old``; a DELETE carries the primary key only. Built per subscriber."""
        payload = {view.pk_key: self.record.pk} if row is None else _selected(row, selection)
        return self.record.id, self._text(event, payload, None)

    def _text(self, event: str, payload: Any, old: dict[str, Any] | None) -> str:
        record = self.record
        return json.dumps(
            {
                "id": record.id,
                "table": record.table,
                "event": event,
                "payload": payload,
                "old": old,
                "timestamp": record.created_at.isoformat(),
            },
            separators=(",", ":"),
        )


Selection = frozenset[str] | None
"""The fields a stream asked for with ``?select=`` (``None``: every field)."""


def _selected(image: dict[str, Any] | None, selection: Selection) -> dict[str, Any] | None:
    if image is None or selection is None:
        return image
    return {key: value for key, value in image.items() if key in selection}
