"""AuthContext: who is acting, as every part of capebase sees it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class AuthContext:
    """The identity a request, session or stream acts as.

    Args:
        id: the user's unique id, or ``None`` for an anonymous caller.
        role: the user's role, used by rules with ``role=``.
        context: extra values rules can match with ``context_fields=`` or ``where=``.
        expires_at: when the credential behind this context expires (aware datetime);
            open streams end at that moment. ``None``: they never expire on their own.
        session: the sign-in this context belongs to, when the provider can end sign-ins (the
            built-in auth): each process re-checks its open streams' sign-ins periodically.

    ``AuthContext()`` is the anonymous caller.
    """

    id: str | None = None
    role: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None
    session: str | None = None

    def __post_init__(self) -> None:
        # Ids arrive from JWTs, databases and headers as ints, UUIDs or strings; rules compare
        # them as text, so normalise once here.
        if self.id is not None and not isinstance(self.id, str):
            object.__setattr__(self, "id", str(self.id))

    @property
    def is_anonymous(self) -> bool:
        """True when the caller has no identity."""
        return self.id is None
