"""What both transports share: opening a subscription, and the items a stream yields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

from ...filters.select import parse_select
from ...filters.streams import NOT_FILTERS, parse_stream_filters
from ...identity.context import AuthContext
from ...limits import check_filter_count
from ...realtime.signing import StreamBinding
from ...realtime.subscribers import Subscriber

if TYPE_CHECKING:
    from ...crud.published import PublishedModel
    from ..services import RouteServices

HEARTBEAT = object()
"""Yielded when a stream was idle for a heartbeat interval."""

EXPIRED = object()
"""Yielded, last, when the subscriber's credentials expired or the user was disconnected."""


@dataclass(frozen=True, slots=True)
class Overflowed:
    """The subscriber fell behind and was dropped; it should resume from ``token``."""

    token: str | None


@dataclass(frozen=True, slots=True)
class Unavailable:
    """The database failed while replaying, or the stream's read rule failed; the client
    should resume from ``token`` later."""

    token: str
    reason: str = "database unavailable; reconnect to resume"


def resume_token(header: str | None, query: Mapping[str, str]) -> str | None:
    """The resume token of ``Last-Event-ID`` or ``?last_event_id=`` (``None``: live only).

    The stream verifies it: a token it did not issue resumes nothing (``reset``).
    """
    raw = header if header not in (None, "") else query.get("last_event_id")
    return None if raw is None or raw == "" else raw


def binding_for(
    services: RouteServices, published: PublishedModel, ctx: AuthContext, query: Any
) -> StreamBinding:
    """What the stream's resume tokens are bound to: its table, filters, caller and read
    rule (``Hub.binding``)."""
    filters = [(k, v) for k, v in query.multi_items() if k not in NOT_FILTERS]
    return services.hub.binding(published.table.name, ctx, filters)


def client_key(ctx: AuthContext, connection: HTTPConnection) -> str:
    """Who counts against ``max_subscriptions_per_client``: the user, or for anonymous
    callers their network address."""
    if ctx.id is not None:
        return f"user:{ctx.id}"
    address = connection.client.host if connection.client is not None else "unknown"
    return f"address:{address}"


def open_subscription(
    services: RouteServices,
    published: PublishedModel,
    ctx: AuthContext,
    query: Any,
    *,
    client: str | None = None,
) -> Subscriber:
    """Validate the stream's filters and register it with the hub (before any replay).

    Raises:
        QueryError: a bad filter or ``select``, more than ``LimitsConfig.max_filters``
            filters or ``max_filter_terms`` conditions, groups nested too deep.
        TooManySubscriptionsError: the process, or ``client``, has too many streams open.
    """
    params = query.multi_items()
    limits = services.limits
    check_filter_count(params, ignored=NOT_FILTERS, limit=limits.max_filters)
    filters = parse_stream_filters(
        params, published.fields, max_in=services.crud.max_in_values,
        max_terms=limits.max_filter_terms, max_depth=limits.max_filter_depth,
    )
    selected = parse_select(query.get("select"), published.fields)
    view = services.hub.views[published.table.name]
    return services.hub.add_subscriber(
        view, ctx, filters, client=client,
        selection=None if selected is None else frozenset(selected),
    )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One change for the client: its JSON text and the token to resume after it."""

    change_id: int
    text: str
    token: str
