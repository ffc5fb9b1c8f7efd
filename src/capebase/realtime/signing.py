"""Signed resume tokens: only the server issues them, for one stream, for a limited time.

A token is ``<position>.<issued>.<signature><hint>``: the position (``"41~38,39"``, see
``resume``), when it was issued (Unix seconds), a MAC over both and the stream it came from
(table, filters, caller id, and what the caller's read rule reads: role, claims, the rule as
built when the stream opened; see ``stream_binding``), and a short keyed digest of the stream
alone, which only words the reason of a reset. The MAC is keyed BLAKE2s, a MAC by design and
about twice as fast as HMAC-SHA256, which matters because every delivered change gets a token
of its own. A token that does not verify — forged, edited, for another stream or caller, for
a caller whose claims or rule changed since, older than ``RealtimeConfig.resume_token_ttl``,
or a bare change id — resumes nothing: the stream starts with a ``reset`` event instead.

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
from .canonical import canonical_text
from .resume import ResumePoint

KEY_NAME = "resume_token_key"
SIGNATURE_BYTES = 16
HINT_LENGTH = 12
"""Hex characters of a token's stream hint (``ResumeTokens._hint``)."""
MAX_TOKEN_LENGTH = 512
CLOCK_SKEW = 300
"""Seconds a token may seem to come from the future (the clocks of two processes differ)."""
DOMAIN = "capebase resume token v2"


class InvalidResumeToken(CapeBaseError):
    """A resume token that this app did not issue for this stream, or too old; ``reason``
    says which, for the ``reset`` event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StreamBinding:
    """What one stream's resume tokens are bound to.

    ``stream``: its table, filters and caller id; ``state``: what the caller's read rule
    reads of the caller and the clock (its role, its claims, and the rule as built when
    the stream opened, ``rule``), ``None`` when that cannot be written down canonically
    (``bindable`` is then false: the stream's tokens resume nothing). ``digest`` is what
    tokens are signed over; ``hint`` (set by ``ResumeTokens``) tells a token of the same
    stream whose state changed from a token of another stream.
    """

    __slots__ = ("bindable", "digest", "hint", "rule", "stream")

    def __init__(self, stream: bytes, state: bytes | None, rule: bytes | None) -> None:
        self.stream = stream
        self.rule = rule
        self.bindable = state is not None
        # A state that cannot be bound gets one of its own, which no other stream has.
        self.digest = hashlib.sha256(stream + (state or secrets.token_bytes(32))).digest()
        self.hint: str | None = None


def stream_binding(
    table: str,
    ctx: AuthContext,
    filters: Iterable[tuple[str, str]],
    *,
    rule: bytes | None,
) -> StreamBinding:
    """The binding of the stream of ``table`` with ``filters`` that ``ctx`` opens, under the
    read rule whose ``canonical.rule_fingerprint`` is ``rule`` (``None``: it has none).

    Everything a rule may read of the caller is bound: its id, its role and its claims
    (``ctx.context``), so a caller whose clearance or org changed reloads rather than
    resumes; ``expires_at`` and ``session`` are not (a refreshed credential resumes).
    """
    stream = hashlib.sha256(
        canonical_text([DOMAIN, str(table), ctx.id, sorted(filters)]).encode()
    ).digest()
    try:
        caller = canonical_text([ctx.role, ctx.context])
    except Exception:  # NotCanonical, or a mapping of the provider's that fails to iterate
        return StreamBinding(stream, None, rule)
    if rule is None:
        return StreamBinding(stream, None, rule)
    return StreamBinding(stream, hashlib.sha256(caller.encode() + rule).digest(), rule)


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

    def issue(
        self, binding: StreamBinding, position: str, *, issued_at: float | None = None
    ) -> str:
        """A token for the stream ``binding`` at ``position`` (``format_token``'s text),
        issued now or at ``issued_at`` (Unix seconds)."""
        issued = str(int(time.time() if issued_at is None else issued_at))
        signature = self._sign(binding.digest, position, issued)
        return f"{position}.{issued}.{signature}{self._hint(binding)}"

    def verify(self, binding: StreamBinding, raw: str) -> ResumePoint:
        """The resume point of a token this app issued for the stream ``binding``.

        Raises:
            InvalidResumeToken: anything else.
        """
        if len(raw) > MAX_TOKEN_LENGTH:
            raise InvalidResumeToken("resume token too long")
        position, dot, rest = raw.strip().partition(".")
        issued, dot2, signed = rest.partition(".")
        if not (dot and dot2 and issued.isdigit() and signed.isascii()):
            raise InvalidResumeToken("not a resume token issued by this server")
        signature, hint = signed[:-HINT_LENGTH], signed[-HINT_LENGTH:]
        if not hmac.compare_digest(self._sign(binding.digest, position, issued), signature):
            if not hmac.compare_digest(self._hint(binding), hint):
                raise InvalidResumeToken("resume token not issued by this server for this stream")
            if not binding.bindable:
                raise InvalidResumeToken(
                    "this stream's caller claims or read rule hold a value that cannot be "
                    "bound to a resume token"
                )
            raise InvalidResumeToken(
                "resume token does not match this stream's caller and read rule as they are "
                "now (the caller's role or claims changed, or the rule takes a value from the "
                "clock that moved)"
            )
        age = time.time() - int(issued)
        if age > self.ttl:
            raise InvalidResumeToken("resume token expired")
        if age < -CLOCK_SKEW:
            raise InvalidResumeToken("resume token issued in the future")
        try:
            return ResumePoint.parse(position)
        except QueryError as exc:  # signed by us, so never in practice
            raise InvalidResumeToken("malformed resume token") from exc

    def _sign(self, digest: bytes, position: str, issued: str) -> str:
        message = digest + f"{position}.{issued}".encode()
        return hashlib.blake2s(message, key=self._key, digest_size=SIGNATURE_BYTES).hexdigest()

    def _hint(self, binding: StreamBinding) -> str:
        """A keyed digest of the stream alone (table, filters, caller id), once per stream:
        on a token whose signature fails, it tells "issued for this stream, whose caller or
        rule changed since" from "not issued for this stream". Only a hint: the signature
        covers everything."""
        hint = binding.hint
        if hint is None:
            digest = hashlib.blake2s(
                b"hint\x00" + binding.stream, key=self._key, digest_size=HINT_LENGTH // 2
            )
            hint = binding.hint = digest.hexdigest()
        return hint


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
