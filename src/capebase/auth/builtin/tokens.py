"""Tokens: signed JWT access tokens with key rotation, and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from .errors import InvalidTokenError

MIN_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
"""The accepted signing algorithms, each with the shortest secret it takes (its digest size)."""

MAX_TOKEN_LENGTH = 4096
"""Longer strings are rejected before any parsing."""

_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "sid"]


def key_id(secret: str) -> str:
    """The ``kid`` header naming ``secret``: a short digest, so rotation needs no key names."""
    return hashlib.sha256(b"capebase-kid:" + secret.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: str
    role: str | None
    session_id: str
    expires_at: datetime


class Keyring:
    """Signs access tokens with the current secret; verifies them with it or a previous one.

    Args:
        secret: the signing secret.
        previous_secrets: retired secrets whose tokens are still accepted until they expire.
        algorithm: "HS256", "HS384" or "HS512"; no other algorithm (``none`` included) verifies.
        issuer: the ``iss`` claim written and required.
        audience: the ``aud`` claim written and required.
        lifetime: how long an access token is valid.
    """

    def __init__(
        self,
        *,
        secret: str,
        previous_secrets: Sequence[str],
        algorithm: str,
        issuer: str,
        audience: str,
        lifetime: timedelta,
    ) -> None:
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.lifetime_seconds = math.ceil(lifetime.total_seconds())
        self._kid = key_id(secret)
        self._secret = secret
        self._keys = {key_id(s): s for s in [*previous_secrets, secret]}

    def issue(self, user_id: str, role: str | None, session_id: str, now: datetime) -> str:
        """A signed access token for ``user_id`` in sign-in ``session_id``, valid from ``now``."""
        issued_at = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "sid": session_id,
            "role": role,
            "iat": issued_at,
            "exp": issued_at + self.lifetime_seconds,
        }
        return jwt.encode(
            claims, self._secret, algorithm=self.algorithm, headers={"kid": self._kid}
        )

    def verify(self, token: str) -> AccessClaims:
        """The claims of ``token`` after checking its signature, expiry, issuer and audience.

        Raises:
            InvalidTokenError: for any reason at all; the reason is not disclosed.
        """
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError()
        try:
            header = jwt.get_unverified_header(token)
            # The header is attacker-controlled: it only picks among our own keys, and its
            # algorithm must be ours. PyJWT checks the algorithm again against the explicit list.
            key = self._keys.get(str(header.get("kid")))
            if key is None or header.get("alg") != self.algorithm:
                raise InvalidTokenError()
            claims = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError() from exc
        user_id, session_id, role = claims.get("sub"), claims.get("sid"), claims.get("role")
        if not isinstance(user_id, str) or not isinstance(session_id, str):
            raise InvalidTokenError()
        if role is not None and not isinstance(role, str):
            raise InvalidTokenError()
        return AccessClaims(
            user_id=user_id,
            role=role,
            session_id=session_id,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )


def new_refresh_token() -> str:
    """A new opaque refresh token (256 random bits)."""
    return secrets.token_urlsafe(32)


def refresh_token_digest(token: str) -> str:
    """What is stored for a refresh token: its SHA-256, enough for a random 256-bit value."""
    return hashlib.sha256(token.encode()).hexdigest()
