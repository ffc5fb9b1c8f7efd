"""Signed resume tokens: only the server issues them, for one stream, for a limited time.

A token is ``<position>.<issued>.<signature>``: the position (``"41~38,39"``, see ``resume``),
when it was issued (Unix seconds), and a MAC over both and the stream it came from (table,
filters, caller): keyed BLAKE2s, a MAC by design and about twice as fast as HMAC-SHA256, which
matters because every delivered change gets a token of its own. A token that does not
verify — forged, edited, for another stream or caller, older than
``RealtimeConfig.resume_token_ttl``, or a bare change id — resumes nothing: the stream starts
with a ``reset`` event instead.

The key is ``RealtimeConfig.resume_token_secret`` or, by default, a random key the first
process of an app stores in ``capebase_meta``, so that every process of the app shares it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..changes.changelog import meta
from ..errors import CapeBaseError, QueryError
from ..identity.context import AuthContext
from .resume import ResumePoint

KEY_NAME = "resume_token_key"
SIGNATURE_BYTES = 16
MAX_TOKEN_LENGTH = 512
CLOCK_SKEW = 300
"""Seconds a token may seem to come from the future (the clocks of two processes differ)."""
DOMAIN = "capebase resume token v1"


class InvalidResumeToken(CapeBaseError):
    """A resume token that this app did not issue for this stream, or too old; ``reason``
    says which, for the ``reset`` event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def stream_binding(table: str, ctx: AuthContext, filters: Iterable[tuple[str, str]]) -> bytes:
    """The digest a stream's tokens are bound to: its table, its filters and its caller (id
    and role: a user whose role changed reloads rather than resumes)."""
    caller = "" if ctx.id is None else f"user:{ctx.id}"
    parts = [DOMAIN, table, caller, "" if ctx.role is None else f"role:{ctx.role}"]
    parts.extend(f"{name}={value}" for name, value in sorted(filters))
    return hashlib.sha256("\x00".join(parts).encode()).digest()


class ResumeTokens:
    """Issues and verifies the resume tokens of one app.

    Args:
        key: the HMAC key.
        ttl: seconds a token stays valid after it was issued.
    """

    __slots__ = ("_key", "ttl")

    def __init__(self, key: bytes, ttl: float) -> None:
        self._key = key
        self.ttl = ttl

    def issue(self, binding: bytes, position: str, *, issued_at: float | None = None) -> str:
        """A token for the stream ``binding`` at ``position`` (``format_token``'s text),
        issued now or at ``issued_at`` (Unix seconds)."""
        issued = str(int(time.time() if issued_at is None else issued_at))
        return f"{position}.{issued}.{self._sign(binding, position, issued)}"

    def verify(self, binding: bytes, raw: str) -> ResumePoint:
        """The resume point of a token this app issued for the stream ``binding``.

        Raises:
            InvalidResumeToken: anything else.
        """
        if len(raw) > MAX_TOKEN_LENGTH:
            raise InvalidResumeToken("resume token too long")
        position, dot, rest = raw.strip().partition(".")
        issued, dot2, signature = rest.partition(".")
        if not (dot and dot2 and issued.isdigit() and signature.isascii()):
            raise InvalidResumeToken("not a resume token issued by this server")
        expected = self._sign(binding, position, issued)
        if not hmac.compare_digest(expected, signature):
            raise InvalidResumeToken("resume token not issued by this server for this stream")
        age = time.time() - int(issued)
        if age > self.ttl:
            raise InvalidResumeToken("resume token expired")
        if age < -CLOCK_SKEW:
            raise InvalidResumeToken("resume token issued in the future")
        try:
            return ResumePoint.parse(position)
        except QueryError as exc:  # signed by us, so never in practice
            raise InvalidResumeToken("malformed resume token") from exc

    def _sign(self, binding: bytes, position: str, issued: str) -> str:
        message = binding + f"{position}.{issued}".encode()
        return hashlib.blake2s(message, key=self._key, digest_size=SIGNATURE_BYTES).hexdigest()


async def load_key(engine: AsyncEngine, secret: str | None) -> bytes:
    """The app's token key: derived from ``secret``, else the one stored in the database
    (stored now if this is the first process to need it)."""
    if secret is not None:
        return hashlib.sha256(f"{DOMAIN}\x00{secret}".encode()).digest()
    query = select(meta.c.value).where(meta.c.key == KEY_NAME)
    async with engine.connect() as connection:
        stored = (await connection.execute(query)).scalar()
    if stored is None:
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    meta.insert().values(key=KEY_NAME, value=secrets.token_urlsafe(32))
                )
        except IntegrityError:
            pass  # another process stored its key first: use that one
        async with engine.connect() as connection:
            stored = (await connection.execute(query)).scalar()
    if stored is None:
        raise RuntimeError("capebase_meta lost the resume token key")  # pragma: no cover
    return base64.urlsafe_b64decode(stored + "=" * (-len(stored) % 4))
