"""HTTP metrics: a pure ASGI middleware (streams pass through untouched, WebSocket
connections are counted as requests of method ``WEBSOCKET``) and the scrape endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.routing import BaseRoute, Match, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._compat.fastapi import included_routes, served_route_path
from ..observer import SCOPE_KEY, Observer, transport
from .metrics import Metrics, is_multiprocess

UNMATCHED = "<unmatched>"
"""The route label of requests no route matched (404s, redirects): raw paths would make the
label unbounded."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
"""Method label values; a client can send any method name, so others are labelled "OTHER"."""
WEBSOCKET = "WEBSOCKET"
"""The method label of a WebSocket connection: status 101 once accepted, its duration the
connection's."""


class HttpMetricsMiddleware:
    """Counts, times and tracks in-flight HTTP requests and WebSocket connections by route
    template, method and status.

    The request's route is the template of the route that handled it, as OpenAPI documents it
    (``/todo/{id}``, convertors left out); while a request is in flight, or where FastAPI
    records no route, it is the template of the first route matching its path.
    """

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, observer: Observer, routes: list[BaseRoute]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.observer = observer
        self.routes = routes
        self._flat: list[Any] = []
        self._flat_key: tuple[int, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            method = WEBSOCKET
        else:
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            scope[SCOPE_KEY] = self.observer
        matched = self._match(scope)
        in_flight = self.metrics.http_in_flight.labels(method, matched)
        in_flight.inc()
        status = 500  # what the client gets if the app raises before responding
        accepted = False
        started = time.perf_counter()
        reset = transport.set("sse" if kind == "http" else "websocket")

        async def send_and_watch(message: Message) -> None:
            nonlocal status, accepted
            sent = message["type"]
            if sent in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
            elif sent == "websocket.accept":
                status, accepted = 101, True
            elif sent == "websocket.close" and not accepted:
                status = 403  # what the server answers a handshake closed before accept
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            transport.reset(reset)
            in_flight.dec()
            # FastAPI records no route for its own pages (/docs) or a router's plain routes:
            # the template matched on the way in names them.
            route = route_template(scope)
            labels = (method, matched if route == UNMATCHED else route, str(status))
            self.metrics.http_requests.labels(*labels).inc()
            self.metrics.http_duration.labels(*labels).observe(time.perf_counter() - started)

    def _match(self, scope: Scope) -> str:
        """The template of the route the router will pick, found the way it finds it."""
        try:
            return self._first_match(scope)
        except Exception:  # a metrics label must never fail the request
            return UNMATCHED

    def _first_match(self, scope: Scope) -> str:
        path, method = _route_path(scope), scope.get("method")
        partial = None
        for route in self._candidates():
            regex, methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
            if regex is not None and methods and method is not None:
                # An HTTP route: matching its path pattern is all ``matches`` would do here,
                # without building the child scope.
                if regex.match(path) is None:
                    continue
                match = Match.FULL if method in methods else Match.PARTIAL
            else:
                match, _child = route.matches(scope)
            if match is Match.FULL:
                return _path(route)
            if match is Match.PARTIAL and partial is None:
                partial = route
        return _path(partial)

    def _candidates(self) -> list[Any]:
        # The app's routes change when models are published; opening FastAPI's included
        # routers costs more than matching, so it is redone only then.
        key = tuple(map(id, self.routes))
        if key != self._flat_key:
            self._flat, self._flat_key = list(_flattened(self.routes)), key
        return self._flat


def route_template(scope: Scope) -> str:
    """The template of the route that handled a request, once routing is done."""
    # FastAPI keeps the routes of an included router as they were declared and records the
    # route as served (with the include prefix) in its own scope entry; prefer that.
    path = served_route_path(scope)
    if path is not None:
        return documented(path)
    return _path(scope.get("route"))


def _flattened(routes: list[BaseRoute]) -> Iterator[Any]:
    """The routes a request is matched against, with FastAPI's included routers opened."""
    for route in routes:
        included = included_routes(route)
        if included is not None:
            yield from included
        else:
            yield route


def _route_path(scope: Scope) -> str:
    """The path routes match against: the request path below the app's ``root_path``."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("", "/"):
        return path[len(root):]
    return path


def _path(route: Any) -> str:
    path = getattr(route, "path", None)
    return documented(path) if isinstance(path, str) and path else UNMATCHED


@cache  # route templates: a bounded set
def documented(path: str) -> str:
    """A route template as OpenAPI and the README write it: ``/todo/{id:int}`` → ``/todo/{id}``."""
    return compile_path(path)[1]


def metrics_router(
    path: str,
    registry: CollectorRegistry | None,
    guard: Callable[..., Any] | None,
    include_in_schema: bool,
) -> APIRouter:
    """The scrape endpoint: ``registry``'s series, or every worker's in multiprocess mode."""
    if is_multiprocess():
        registry = CollectorRegistry()
        # prometheus_client leaves this constructor unannotated.
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    assert registry is not None
    exposed = registry
    router = APIRouter()

    def scrape_metrics() -> Response:
        # A plain function: FastAPI runs it in a worker thread, so reading multiprocess
        # files or many series never blocks the event loop.
        return Response(generate_latest(exposed), media_type=CONTENT_TYPE_LATEST)

    router.add_api_route(
        path,
        scrape_metrics,
        methods=["GET"],
        dependencies=[Depends(guard)] if guard is not None else None,
        include_in_schema=include_in_schema,
        summary="Prometheus metrics",
        response_class=Response,
    )
    return router


