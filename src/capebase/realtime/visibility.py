"""What a subscriber sees of a change: its read rules and filters, applied to the row images."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import select

from ..policy.registry import Policy
from ..policy.sqlexpr import with_row_values
from .subscribers import Subscriber


class Executes(Protocol):
    """What delivery needs of a connection: running a statement (a policy check in SQL)."""

    async def execute(self, statement: Any, /) -> Any: ...


class Visibility:
    """Decides, per subscriber, whether a change is an INSERT, UPDATE or DELETE for it, or
    nothing: in Python, against the old and new row images, unless a ``where`` rule needs SQL.
    """

    __slots__ = ("policy",)

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def event_for(
        self, subscriber: Subscriber, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> str | None:
        """The view-relative event ``subscriber`` gets for a change from ``old`` to ``new``:
        INSERT, UPDATE, DELETE, ``None`` (nothing to see), or ASK_DATABASE when a rule's
        ``where`` needs SQL to decide (then ask ``event_in_database``)."""
        was = self._visible(subscriber, old)
        now_visible = self._visible(subscriber, new)
        if was is None or now_visible is None:
            return ASK_DATABASE
        return _EVENTS[was, now_visible]

    async def event_in_database(
        self,
        subscriber: Subscriber,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
        connection: Executes,
    ) -> str | None:
        """``event_for``, asking the database what Python cannot decide."""
        was = await self._visible_in_database(subscriber, old, connection)
        now_visible = await self._visible_in_database(subscriber, new, connection)
        return _EVENTS[was, now_visible]

    def _visible(self, subscriber: Subscriber, image: dict[str, Any] | None) -> bool | None:
        """Whether ``subscriber`` sees the row ``image``; ``None`` if only SQL can tell."""
        if image is None or not subscriber.passes_filters(image):
            return False
        return self.policy.check_row(subscriber.view.model, "read", subscriber.ctx, image)

    async def _visible_in_database(
        self, subscriber: Subscriber, image: dict[str, Any] | None, connection: Executes
    ) -> bool:
        if image is None:
            return False
        verdict = self._visible(subscriber, image)
        if verdict is None:
            predicate = with_row_values(
                self.policy.sql_filter(subscriber.view.model, "read", subscriber.ctx),
                subscriber.view.table,
                image,
            )
            verdict = bool((await connection.execute(select(predicate))).scalar())
        return verdict


ASK_DATABASE = "ASK_DATABASE"
"""``Visibility.event_for``'s answer when a rule's ``where`` expression needs SQL to decide."""

_EVENTS: dict[tuple[bool, bool], str | None] = {
    (True, True): "UPDATE",
    (False, True): "INSERT",
    (True, False): "DELETE",
    (False, False): None,
}
"""The event a subscriber gets, by whether it saw the row before and after the change."""
