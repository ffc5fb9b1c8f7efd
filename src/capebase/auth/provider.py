"""What an auth provider is: a FastAPI dependency returning an AuthContext."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Depends
from starlette.requests import HTTPConnection

from ..identity.context import AuthContext

AuthProvider = Callable[..., AuthContext | Awaitable[AuthContext]]
"""Any FastAPI dependency (sync or async, may itself use ``Depends``) returning an AuthContext."""


STREAM_ROUTE = "capebase.stream_route"
"""The ASGI scope key capebase's SSE routes set before they solve the caller."""


def mark_stream_route(scope: MutableMapping[str, Any]) -> None:
    """Mark ``scope`` as served by a stream route (see ``is_stream_route``)."""
    scope[STREAM_ROUTE] = True


def is_stream_route(connection: HTTPConnection) -> bool:
    """Whether ``connection`` is a WebSocket or is served by one of capebase's SSE routes
    (``GET /{table}/subscribe``): the only places where a provider should take a token from the
    query string or a cookie, because browsers cannot set headers there.

    The route decides, never a request header: a cross-site page can send ``Accept:
    text/event-stream`` (a CORS-safelisted header) to any route, along with the user's cookies.
    """
    return connection.scope["type"] == "websocket" or connection.scope.get(STREAM_ROUTE) is True


async def anonymous() -> AuthContext:
    """The provider used when none is given: every caller is anonymous."""
    return AuthContext()


def check_provider(provider: Any) -> AuthProvider:
    """Reject something that cannot be a provider, at construction rather than first request."""
    from ..errors import ConfigurationError

    if not callable(provider):
        raise ConfigurationError(
            "get_auth_context must be a callable FastAPI dependency returning an AuthContext, "
            f"got {type(provider).__name__}"
        )
    return provider  # type: ignore[no-any-return]


def checked_context(provider: AuthProvider, ctx: Any) -> AuthContext:
    """``ctx`` if ``provider`` returned an AuthContext; a wrong return value fails loudly,
    not as a leak."""
    from ..errors import ConfigurationError

    if not isinstance(ctx, AuthContext):
        raise ConfigurationError(
            f"The auth provider {getattr(provider, '__name__', provider)!r} returned "
            f"{type(ctx).__name__}; it must return an AuthContext (AuthContext() = anonymous)"
        )
    return ctx


def accept_any_connection(provider: AuthProvider) -> AuthProvider:
    """``provider``, taking an ``HTTPConnection`` where it declared a ``Request``.

    FastAPI gives a ``Request`` parameter nothing on a WebSocket, so a provider written as
    ``async def get_auth_context(request: Request)`` (the usual way, and the seed README's)
    would fail on ``WS /{table}/subscribe``. Headers, cookies, query parameters and ``state``
    are on both; only the body is not, and a provider has no use for it.
    """
    import functools
    import inspect
    import typing

    from starlette.requests import HTTPConnection, Request

    try:
        hints = typing.get_type_hints(provider)
        signature = inspect.signature(provider)
    except (NameError, TypeError, ValueError):
        return provider
    if not any(hints.get(name) is Request for name in signature.parameters):
        return provider
    parameters = [
        p.replace(
            annotation=HTTPConnection
            if hints.get(p.name) is Request
            else hints.get(p.name, p.annotation)
        )
        for p in signature.parameters.values()
    ]
    adapted: Any
    if inspect.iscoroutinefunction(provider):

        async def adapted(*args: Any, **kwargs: Any) -> Any:
            return await provider(*args, **kwargs)

    else:

        def adapted(*args: Any, **kwargs: Any) -> Any:
            return provider(*args, **kwargs)

    functools.update_wrapper(adapted, provider)
    adapted.__signature__ = signature.replace(parameters=parameters)
    return adapted  # type: ignore[no-any-return]


def context_dependency(provider: AuthProvider) -> Callable[..., Awaitable[AuthContext]]:
    """Wrap the user's provider so a wrong return value fails loudly, not as a leak."""

    async def current_auth_context(
        ctx: Any = Depends(accept_any_connection(provider)),
    ) -> AuthContext:
        return checked_context(provider, ctx)

    return current_auth_context
