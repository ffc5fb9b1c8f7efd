"""A subscriber that cannot keep up is dropped (and can resume); the others never wait."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

import httpx
from httpx_sse import EventSource
from sqlalchemy import insert
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.realtime._app import Task, make_app, who
from tests.realtime._live import dispatched, position, serve, sse, wait_until, ws

BATCH = 20
QUEUE_SIZE = 50  # more than a batch: a subscriber that reads keeps up
MAX_BATCHES = 400
SMALL_BUFFER = 4096
"""The server's kernel send buffer per connection: small, so a stalled client stalls it soon."""


def overflowed(cape: Any, user: str) -> bool:
    """Whether the hub dropped ``user``'s stream for falling behind."""
    return any(
        subscriber.ctx.id == user and subscriber.overflowed
        for index in cape.hub._indexes.values()
        for subscriber in index
    )


async def test_a_slow_subscriber_is_dropped_and_the_others_keep_up(db_url: str) -> None:
    app, cape = make_app(db_url, queue_size=QUEUE_SIZE)
    async with (
        serve(app, send_buffer=SMALL_BUFFER) as live,
        sse(live, who("fast-sse", role="admin")) as fast_sse,
        ws(live, who("fast-ws", role="admin")) as fast_ws,
        httpx.AsyncClient(base_url=live.url, timeout=30) as slow_client,
        slow_client.stream(
            "GET", "/rt_task/subscribe", headers=who("slow-sse", role="admin")
        ) as slow_sse,  # never read until it has been dropped
    ):
        # Uncompressed, and never read: the client stops reading its socket once one message
        # waits (max_queue=1), and its small receive buffer fills soon, so the server stalls.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", live.port))
        async with ws_connect(
            f"{live.ws_url}/rt_task/subscribe",
            sock=raw,
            max_queue=1,
            proxy=None,
            compression=None,
            additional_headers=who("slow-ws", role="admin"),
        ) as slow_ws:
            batches = 0
            while not (overflowed(cape, "slow-sse") and overflowed(cape, "slow-ws")):
                assert batches < MAX_BATCHES, "the slow subscribers were never dropped"
                await write_batch(cape, batches)
                batches += 1
                await wait_until(
                    lambda n=batches * BATCH: len(fast_sse.messages) == len(fast_ws.messages) == n,
                    what=f"the fast subscribers to get batch {batches}",
                )
            # Once the slow ones are gone, the fast ones still get everything.
            await write_batch(cape, batches)
            await dispatched(cape)
            total = (batches + 1) * BATCH
            await wait_until(
                lambda: len(fast_sse.messages) == len(fast_ws.messages) == total,
                what="the fast subscribers to get the last batch",
            )

            # The slow SSE client reads now: a prefix of the stream, then `overflow`, then the end.
            slow_messages: list[dict[str, Any]] = []
            slow_tokens: list[str] = []
            opened_at = ""
            controls: list[dict[str, Any]] = []
            async for event in EventSource(slow_sse).aiter_sse():
                if not event.data:
                    continue
                if event.event == "ready":
                    opened_at = event.id
                elif event.event == "overflow":
                    controls.append(json.loads(event.data))
                elif event.event == "message":
                    slow_messages.append(json.loads(event.data))
                    slow_tokens.append(event.id)
            # The slow WebSocket client: a prefix, then close code 1013 (try again later).
            ws_messages: list[dict[str, Any]] = []
            try:
                async for text in slow_ws:
                    message = json.loads(text)
                    if message["event"] == "ready":
                        continue
                    message.pop("resume")  # this stream's own token; the change is shared
                    ws_messages.append(message)
            except ConnectionClosed:
                pass
            assert slow_ws.close_code == 1013

        assert (
            len(slow_messages) < total and slow_messages == fast_sse.messages[: len(slow_messages)]
        )
        assert len(ws_messages) < total and ws_messages == fast_ws.messages[: len(ws_messages)]
        assert fast_ws.messages == fast_sse.messages
        assert [c["event"] for c in controls] == ["overflow"]
        # Where it stopped (tokens name a position and when they were issued).
        overflow_token = controls[0]["resume"]
        if slow_tokens:
            assert position(overflow_token) == position(slow_tokens[-1])
        else:
            assert overflow_token is None

        # The dropped subscriber resumes where it stopped and misses nothing.
        resume = overflow_token or opened_at
        async with sse(live, {**who("slow-sse", role="admin"), "Last-Event-ID": resume}) as back:
            await wait_until(
                lambda: len(slow_messages) + len(back.messages) >= total,
                what="the resumed stream to catch up",
            )
        assert slow_messages + back.messages == fast_sse.messages
        await wait_until(lambda: cape.hub.subscriber_count == 2, what="dropped streams to go")


async def write_batch(cape: Any, number: int) -> None:
    async with cape.get_privileged_session() as session:
        # Random titles: a compressing transport must not make the events small.
        rows = [
            {"title": f"{number}-{i}-{os.urandom(100).hex()}", "owner_id": "writer"}
            for i in range(BATCH)
        ]
        await session.execute(insert(Task), rows)
        await session.commit()
