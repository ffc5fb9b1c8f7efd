"""PasswordAuth: the optional built-in auth — users, passwords, tokens — as a CapeBase provider."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from pwdlib import PasswordHash

from ...errors import ConfigurationError, NotFoundError
from ...identity.context import AuthContext
from .config import PasswordAuthConfig
from .errors import (
    AccountExistsError,
    InvalidCredentialsError,
    InvalidTokenError,
    LockedOutError,
)
from .lockout import LoginLimiter
from .models import User, utc_now
from .passwords import Passwords
from .schemas import MAX_PASSWORD_LENGTH, TokenResponse, normalize_email, normalize_username
from .store import IssuedRefresh, TokenReuseError, UserStore
from .tickets import StreamTicketResponse, StreamTickets
from .tokens import Keyring

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine

    from ...realtime.hub import SignIn

logger = logging.getLogger("capebase")


class PasswordAuth:
    """Email/username + password sign-in with JWT access tokens and rotating refresh tokens.

    Pass it to CapeBase, which then uses it as the auth provider and mounts its routes::

        cape = CapeBase(app, db_url, auth=PasswordAuth(secret=os.environ["CAPEBASE_SECRET"]))

    Routes (under ``prefix``, default ``/auth``): ``POST /signup`` (JSON), ``POST /token``
    (OAuth2 password form: the /docs "Authorize" button works), ``POST /refresh``,
    ``POST /logout``, ``GET /me`` and ``POST /stream-ticket``. Requests authenticate with
    ``Authorization: Bearer``; streams (SSE, WebSocket) may instead pass a single-use
    ``?ticket=`` from ``/stream-ticket``, ``?access_token=`` or an ``access_token`` cookie.

    Args:
        config: the settings; or pass them as keyword arguments (see ``PasswordAuthConfig``).
        **settings: ``PasswordAuthConfig`` fields, e.g. ``secret=...``.

    Raises:
        ConfigurationError: invalid settings, or both ``config`` and keyword settings.
    """

    def __init__(self, config: PasswordAuthConfig | None = None, /, **settings: Any) -> None:
        if config is not None and settings:
            raise ConfigurationError("Pass PasswordAuth a PasswordAuthConfig or settings, not both")
        self.config = config if config is not None else PasswordAuthConfig(**settings)
        self.keyring = Keyring(
            secret=self.config.secret,
            previous_secrets=self.config.previous_secrets,
            algorithm=self.config.algorithm,
            issuer=self.config.issuer,
            audience=self.config.audience,
            lifetime=self.config.access_token_lifetime,
        )
        self.limiter = LoginLimiter(
            max_per_account=self.config.max_failed_logins,
            max_per_address=self.config.max_failed_logins_per_address,
            lockout_seconds=self.config.lockout_time.total_seconds(),
        )
        self.passwords = Passwords(self.config.password_hash or PasswordHash.recommended())
        self._create_tables = True
        self._end_streams: Callable[[str], object] = _not_attached_end_streams
        self._store: UserStore | None = None
        self._tickets: StreamTickets | None = None

        from .provider import make_provider, token_sources
        from .routes import build_router

        self.token_sources = token_sources(self.config.prefix)
        self.provider = make_provider(self)
        """The FastAPI dependency CapeBase uses: the request's AuthContext (anonymous without a
        token, 401 for a bad one)."""
        self.router: APIRouter = build_router(self)
        """The auth routes; CapeBase mounts them."""

    # -- wiring (called by CapeBase) ---------------------------------------------------------

    def install(
        self,
        app: FastAPI,
        engine: AsyncEngine,
        *,
        create_tables: bool,
        end_streams: Callable[[str], object],
    ) -> None:
        """Attach to a CapeBase's ``app`` and ``engine``: mount the routes. Called by CapeBase.

        ``end_streams(user_id)`` ends the user's open streams (a password change, a sign-out
        everywhere, a reused refresh token); ``create_tables``: whether ``startup`` creates
        the auth tables or only checks that they exist.

        Raises:
            ConfigurationError: already attached to another CapeBase.
        """
        if self._store is not None:
            raise ConfigurationError("This PasswordAuth is already used by another CapeBase")
        self._store = UserStore(engine)
        self._tickets = StreamTickets(engine)
        self._create_tables = create_tables
        self._end_streams = end_streams
        app.include_router(self.router)

    def check_settings(self) -> None:
        """Refuse to start with a placeholder secret or admin password outside development
        mode (``dev=True`` or ``CAPEBASE_DEV=1``). Called by CapeBase's lifespan first.

        Raises:
            ConfigurationError: a placeholder, not in development mode.
        """
        allowed = self.config.check_not_placeholders()
        if allowed:
            logger.warning(
                "capebase: development mode: PasswordAuth starts with a placeholder %s; "
                "never run this configuration in production",
                " and ".join(allowed),
            )

    async def startup(self) -> None:
        """Create the auth tables (unless CapeBase's ``create_tables`` is off) and the initial
        admin. Called by CapeBase's lifespan."""
        if self._create_tables:
            await self.store.create_tables()
        elif missing := await self.store.missing_tables():
            raise ConfigurationError(
                f"The built-in auth's tables {', '.join(missing)} do not exist and "
                "create_tables=False. Add capebase.auth.builtin.metadata to your Alembic "
                "target_metadata and migrate, or use CapeBase(create_tables=True)."
            )
        await self.passwords.prepare()
        if self.config.initial_admin is not None:
            email, password = self.config.initial_admin
            if await self.store.find_login(normalize_email(email)) is None:
                # Another process starting at the same moment may win the race: that is fine.
                with contextlib.suppress(AccountExistsError):
                    await self.create_user(email, password, role=self.config.admin_role)

    @property
    def store(self) -> UserStore:
        """Database access to users and refresh tokens."""
        if self._store is None:
            raise _not_attached()
        return self._store

    # -- admin API ---------------------------------------------------------------------------

    async def create_user(
        self,
        email: str,
        password: str,
        *,
        username: str | None = None,
        role: str | None = None,
        is_active: bool = True,
    ) -> User:
        """Create a user (no password-length rule applies here: admins choose).

        Raises:
            ValueError: the email or username is malformed.
            AccountExistsError: the email or username is taken.
        """
        user = User(
            email=normalize_email(email),
            username=None if username is None else normalize_username(username),
            password_hash=await self.passwords.hash(password),
            role=role,
            is_active=is_active,
        )
        return await self.store.add_user(user)

    async def set_active(self, user_id: str, is_active: bool) -> None:
        """Enable or disable a user. Disabling ends their sign-ins and their open streams:
        at once on this process, through the broker on the others, and on every process within
        ``RealtimeConfig.revalidate_interval`` even without a broker.

        Raises:
            NotFoundError: no such user.
        """
        if not await self.store.update_user(user_id, is_active=is_active):
            raise NotFoundError("User", user_id)
        if not is_active:
            await self.store.end_all_sessions(user_id, utc_now())
            self._end_streams(user_id)

    async def set_role(self, user_id: str, role: str | None) -> None:
        """Change a user's role; it applies to their next request, and their open streams end
        so that they reconnect under the new role (on every process, as with ``set_active``).

        Raises:
            NotFoundError: no such user.
        """
        if not await self.store.update_user(user_id, role=role):
            raise NotFoundError("User", user_id)
        self._end_streams(user_id)

    # -- what the routes and the provider do -------------------------------------------------

    async def authenticate(self, login: str, password: str, address: str) -> User:
        """The active user ``login`` (email or username) if ``password`` is theirs.

        Raises:
            LockedOutError: too many failures for this account or address.
            InvalidCredentialsError: anything else; the same for unknown users, wrong
                passwords and disabled accounts, and as slow for each.
        """
        if (wait := self.limiter.retry_after(None, address)) > 0:
            raise LockedOutError(wait)
        typed = login.strip().lower()
        # No account has a login that long (signup caps it): no lookup for it.
        user = await self.store.find_login(typed) if len(typed) <= MAX_LOGIN_LENGTH else None
        # The account, not what was typed: its email and its username share one count. An
        # unknown login is counted under its digest: what a client types is never kept whole
        # (a table of 200-kilobyte logins would fill the memory).
        account = f"user:{user.id}" if user is not None else f"login:{_digest(typed)}"
        # Reserved before the hash, in the same step as the check: concurrent guesses each
        # take one of the remaining attempts, instead of all passing before any has failed;
        # beyond them a sign-in waits for the attempts in flight to settle.
        if (wait := await self.limiter.acquire(account, address)) > 0:
            raise LockedOutError(wait)
        succeeded = False
        try:
            if len(password) > MAX_PASSWORD_LENGTH:  # no account has one; spend no hash on it
                raise InvalidCredentialsError()
            ok, new_hash = await self.passwords.verify(
                password, user.password_hash if user is not None else None
            )
            if user is None or not ok or not user.is_active:
                raise InvalidCredentialsError()
            succeeded = True
        finally:
            self.limiter.end_attempt(account, address, succeeded=succeeded)
        if new_hash is not None:
            await self.store.update_user(user.id, password_hash=new_hash)
        return user

    async def sign_in(self, user: User) -> TokenResponse:
        """Open a sign-in for ``user``: a new refresh-token family and an access token."""
        now = utc_now()
        issued = await self.store.start_session(user, now, self._refresh_expiry(now))
        return self._tokens(issued, now)

    async def refresh(self, refresh_token: str) -> TokenResponse:
        """Exchange a refresh token for new tokens; the old refresh token stops working.

        Raises:
            InvalidTokenError: unknown, expired or revoked; a token that was already used
                revokes its whole sign-in and ends the user's streams (it was likely stolen).
        """
        now = utc_now()
        try:
            issued = await self.store.rotate(refresh_token, now, self._refresh_expiry(now))
        except TokenReuseError as exc:
            self._end_streams(exc.user_id)
            raise
        return self._tokens(issued, now)

    async def sign_out(self, refresh_token: str | None, access_token: str | None) -> None:
        """End the sign-in of ``refresh_token`` (or of ``access_token``) and the user's streams.

        Raises:
            InvalidTokenError: neither token names a sign-in.
        """
        session_id = None
        if refresh_token is None:
            if access_token is None:
                raise InvalidTokenError()
            session_id = self.keyring.verify(access_token).session_id
        user_id = await self.store.end_session(refresh_token, session_id, utc_now())
        self._end_streams(user_id)

    async def context_for(self, access_token: str) -> AuthContext:
        """The AuthContext of a valid access token whose user is active and sign-in open.

        The role is the user's current one (not the token's), so role changes and disabling
        apply from the next request.

        Raises:
            InvalidTokenError: bad, expired or revoked token, or a disabled user.
        """
        claims = self.keyring.verify(access_token)
        found = await self.store.session_user(claims.user_id, claims.session_id)
        if found is None or not found[0]:
            raise InvalidTokenError()
        return AuthContext(
            id=claims.user_id,
            role=found[1],
            expires_at=claims.expires_at,
            session=claims.session_id,
        )

    async def stream_ticket(self, access_token: str) -> StreamTicketResponse:
        """A single-use ticket that opens one stream as ``access_token``'s user.

        Raises:
            InvalidTokenError: bad, expired or revoked token, or a disabled user.
        """
        claims = self.keyring.verify(access_token)
        await self.context_for(access_token)
        tickets = self._attached_tickets()
        ticket = await tickets.issue(claims.user_id, claims.session_id, claims.expires_at)
        return StreamTicketResponse(
            ticket=ticket, expires_in=int(tickets.lifetime.total_seconds())
        )

    async def context_for_ticket(self, ticket: str) -> AuthContext:
        """The AuthContext of a stream ticket, which is used up.

        Raises:
            InvalidTokenError: unknown, used or expired ticket, or its sign-in has ended.
        """
        redeemed = await self._attached_tickets().redeem(ticket)
        if redeemed is None:
            raise InvalidTokenError()
        found = await self.store.session_user(redeemed.user_id, redeemed.session_id)
        if found is None or not found[0] or redeemed.access_expires_at <= utc_now():
            raise InvalidTokenError()
        expires = redeemed.access_expires_at
        return AuthContext(
            id=redeemed.user_id, role=found[1], expires_at=expires, session=redeemed.session_id
        )

    async def stale_sign_ins(self, sign_ins: set[SignIn]) -> set[SignIn]:
        """Those of ``(user id, sign-in id, role)`` whose sign-in ended, user was disabled or
        role changed: the hub ends their streams (every ``revalidate_interval`` seconds)."""
        current = await self.store.open_sign_ins({session for _user, session, _role in sign_ins})
        return {
            sign_in
            for sign_in in sign_ins
            if current.get(sign_in[1]) != (sign_in[0], sign_in[2])
        }

    def _attached_tickets(self) -> StreamTickets:
        if self._tickets is None:
            raise _not_attached()
        return self._tickets

    def _refresh_expiry(self, now: datetime) -> datetime:
        return now + self.config.refresh_token_lifetime

    def _tokens(self, issued: IssuedRefresh, now: datetime) -> TokenResponse:
        access = self.keyring.issue(issued.user.id, issued.user.role, issued.session_id, now)
        return TokenResponse(
            access_token=access,
            expires_in=self.keyring.lifetime_seconds,
            refresh_token=issued.token,
        )


def _not_attached() -> ConfigurationError:
    return ConfigurationError(
        "PasswordAuth is not attached: pass it as CapeBase(..., auth=PasswordAuth(...))"
    )


__all__ = ["PasswordAuth"]


MAX_LOGIN_LENGTH = 320
"""The longest email signup accepts; usernames are shorter."""


def _digest(login: str) -> str:
    return hashlib.sha256(login.encode("utf-8", "surrogatepass")).hexdigest()


def _not_attached_end_streams(user_id: str) -> None:
    raise _not_attached()
