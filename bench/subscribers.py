"""Load-generating stream clients for the realtime benchmark, run in separate processes.

Each process holds thousands of SSE or WebSocket connections on raw asyncio protocols and
parses just enough: it finds the writer's stamp (``"rt <seq> <time.time()>"`` in the row's task)
in each message and records ``(seq, receive time - stamp)``. The parent drives the processes
over pipes with a handful of commands; see ``ClientPool``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import multiprocessing
import os
import socket
import struct
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from .apps.common import raise_fd_limit
from .procs import LOAD_CORE

MARK = b'"rt '
CONNECT_TIMEOUT = 60.0
COMMAND_TIMEOUT = 300.0
CONNECTS_IN_FLIGHT = 64
Sample = tuple[int, float]


class _Stream(asyncio.Protocol):
    """One subscription. ``ready`` resolves to "" once the response head arrived (or to the
    status line when it is not the expected one)."""

    def __init__(self, request: bytes, websocket: bool, record: Callable[[bytes, float], None],
                 ready: asyncio.Future[str]) -> None:
        self.request = request
        self.websocket = websocket
        self.record = record
        self.ready = ready
        self.buffer = b""
        self.in_body = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(f"connection lost: {exc}")

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data
        if not self.in_body:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            status = buffer[: buffer.find(b"\r\n")]
            expected = b" 101 " if self.websocket else b" 200 "
            if not self.ready.done():
                self.ready.set_result("" if expected in status + b" " else status.decode())
            self.in_body = True
            buffer = buffer[end + 4:]
        if self.websocket:
            self.buffer = self._frames(buffer, now)
            return
        cut = buffer.rfind(b"\n")
        if cut < 0:
            self.buffer = buffer
            return
        self.buffer = buffer[cut + 1:]
        self.record(buffer[:cut], now)

    def _frames(self, buffer: bytes, now: float) -> bytes:
        while len(buffer) >= 2:
            opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    break
                length, offset = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                length, offset = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < offset + length:
                break
            payload, buffer = buffer[offset: offset + length], buffer[offset + length:]
            if opcode == 0x9 and self.transport is not None:  # ping: answer with a masked pong
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
            elif opcode in (0x0, 0x1):
                self.record(payload, now)
        return buffer

    def abort(self) -> None:
        """Close at once with a reset, leaving no TIME_WAIT socket behind."""
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


def _request(port: int, user: str, websocket: bool) -> bytes:
    lines = ["GET /todo/subscribe HTTP/1.1", f"Host: 127.0.0.1:{port}", f"X-User-Id: {user}"]
    if websocket:
        key = base64.b64encode(os.urandom(16)).decode()
        lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                  "Sec-WebSocket-Version: 13"]
    else:
        lines += ["Accept: text/event-stream", "Cache-Control: no-cache"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Client:
    """The state of one client process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: list[_Stream] = []
        self.samples: list[Sample] = []

    def record(self, chunk: bytes, now: float) -> None:
        position = chunk.find(MARK)
        while position >= 0:
            start = position + len(MARK)
            end = chunk.find(b'"', start)
            seq, _, stamp = chunk[start:end].partition(b" ")
            with contextlib.suppress(ValueError):
                self.samples.append((int(seq), now - float(stamp)))
            position = chunk.find(MARK, end)

    async def connect(self, users: list[str], websocket: bool) -> tuple[int, list[str]]:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        failures: list[str] = []

        async def one(user: str) -> None:
            async with gate:
                ready: asyncio.Future[str] = loop.create_future()
                stream = _Stream(_request(self.port, user, websocket), websocket, self.record,
                                 ready)
                try:
                    await loop.create_connection(lambda: stream, "127.0.0.1", self.port)
                    problem = await asyncio.wait_for(ready, CONNECT_TIMEOUT)
                except (OSError, TimeoutError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if problem:
                    failures.append(problem)
                    stream.abort()
                else:
                    self.streams.append(stream)

        await asyncio.gather(*(one(u) for u in users))
        return len(users) - len(failures), failures[:5]

    def close(self) -> None:
        for stream in self.streams:
            stream.abort()
        self.streams.clear()


def _client_main(pipe: Connection, port: int) -> None:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {int(LOAD_CORE)})
    raise_fd_limit()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(_serve(pipe, port))


async def _serve(pipe: Connection, port: int) -> None:
    client = _Client(port)
    loop = asyncio.get_running_loop()
    while True:
        # A blocking read in a thread: an event-loop reader would make the pipe non-blocking,
        # and a large command (thousands of user names) then arrives in pieces recv() rejects.
        command, *args = await loop.run_in_executor(None, pipe.recv)
        if command == "connect":
            pipe.send(await client.connect(*args))
        elif command == "count":
            pipe.send(len(client.samples))
        elif command == "take":
            pipe.send(client.samples)
            client.samples = []
        elif command == "close":
            client.close()
            pipe.send(True)
            return


class ClientPool:
    """``processes`` client processes pinned to the load core, driven from the parent."""

    def __init__(self, port: int, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        for _ in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=_client_main, args=(child, port), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def _ask(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)
        replies = []
        for pipe in self.pipes:
            if not pipe.poll(COMMAND_TIMEOUT):
                raise TimeoutError("a stream client did not answer")
            replies.append(pipe.recv())
        return replies

    def connect(self, users: list[str], *, websocket: bool) -> tuple[int, list[str]]:
        """Open one stream per user, spread over the processes; (opened, sample failures)."""
        shares = [users[i:: len(self.pipes)] for i in range(len(self.pipes))]
        replies = self._ask([("connect", share, websocket) for share in shares])
        return sum(r[0] for r in replies), [f for r in replies for f in r[1]][:5]

    def count(self) -> int:
        return sum(self._ask([("count",)] * len(self.pipes)))

    def take(self) -> list[Sample]:
        return [s for reply in self._ask([("take",)] * len(self.pipes)) for s in reply]

    def wait_for(self, total: int, timeout: float, poll: float = 0.02) -> int:
        """Wait until ``total`` samples arrived in all (or ``timeout``); the count seen."""
        deadline = time.monotonic() + timeout
        seen = self.count()
        while seen < total and time.monotonic() < deadline:
            time.sleep(poll)
            seen = self.count()
        return seen

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ask([("close",)] * len(self.pipes))
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
