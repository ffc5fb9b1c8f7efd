"""The built-in auth's routes: sign up, sign in, refresh, sign out, and who am I."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordRequestForm

from ...identity.context import AuthContext
from .errors import AccountExistsError, AuthenticationRequiredError, LockedOutError
from .schemas import LogoutRequest, RefreshRequest, SignupRequest, TokenResponse, UserRead
from .tickets import StreamTicketResponse

if TYPE_CHECKING:
    from .auth import PasswordAuth

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Invalid credentials or token (the message never says which)"},
}


def build_router(auth: PasswordAuth) -> APIRouter:
    """The routes of ``auth`` under its prefix."""
    router = APIRouter(prefix=auth.config.prefix, tags=["auth"])

    if auth.config.allow_signup:

        @router.post("/signup", status_code=status.HTTP_201_CREATED, responses={409: {}})
        async def signup(body: SignupRequest, request: Request) -> UserRead:
            """Create an account with the default role."""
            if len(body.password) < auth.config.min_password_length:
                raise RequestValidationError(
                    [
                        {
                            "type": "string_too_short",
                            "loc": ("body", "password"),
                            "msg": "Password should have at least "
                            f"{auth.config.min_password_length} characters",
                        }
                    ]
                )
            address = _address(request)
            # Sign-up must say when an email is taken; so that this cannot be used to list
            # accounts quickly, conflicts count against the address's sign-in budget.
            wait = auth.limiter.retry_after(None, address)
            if wait > 0:
                raise LockedOutError(wait)
            try:
                user = await auth.create_user(
                    body.email, body.password, username=body.username, role=auth.config.default_role
                )
            except AccountExistsError:
                auth.limiter.record_address_failure(address)
                raise
            return UserRead.model_validate(user)

    @router.post("/token", responses={**_ERRORS, 429: {"description": "Locked out"}})
    async def token(
        form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, response: Response
    ) -> TokenResponse:
        """Sign in with the OAuth2 password flow: ``username`` is the email or username."""
        user = await auth.authenticate(form.username, form.password, _address(request))
        response.headers.update(_NO_STORE)
        return await auth.sign_in(user)

    @router.post("/refresh", responses=_ERRORS)
    async def refresh(body: RefreshRequest, response: Response) -> TokenResponse:
        """Exchange a refresh token for a new access token and a new refresh token."""
        response.headers.update(_NO_STORE)
        return await auth.refresh(body.refresh_token)

    @router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
    async def logout(
        body: Annotated[LogoutRequest | None, Body()] = None,
        access_token: str | None = Depends(auth.token_sources),
    ) -> None:
        """Revoke a refresh token (or the bearer token's sign-in) and end the user's streams."""
        await auth.sign_out(body.refresh_token if body else None, access_token)

    @router.post("/stream-ticket", responses=_ERRORS)
    async def stream_ticket(
        response: Response, access_token: str | None = Depends(auth.token_sources)
    ) -> StreamTicketResponse:
        """A single-use ticket for one stream (``?ticket=``), valid for 30 seconds: keeps the
        access token out of stream URLs and the logs that record them."""
        if access_token is None:
            raise AuthenticationRequiredError()
        response.headers.update(_NO_STORE)
        return await auth.stream_ticket(access_token)

    @router.get("/me", responses=_ERRORS)
    async def me(ctx: AuthContext = Depends(auth.provider)) -> UserRead:
        """The signed-in user."""
        if ctx.id is None:
            raise AuthenticationRequiredError()
        user = await auth.store.get(ctx.id)
        if user is None:
            raise AuthenticationRequiredError()
        return UserRead.model_validate(user)

    return router


def _address(request: Request) -> str:
    # Behind a proxy this is the proxy unless the server trusts forwarded headers
    # (uvicorn --proxy-headers --forwarded-allow-ips=...).
    return request.client.host if request.client is not None else "unknown"
