"""The broker interface: how app processes wake each other when changes commit.

The change log stays the source of truth; a broker message only says "read the log", so a
lost message delays delivery until the next poll, and never loses a change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator


class BrokerBackend(ABC):
    """A tiny pub/sub of bytes. Subclasses implement all four methods."""

    @abstractmethod
    async def connect(self) -> None:
        """Open connections; raise if the broker cannot be reached."""

    @abstractmethod
    async def disconnect(self) -> None:
        """Close connections; safe to call twice."""

    @abstractmethod
    async def publish(self, channel: str, message: bytes) -> None:
        """Send ``message`` to every process listening on ``channel``."""

    @abstractmethod
    def listen(self, channel: str) -> AsyncIterator[bytes]:
        """Messages on ``channel`` as they arrive; ends or raises when the connection is lost."""
