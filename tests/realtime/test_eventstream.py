"""The SSE response on the wire: its exact bytes, a client leaving, a server stopping, and what
an idle stream holds (capebase's own response; sse-starlette is gone)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator

import pytest

from capebase import AuthContext
from capebase.http.streams.stream import Stream
from tests.realtime._app import Task, make_app, who
from tests.realtime._live import LiveServer, position, serve, wait_until

IDLE = 60.0
"""A heartbeat interval no test waits for: whatever ends a stream here is not a heartbeat."""


class RawStream:
    """An SSE request over a plain socket, keeping every byte of the response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received = b""

    async def read_until(self, marker: bytes, within: float = 5.0, *, count: int = 1) -> bytes:
        """Read until ``marker`` has arrived ``count`` times; everything so far."""
        async with asyncio.timeout(within):
            while self.received.count(marker) < count:
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise AssertionError(f"connection closed before {marker!r}: {self.received!r}")
                self.received += chunk
        return self.received

    async def read_to_end(self, within: float = 5.0) -> bytes:
        async with asyncio.timeout(within):
            while chunk := await self.reader.read(65536):
                self.received += chunk
        return self.received


@contextlib.asynccontextmanager
async def raw_stream(live: LiveServer, user: str, query: str = "") -> AsyncIterator[RawStream]:
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    head = [f"GET /rt_task/subscribe{query} HTTP/1.1", f"Host: 127.0.0.1:{live.port}"]
    head += [f"{name}: {value}" for name, value in who(user).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    try:
        yield RawStream(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_the_wire_format_is_unchanged(sqlite_url: str) -> None:
    """Headers, the ``ready`` event, a change with its ``id:``, then the end at shutdown
    (chunked encoding's terminator: the response ended, it was not cut off)."""
    app, cape = make_app(sqlite_url, heartbeat=IDLE)
    async with serve(app) as live, raw_stream(live, "alice") as stream:
        received = await stream.read_until(b"event: ready")
        head = received.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 200")
        assert b"content-type: text/event-stream; charset=utf-8" in head
        assert b"cache-control: no-store" in head
        assert b"x-accel-buffering: no" in head
        assert b"transfer-encoding: chunked" in head
        token = re.search(rb"id: (\S+)\r\nevent: ready\r\n", received)
        assert token is not None and position(token[1].decode()) == str(cape.hub.cursor)
        assert (
            b"id: %s\r\nevent: ready\r\ndata: {\"event\": \"ready\", \"id\": \"%s\"}\r\n\r\n"
            % (token[1], token[1])
        ) in received
        async with cape.get_session(AuthContext(id="alice")) as session:
            session.add(Task(title="wire"))
            await session.commit()
        received = await stream.read_until(b'"wire"')
        frame = received[received.rindex(b"id: ") :]
        token = frame[4 : frame.index(b"\r\n")].decode()
        change_id = int(position(token))
        assert frame.startswith(f'id: {token}\r\ndata: {{"id":{change_id},'.encode())
        assert b'"event":"INSERT"' in frame and frame.endswith(b"\r\n\r\n")
        await live.stop()
        assert (await stream.read_to_end()).endswith(b"\r\n0\r\n\r\n")


async def test_heartbeats_are_comment_lines(sqlite_url: str) -> None:
    app, _cape = make_app(sqlite_url, heartbeat=0.1)
    async with serve(app) as live, raw_stream(live, "alice") as stream:
        await stream.read_until(b"event: ready")
        await stream.read_until(b": heartbeat\r\n\r\n", count=3)


async def test_a_client_that_leaves_is_noticed_at_once(sqlite_url: str) -> None:
    """Not at the next heartbeat or change: the stream unsubscribes as soon as the socket
    closes, and leaves no task behind."""
    app, cape = make_app(sqlite_url, heartbeat=IDLE)
    async with serve(app) as live:
        await wait_until(lambda: len(asyncio.all_tasks()) > 0)
        async with raw_stream(live, "alice") as warm:
            await warm.read_until(b"event: ready")
        await wait_until(lambda: cape.hub.subscriber_count == 0, what="the warm-up to end")
        baseline = len(asyncio.all_tasks())
        async with raw_stream(live, "alice") as stream:
            await stream.read_until(b"event: ready")
            assert cape.hub.subscriber_count == 1
        left = time.monotonic()
        await wait_until(lambda: cape.hub.subscriber_count == 0, within=2, what="unsubscribe")
        assert time.monotonic() - left < 1
        await wait_until(lambda: len(asyncio.all_tasks()) <= baseline, what="its tasks to end")


async def test_an_idle_stream_holds_two_tasks_at_most(sqlite_url: str) -> None:
    """The ASGI call and the wait for the client to leave: no task group, no timer task."""
    app, cape = make_app(sqlite_url, heartbeat=IDLE)
    streams = 20
    async with serve(app) as live, contextlib.AsyncExitStack() as stack:
        async with raw_stream(live, "warm") as warm:
            await warm.read_until(b"event: ready")
        await wait_until(lambda: cape.hub.subscriber_count == 0, what="the warm-up to end")
        baseline = len(asyncio.all_tasks())
        for number in range(streams):
            stream = await stack.enter_async_context(raw_stream(live, f"user{number}"))
            await stream.read_until(b"event: ready")
        await asyncio.sleep(0.2)  # let anything a stream starts lazily start
        assert len(asyncio.all_tasks()) - baseline <= 2 * streams


async def test_shutdown_ends_idle_streams_without_waiting_for_the_grace_period(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn waits for open responses before the lifespan shutdown; the streams must end
    by themselves, well before its graceful-shutdown timeout (10 s here) cuts them."""
    app, cape = make_app(sqlite_url, heartbeat=IDLE)
    async with serve(app) as live, contextlib.AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(raw_stream(live, f"u{n}")) for n in range(5)]
        for stream in streams:
            await stream.read_until(b"event: ready")
        started = time.monotonic()
        await live.stop()
        assert time.monotonic() - started < 3
        for stream in streams:
            assert (await stream.read_to_end()).endswith(b"\r\n0\r\n\r\n")
    assert cape.hub.subscriber_count == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_a_backlog_is_handed_over_in_one_batch(sqlite_url: str) -> None:
    """Changes queued while the stream was busy are written together, in order, each with
    its own resume token."""
    app, cape = make_app(sqlite_url, heartbeat=IDLE)
    async with serve(app):
        subscriber = cape.hub.add_subscriber(cape.hub.views["rt_task"], AuthContext(id="alice"), [])
        try:
            binding = cape.hub.binding("rt_task", subscriber.ctx, [])
            stream = Stream(cape.hub, subscriber, None, binding, IDLE)
            async with contextlib.aclosing(stream.replay()) as replay:
                assert [batch async for batch in replay] == []
            assert stream.poll() is None  # nothing yet
            async with cape.get_session(AuthContext(id="alice")) as session:
                session.add_all(Task(title=f"t{n}") for n in range(3))
                await session.commit()
            await wait_until(lambda: subscriber.queue.qsize() == 3, what="three queued")
            batch = stream.poll()
            assert batch is not None and len(batch) == 3
            assert [position(d.token) for d in batch] == [str(d.change_id) for d in batch]
            assert [d.change_id for d in batch] == sorted(d.change_id for d in batch)
            assert stream.poll() is None
        finally:
            cape.hub.remove_subscriber(subscriber)
