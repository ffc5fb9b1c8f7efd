"""Broker backends, chosen by URL scheme and imported only when chosen."""

from __future__ import annotations

from ...errors import ConfigurationError
from .base import BrokerBackend

__all__ = ["BrokerBackend", "broker_from_url"]


def broker_from_url(url: str | BrokerBackend) -> BrokerBackend:
    """The backend for ``url``: ``memory://``, ``postgresql://…`` or ``redis://…``.

    Raises:
        ConfigurationError: unknown scheme, or the backend's dependency is missing.
    """
    if isinstance(url, BrokerBackend):
        return url
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme == "memory":
        from .memory import MemoryBackend

        return MemoryBackend(url)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresBackend

        return PostgresBackend(url.replace("postgres://", "postgresql://", 1))
    if scheme in ("redis", "rediss"):
        from .redis import RedisBackend

        return RedisBackend(url)
    raise ConfigurationError(
        f"Unknown broker URL {url!r}; use memory://, postgresql://host/db or redis://host:port"
    )
