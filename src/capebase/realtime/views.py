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
        self._cache: dict[str, str] = {}
        self._items: dict[str, tuple[int, str]] = {}

    def item(self, event: str, view: ModelView) -> tuple[int, str]:
        """``(change id, text)`` for ``event``: what a subscriber's queue holds, one object
        shared by every subscriber that gets this variant."""
        item = self._items.get(event)
        if item is None:
            item = self._items[event] = (self.record.id, self.text(event, view))
        return item

    def text(self, event: str, view: ModelView) -> str:
        """``{"id","table","event","payload","old","timestamp"}`` for ``event``.

        INSERT and UPDATE carry the new row; DELETE carries the primary key only, and ``old``
        carries the previous row for UPDATE and DELETE.
        """
        cached = self._cache.get(event)
        if cached is not None:
            return cached
        record = self.record
        if event == "DELETE":
            payload: Any = {view.pk_key: record.pk}
            old = record.old
        elif event == "INSERT":
            payload, old = record.new, None
        else:
            payload, old = record.new, record.old
        text = json.dumps(
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
        self._cache[event] = text
        return text
