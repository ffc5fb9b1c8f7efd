"""Where the built-in auth finds a request's token, and the provider that turns it into an
AuthContext.

A bad token is a 401 (close code 1008 on a WebSocket), never an anonymous caller; no token at all
is the anonymous caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from ...http.errors import refusal
from ...identity.context import AuthContext
from ..provider import is_stream_route
from .errors import InvalidTokenError
from .tickets import TICKET_PARAMETER

if TYPE_CHECKING:
    from .auth import PasswordAuth

TOKEN_PARAMETER = "access_token"
"""The query parameter and cookie a stream may carry its access token in."""


class TokenSources(OAuth2PasswordBearer):
    """The access token of a request, from wherever it may come.

    ``Authorization: Bearer <token>`` anywhere. On stream routes only — a WebSocket, or
    capebase's SSE ``GET /{table}/subscribe`` (``is_stream_route``: the route decides, never a
    request header) — also ``?access_token=`` or an ``access_token`` cookie: browsers cannot
    set headers there. Elsewhere both are ignored, so that a cross-site page cannot act with
    them (every state-changing route needs the header, which only a script of an allowed
    origin can set).
    """

    async def __call__(self, request: HTTPConnection) -> str | None:
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _invalid(request)
            return token.strip()
        if not is_stream_route(request):
            return None
        found = request.query_params.get(TOKEN_PARAMETER)
        if found is None:
            found = request.cookies.get(TOKEN_PARAMETER)
            # A browser sends cookies with a cross-site WebSocket handshake, and CORS does not
            # apply to WebSockets: accept a cookie only from a page of the same host.
            if found is not None and not _same_origin(request):
                raise _invalid(request)
        if found is not None and not found:
            raise _invalid(request)
        return found


def token_sources(prefix: str) -> TokenSources:
    """The token finder, announcing ``{prefix}/token`` to OpenAPI as the password flow."""
    return TokenSources(
        tokenUrl=f"{prefix.lstrip('/')}/token", scheme_name="OAuth2PasswordBearer", auto_error=False
    )


def make_provider(auth: PasswordAuth) -> Callable[..., Awaitable[AuthContext]]:
    """The FastAPI dependency returning the AuthContext of a request, for ``auth``."""
    scheme = auth.token_sources

    async def password_auth_context(
        request: HTTPConnection, token: str | None = Depends(scheme)
    ) -> AuthContext:
        try:
            if token is None:
                ticket = request.query_params.get(TICKET_PARAMETER)
                if ticket is None or not is_stream_route(request):
                    return AuthContext()
                return await auth.context_for_ticket(ticket)
            return await auth.context_for(token)
        except InvalidTokenError:
            raise _invalid(request) from None

    return password_auth_context


def _invalid(request: HTTPConnection) -> Exception:
    return refusal(request, InvalidTokenError())


def _same_origin(request: HTTPConnection) -> bool:
    origin = request.headers.get("origin")
    if origin is None or request.scope["type"] != "websocket":
        return True  # not a browser's cross-site WebSocket (SSE is guarded by CORS)
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()
