"""Stream tickets: short-lived, single-use stand-ins for an access token in a stream's URL.

``EventSource`` cannot send an ``Authorization`` header, and an ``?access_token=`` in a URL
ends up in access logs and proxies' logs for as long as the token lives. A page instead asks
``POST /auth/stream-ticket`` (with its bearer token) for a ticket and opens the stream with
``?ticket=``: the ticket works once, on a stream route, within ``TICKET_LIFETIME``; the stream
then acts as the token's user until the token would have expired.

Tickets are stored (as SHA-256 digests) in ``capebase_stream_tickets``, so that any process of
the app redeems a ticket another issued, and only one of them can.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import Column, DateTime, String, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ...identity.secret_fields import SECRET
from .models import as_utc, metadata, utc_now

TICKET_PARAMETER = "ticket"
"""The query parameter a stream takes its ticket from."""

TICKET_LIFETIME = timedelta(seconds=30)
"""How long a ticket may wait for its stream."""

stream_tickets = Table(
    "capebase_stream_tickets",
    metadata,
    Column("ticket_hash", String(64), primary_key=True, info={SECRET: True}),
    Column("user_id", String(36), nullable=False),
    Column("session_id", String(36), nullable=False),
    Column("access_expires_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)


class StreamTicketResponse(BaseModel):
    """``POST /auth/stream-ticket``'s answer."""

    ticket: str
    expires_in: int
    """Seconds the ticket may wait for its stream."""


@dataclass(frozen=True, slots=True)
class Redeemed:
    """Whose ticket it was: the sign-in it was issued to, and when its access token expires."""

    user_id: str
    session_id: str
    access_expires_at: datetime


class StreamTickets:
    """Issues and redeems the stream tickets of one app, on ``engine``."""

    def __init__(self, engine: AsyncEngine, lifetime: timedelta = TICKET_LIFETIME) -> None:
        self.engine = engine
        self.lifetime = lifetime

    async def issue(self, user_id: str, session_id: str, access_expires_at: datetime) -> str:
        """A new ticket for sign-in ``session_id`` of ``user_id`` (shown to the client once)."""
        ticket = secrets.token_urlsafe(32)
        now = utc_now()
        async with self.engine.begin() as connection:
            # Tickets nobody redeemed: removed here, no task needed.
            await connection.execute(
                delete(stream_tickets).where(stream_tickets.c.expires_at < now - self.lifetime)
            )
            await connection.execute(
                stream_tickets.insert().values(
                    ticket_hash=_digest(ticket),
                    user_id=user_id,
                    session_id=session_id,
                    access_expires_at=access_expires_at,
                    expires_at=now + self.lifetime,
                )
            )
        return ticket

    async def redeem(self, ticket: str) -> Redeemed | None:
        """Use up ``ticket``: whose it was, or ``None`` when it is unknown, used or expired."""
        digest = _digest(ticket)
        async with self.engine.begin() as connection:
            row = (
                await connection.execute(
                    select(stream_tickets).where(stream_tickets.c.ticket_hash == digest)
                )
            ).first()
            if row is None:
                return None
            # Whoever deletes the row redeems the ticket: of two concurrent uses one wins.
            result = await connection.execute(
                delete(stream_tickets).where(stream_tickets.c.ticket_hash == digest)
            )
        if result.rowcount != 1 or as_utc(row.expires_at) <= utc_now():
            return None
        return Redeemed(row.user_id, row.session_id, as_utc(row.access_expires_at))


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()
