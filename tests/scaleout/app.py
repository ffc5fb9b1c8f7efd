"""The app each scale-out test process serves; configured through environment variables.

CAPE_DB: database URL. CAPE_BROKER: broker URL. CAPE_HANDLED: file each handler run appends
"<change id> <pid>" to, so a test can count runs per change across processes.
"""

from __future__ import annotations

import os
from typing import Optional

from fastapi import FastAPI, Header
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase, ModelChange
from capebase.realtime.config import RealtimeConfig


class ScaleNote(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)  # noqa: UP045 - SQLModel style
    user_id: FROM_AUTH_ID = Field(index=True)
    body: str


async def header_auth(x_user: str | None = Header(None)) -> AuthContext:
    return AuthContext(id=x_user) if x_user else AuthContext()


app = FastAPI()
cape = CapeBase(
    app,
    os.environ["CAPE_DB"],
    header_auth,
    broker=os.environ.get("CAPE_BROKER", "memory://"),
    # A long poll interval so delivery across processes must come through the broker.
    realtime=RealtimeConfig(poll_interval=30.0, heartbeat=1.0, handler_lease=2.0),
)
cape.publish(ScaleNote)
cape.permission_required(ScaleNote, role="*", actions=["read"])
cape.permission_required(ScaleNote, owner_field="user_id", actions=["create", "update", "delete"])


@cape.subscribe(ScaleNote)
def record_handled(change: ModelChange[ScaleNote]) -> None:
    """A plain (sync) handler: capebase runs it in a thread."""
    with open(os.environ["CAPE_HANDLED"], "a") as handled:
        handled.write(f"{change.id} {os.getpid()}\n")
