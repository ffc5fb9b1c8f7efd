"""Settings of the built-in password auth, validated once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pwdlib import PasswordHash

from ...errors import ConfigurationError
from ...placeholders import DEV_VARIABLE, is_dev, placeholder_reason
from .schemas import MAX_PASSWORD_LENGTH, normalize_email
from .tokens import MIN_KEY_BYTES

_SECRET_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(64))'"


@dataclass(frozen=True, kw_only=True, slots=True)
class PasswordAuthConfig:
    """How the built-in auth signs tokens, stores users and resists guessing.

    Args:
        secret: the key access tokens are signed with (at least 32 bytes for HS256, 48 for
            HS384, 64 for HS512). Keep it out of the code, e.g. in an environment variable.
        previous_secrets: retired keys whose tokens are still accepted (each token names its
            key in the ``kid`` header). To rotate: make the old secret a previous one, set a new
            ``secret``, and drop the old one once ``access_token_lifetime`` has passed.
        algorithm: "HS256", "HS384" or "HS512"; tokens signed otherwise (``none``!) are refused.
        issuer: the ``iss`` claim; tokens from another issuer are refused.
        audience: the ``aud`` claim; tokens for another audience are refused.
        access_token_lifetime: how long an access token (and a stream opened with it) lasts.
        refresh_token_lifetime: how long an unused refresh token lasts; each refresh starts anew.
        prefix: where the routes are mounted (``/auth/token`` and so on).
        allow_signup: mount ``POST {prefix}/signup``; without it only admins create users.
        default_role: the role of users who sign up.
        admin_role: the role given to ``initial_admin``.
        initial_admin: ``(email, password)`` of an admin created at startup if that email has
            no account yet (an existing account is left as it is).
        min_password_length: the shortest password accepted at sign-up (422 below).
        max_failed_logins: failed sign-ins that lock an account for ``lockout_time``.
        max_failed_logins_per_address: failed sign-ins that lock a client address.
        lockout_time: how long a lockout lasts, and the window failures are counted in.
        password_hash: a pwdlib ``PasswordHash`` (default: argon2 with pwdlib's parameters).
        dev: development mode: start even with a placeholder ``secret`` or ``initial_admin``
            password (``"x" * 64``, ``"change-me"``…), which otherwise stops the app at
            startup. ``CAPEBASE_DEV=1`` in the environment does the same. Never in production.
    """

    secret: str = field(repr=False)
    previous_secrets: Sequence[str] = field(default=(), repr=False)
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    issuer: str = "capebase"
    audience: str = "capebase"
    access_token_lifetime: timedelta = timedelta(minutes=15)
    refresh_token_lifetime: timedelta = timedelta(days=30)
    prefix: str = "/auth"
    allow_signup: bool = True
    default_role: str | None = None
    admin_role: str = "admin"
    initial_admin: tuple[str, str] | None = field(default=None, repr=False)
    min_password_length: int = 8
    max_failed_logins: int = 5
    max_failed_logins_per_address: int = 50
    lockout_time: timedelta = timedelta(minutes=15)
    password_hash: PasswordHash | None = field(default=None, repr=False)
    dev: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "previous_secrets", tuple(self.previous_secrets))
        if self.algorithm not in MIN_KEY_BYTES:
            raise ConfigurationError(
                f"PasswordAuth algorithm must be one of {', '.join(MIN_KEY_BYTES)}, "
                f"got {self.algorithm!r}"
            )
        least = MIN_KEY_BYTES[self.algorithm]
        for name, secret in [("secret", self.secret)] + [
            ("previous_secrets", s) for s in self.previous_secrets
        ]:
            if not isinstance(secret, str) or len(secret.encode()) < least:
                raise ConfigurationError(
                    f"PasswordAuth {name} must be a string of at least {least} bytes for "
                    f"{self.algorithm}; {_SECRET_HINT}"
                )
        for name in ("access_token_lifetime", "refresh_token_lifetime", "lockout_time"):
            if getattr(self, name) <= timedelta(0):
                raise ConfigurationError(f"PasswordAuth {name} must be a positive timedelta")
        if self.access_token_lifetime >= self.refresh_token_lifetime:
            raise ConfigurationError(
                "PasswordAuth access_token_lifetime must be shorter than refresh_token_lifetime"
            )
        if not self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ConfigurationError("PasswordAuth prefix must start and not end with '/'")
        if not self.issuer or not self.audience:
            raise ConfigurationError("PasswordAuth issuer and audience must not be empty")
        if not 1 <= self.min_password_length <= MAX_PASSWORD_LENGTH:
            raise ConfigurationError(
                f"PasswordAuth min_password_length must be between 1 and {MAX_PASSWORD_LENGTH}"
            )
        if self.max_failed_logins < 1 or self.max_failed_logins_per_address < 1:
            raise ConfigurationError("PasswordAuth max_failed_logins* must be at least 1")
        if self.initial_admin is not None:
            self._check_initial_admin(self.initial_admin)

    def check_not_placeholders(self) -> list[str]:
        """Refuse a placeholder ``secret``, previous secret or initial admin password, unless in
        development mode; returns what development mode let through, for a warning.

        Raises:
            ConfigurationError: a placeholder outside development mode.
        """
        values = [("secret", self.secret)]
        values += [("previous_secrets", s) for s in self.previous_secrets]
        if self.initial_admin is not None:
            values.append(("initial_admin password", self.initial_admin[1]))
        found = [(name, why) for name, value in values if (why := placeholder_reason(value))]
        if found and not is_dev(self.dev):
            name, why = found[0]
            hint = _SECRET_HINT if "secret" in name else "choose a strong one"
            raise ConfigurationError(
                f"PasswordAuth {name} looks like a placeholder ({why}); {hint}. For "
                f"development only, pass PasswordAuth(dev=True) or set {DEV_VARIABLE}=1."
            )
        return [name for name, _why in found]

    def _check_initial_admin(self, admin: Any) -> None:
        if not (isinstance(admin, tuple) and len(admin) == 2):
            raise ConfigurationError("PasswordAuth initial_admin must be (email, password)")
        email, password = admin
        try:
            normalize_email(str(email))
        except ValueError:
            raise ConfigurationError(
                f"PasswordAuth initial_admin email {email!r} is not an email address"
            ) from None
        if not isinstance(password, str) or not (
            self.min_password_length <= len(password) <= MAX_PASSWORD_LENGTH
        ):
            raise ConfigurationError(
                "PasswordAuth initial_admin password must be a string of at least "
                f"{self.min_password_length} characters (read it from the environment)"
            )
