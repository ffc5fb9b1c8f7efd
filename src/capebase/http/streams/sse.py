"""``GET /{table}/subscribe``: the change stream as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Header, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import request_response
from starlette.types import Receive, Scope, Send

from ...auth.provider import mark_stream_route
from ...errors import TooManySubscriptionsError
from ...identity.context import AuthContext
from ..errors import response_for
from .common import binding_for, client_key, open_subscription, resume_token
from .eventstream import EventStreamResponse, event_frame
from .stream import Stream

if TYPE_CHECKING:
    from ...crud.lean import AuthSolver
    from ...crud.published import PublishedModel
    from ..services import RouteServices


def sse_endpoint(
    services: RouteServices, published: PublishedModel, solver: AuthSolver, message: Any
) -> Any:
    """The SSE endpoint of ``published``'s model, for a ``StreamRoute`` whose response
    class is FastAPI's ``EventSourceResponse``: FastAPI documents its signature, the events'
    data as ``message``; ``serve`` answers the requests."""

    async def subscribe_sse(
        request: Request,
        ctx: AuthContext = Depends(services.auth_dependency),
        last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    ) -> AsyncIterator[Any]:
        # Never run (StreamRoute answers with ``serve``): FastAPI documents an async
        # generator of the events' data type as a Server-Sent Events operation.
        return
        yield

    subscribe_sse.__annotations__["return"] = AsyncIterator[message]

    async def serve(request: Request) -> Response:
        mark_stream_route(request.scope)  # a provider may read a token from the query or a cookie
        ctx, background = await solver.before_response(request)
        response = open_stream(
            services, published, request, ctx, request.headers.get("last-event-id")
        )
        if response.background is None:
            response.background = background
        return response

    setattr(subscribe_sse, _SERVE, serve)
    return subscribe_sse


class StreamRoute(APIRoute):
    """An APIRoute that FastAPI documents and Starlette serves: FastAPI's request handling
    keeps its exit stacks and frames alive for as long as a response runs, which for a
    stream is hours and, over 10,000 idle streams, a third of their memory. Its endpoint
    comes from ``sse_endpoint``."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._serve = request_response(getattr(endpoint, _SERVE))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in (self.methods or ()):
            await self._serve(scope, receive, send)
        else:
            await super().handle(scope, receive, send)  # the 405


_SERVE = "__capebase_serve__"


def open_stream(
    services: RouteServices,
    published: PublishedModel,
    request: Request,
    ctx: AuthContext,
    last_event_id: str | None,
) -> Response:
    """The event stream of ``ctx``'s view of ``published``, or 429 beyond the limits."""
    resume = resume_token(last_event_id, request.query_params)
    try:
        subscriber = open_subscription(
            services, published, ctx, request.query_params, client=client_key(ctx, request)
        )
    except TooManySubscriptionsError as exc:
        return response_for(exc)  # returned, not raised: the caller attaches its cleanup
    try:
        ready = ""
        binding = binding_for(services, published, ctx, request.query_params)
        stream = Stream(services.hub, subscriber, resume, binding, services.realtime.heartbeat)
        if resume is None:
            # A new stream's position, so a client that drops before the first change can
            # still resume from here (EventSource keeps the last ``id:`` it saw).
            opened_at = stream.opening_token()
            data = json.dumps({"event": "ready", "id": opened_at})
            ready = event_frame(data, event="ready", id=opened_at)
    except BaseException:
        # The response, which ends the subscription when it ends, was never made.
        services.hub.remove_subscriber(subscriber)
        raise
    return EventStreamResponse(
        stream,
        first=ready,
        retry_ms=services.limits.retry_after * 1000,
    )
