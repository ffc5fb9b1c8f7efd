"""``redis://``: Redis pub/sub through redis.asyncio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ...errors import ConfigurationError
from .base import BrokerBackend


class RedisBackend(BrokerBackend):
    """PUBLISH/SUBSCRIBE on one channel; the change log covers anything missed."""

    def __init__(self, url: str) -> None:
        try:
            import redis.asyncio as redis
        except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
            raise ConfigurationError(
                "The redis broker needs redis-py: pip install 'capebase[redis]'"
            ) from exc
        self._redis_module = redis
        self._url = url
        self._client: Any = None

    async def connect(self) -> None:
        self._client = self._redis_module.from_url(
            self._url, socket_connect_timeout=5, socket_timeout=None, health_check_interval=10
        )
        await self._client.ping()

    async def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def publish(self, channel: str, message: bytes) -> None:
        if self._client is None:
            await self.connect()
        await self._client.publish(channel, message)

    async def listen(self, channel: str) -> AsyncIterator[bytes]:
        client = self._redis_module.from_url(self._url, socket_connect_timeout=5)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None:
                    await pubsub.ping()  # raises when the connection is gone
                    continue
                yield bytes(message["data"])
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8.2
            await client.aclose()
