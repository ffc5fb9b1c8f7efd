"""The hooks the rest of capebase calls to report what it does; no-ops unless metrics are on.

Each CapeBase keeps its observer in an ``ObserverSlot``, which it hands to its hub (and so to
the dispatcher and the handler runner) and puts in its sessions' ``info``; the slot holds
``NO_OBSERVER``, whose every hook does nothing, until ``observability.install`` fills it.
"""

from __future__ import annotations

from collections.abc import Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .errors import PermissionDeniedError

if TYPE_CHECKING:
    from fastapi import Request
    from sqlalchemy.orm import Session

    from .changes.changelog import ChangeRecord
    from .realtime.subscribers import Subscriber

SCOPE_KEY = "capebase.observer"
"""ASGI scope key under which the metrics middleware leaves the observer for error handlers."""

_COUNTED = "_capebase_counted"

transport: ContextVar[str] = ContextVar("capebase_transport", default="other")
"""The stream transport of the current request ("sse" or "websocket"), set by the middleware."""


class Observer:
    """What capebase reports. This base class ignores everything (metrics off)."""

    __slots__ = ()

    def permission_denied(self, model: str, action: str) -> None:
        """The policy denied ``action`` on ``model``."""

    def subscription_opened(self, subscriber: Subscriber) -> None:
        """A stream opened."""

    def subscription_closed(self, subscriber: Subscriber) -> None:
        """A stream closed (may be reported more than once per stream)."""

    def change_dispatched(self, record: ChangeRecord) -> None:
        """The dispatcher read ``record`` from the change log and is delivering it."""

    def change_offered(self, subscriber: Subscriber, record: ChangeRecord) -> None:
        """``record`` was offered to ``subscriber``'s queue (which may have overflowed)."""

    def broker_state(self, connected: bool, *, outage: bool = False) -> None:
        """The broker link is up or down; ``outage`` marks the start of a new outage."""

    def timed_handler(
        self, table: str, handler: str, call: Coroutine[Any, Any, None]
    ) -> Coroutine[Any, Any, None]:
        """``call`` (one handler run), wrapped to measure it; here returned as it is."""
        return call


NO_OBSERVER = Observer()

SESSION_KEY = "capebase.observer_slot"
"""``Session.info`` key of the ``ObserverSlot`` a capebase session reports denials to."""


class ObserverSlot:
    """Where one CapeBase keeps its observer (``NO_OBSERVER`` until metrics are installed)."""

    __slots__ = ("observer",)

    def __init__(self) -> None:
        self.observer: Observer = NO_OBSERVER


def count_denial(session: Session, error: PermissionDeniedError) -> PermissionDeniedError:
    """Count a denial raised inside ``session`` and return ``error`` for the caller to raise.

    The error is marked, so the HTTP error handler does not count it a second time.
    """
    slot = session.info.get(SESSION_KEY)
    if isinstance(slot, ObserverSlot):
        slot.observer.permission_denied(error.model, error.action)
    vars(error)[_COUNTED] = True
    return error


def count_http_denial(request: Request, error: PermissionDeniedError) -> None:
    """Count a denial that became a 401/403 response, unless a session already counted it."""
    if vars(error).get(_COUNTED):
        return
    observer = request.scope.get(SCOPE_KEY)
    if isinstance(observer, Observer):
        observer.permission_denied(error.model, error.action)
    vars(error)[_COUNTED] = True
