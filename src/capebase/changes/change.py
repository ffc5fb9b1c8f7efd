"""ModelChange: one committed change to one row, as handlers and streams see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

EventType = Literal["INSERT", "UPDATE", "DELETE"]
ModelT = TypeVar("ModelT")


@dataclass(frozen=True, slots=True)
class ModelChange(Generic[ModelT]):
    """A committed change.

    Attributes:
        id: the change-log id, also the stream event id (monotonic).
        table: the table name.
        event: "INSERT", "UPDATE" or "DELETE".
        payload: the row as a model instance (for DELETE, the row as it was).
        old: the previous column values for UPDATE and DELETE, else ``None``.
        timestamp: when the change was committed (UTC).
        actor_id / actor_role: who made it (``None`` for privileged sessions).
    """

    id: int
    table: str
    event: EventType
    payload: ModelT
    old: dict[str, Any] | None
    timestamp: datetime
    actor_id: str | None = None
    actor_role: str | None = None
    new: dict[str, Any] | None = field(default=None, repr=False)
