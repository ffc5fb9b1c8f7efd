"""A change committed but not yet handled when its process dies (SIGKILL) is handled after
a restart: handlers are at least once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from capebase.changes.change import ModelChange
from capebase.changes.changelog import changes
from tests.realtime._app import who
from tests.realtime._crash_app import HANDLER_LEASE, build
from tests.realtime._live import free_socket, serve, wait_until

ROOT = Path(__file__).resolve().parents[2]
STARTUP = 30.0  # a fresh interpreter importing the stack, on a busy machine


def environment(db_url: str) -> dict[str, str]:
    return {**os.environ, "CRASH_DB_URL": db_url, "PYTHONPATH": str(ROOT)}


async def killed(process: asyncio.subprocess.Process) -> None:
    """Wait for ``process`` to die, and check it was SIGKILL that ended it."""
    code = await asyncio.wait_for(process.wait(), STARTUP)
    assert code == -signal.SIGKILL, f"exited with {code}, not by SIGKILL"


async def claims(db_url: str) -> list[dict[str, Any]]:
    """The change log's handler state, in id order."""
    _, cape = build(db_url, lambda change: None)
    try:
        async with cape.engine.connect() as connection:
            rows = await connection.execute(
                select(
                    changes.c.id,
                    changes.c.op,
                    changes.c.handlers_pending,
                    changes.c.claimed_by,
                    changes.c.claimed_at,
                ).order_by(changes.c.id)
            )
            return [dict(row._mapping) for row in rows]
    finally:
        await cape.engine.dispose()


async def restart_and_collect(db_url: str, expected: int) -> list[tuple[int, str, str]]:
    """Start the app again (in this process) and return what its handler got."""
    got: list[tuple[int, str, str]] = []

    async def record(change: ModelChange[Any]) -> None:
        got.append((change.id, change.event, change.payload.title))

    app, _ = build(db_url, record)
    async with serve(app):
        # The sweep that retries dead claims runs at startup and every few seconds.
        await wait_until(
            lambda: len(got) >= expected,
            within=15,
            what="the restarted process to handle the changes",
        )
    return got


async def test_changes_committed_by_a_killed_writer_are_handled_after_restart(
    db_url: str,
) -> None:
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.realtime._crash_app",
        "write",
        cwd=ROOT,
        env=environment(db_url),
    )
    await killed(writer)
    logged = await claims(db_url)
    assert [(r["op"], r["handlers_pending"], r["claimed_by"]) for r in logged] == [
        ("INSERT", True, None),
        ("UPDATE", True, None),
    ], "committed, never dispatched"

    got = await restart_and_collect(db_url, expected=2)
    assert got == [(logged[0]["id"], "INSERT", "written"), (logged[1]["id"], "UPDATE", "written")]
    assert not any(r["handlers_pending"] for r in await claims(db_url))


async def test_a_change_whose_handler_died_with_its_process_is_handled_after_restart(
    db_url: str,
) -> None:
    sock = free_socket()
    sock.listen()
    port = sock.getsockname()[1]
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "tests.realtime._crash_app:dying_app",
        "--fd",
        str(sock.fileno()),
        "--log-level",
        "warning",
        cwd=ROOT,
        env=environment(db_url),
        pass_fds=[sock.fileno()],
    )
    sock.close()  # the server has its own copy
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def up() -> bool:
                try:
                    return (await client.get("/rt_task", headers=who("alice"))).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(up, within=STARTUP, what="the app subprocess to serve")
            response = await client.post("/rt_task", json={"title": "fatal"}, headers=who("alice"))
            assert response.status_code == 201  # committed before the handler runs
        await killed(server)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()

    [change] = await claims(db_url)
    assert change["handlers_pending"] and change["claimed_by"], "claimed, never finished"
    # The dead process's claim must expire before another process may retry the change.
    claimed_at = change["claimed_at"].replace(tzinfo=change["claimed_at"].tzinfo or UTC)
    await wait_until(
        lambda: datetime.now(UTC) > claimed_at + timedelta(seconds=HANDLER_LEASE),
        within=HANDLER_LEASE + 5,
        what="the dead claim to expire",
    )
    got = await restart_and_collect(db_url, expected=1)
    assert got == [(change["id"], "INSERT", "fatal")]
    assert not any(r["handlers_pending"] for r in await claims(db_url))
