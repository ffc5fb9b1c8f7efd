"""Processes the crash tests kill: an app whose handler kills it, and a writer that dies
right after its commit. Run as ``python -m tests.realtime._crash_app write`` (the writer) or
``uvicorn --factory tests.realtime._crash_app:dying_app`` (the app), with CRASH_DB_URL set."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from fastapi import FastAPI
from sqlalchemy import update

from capebase import AuthContext, CapeBase
from capebase.changes.change import ModelChange
from capebase.changes.changelog import metadata as changelog_metadata
from capebase.realtime.config import RealtimeConfig
from tests.realtime._app import Task, header_auth

HANDLER_LEASE = 0.3
"""Seconds a claimed handler run is trusted; after that a restarted process retries it."""


def build(db_url: str, on_change: Any) -> tuple[FastAPI, CapeBase]:
    """The app: Task published, owners may do anything, ``on_change`` handles every change."""
    app = FastAPI()
    cape = CapeBase(
        app=app,
        db_url=db_url,
        get_auth_context=header_auth,
        realtime=RealtimeConfig(handler_lease=HANDLER_LEASE, poll_interval=0.2),
    )
    cape.publish(Task)
    cape.permission_required(Task, owner_field="owner_id", actions=["*"])
    cape.subscribe(Task)(on_change)
    return app, cape


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def dying_app() -> FastAPI:
    """An app whose handler kills its process (SIGKILL) the moment it gets a change."""

    async def die(_change: ModelChange[Any]) -> None:
        kill_self()

    app, _ = build(os.environ["CRASH_DB_URL"], die)
    return app


async def write_and_die() -> None:
    """Commit two changes without ever starting the hub, then die before anything dispatches."""

    async def never(_change: ModelChange[Any]) -> None:  # pragma: no cover - never runs
        raise AssertionError("the writer's hub never runs")

    _, cape = build(os.environ["CRASH_DB_URL"], never)
    async with cape.engine.begin() as connection:
        await connection.run_sync(changelog_metadata.create_all)
        await connection.run_sync(Task.metadata.create_all)
    async with cape.get_session(AuthContext(id="alice")) as session:
        session.add(Task(title="written"))
        await session.commit()
        await session.execute(update(Task).values(is_complete=True))
        await session.commit()
    kill_self()


if __name__ == "__main__" and sys.argv[1:] == ["write"]:
    asyncio.run(write_and_die())
