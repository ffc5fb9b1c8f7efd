"""The app `test_workers` serves with ``uvicorn --workers 4``; CAPE_DB names its database."""

from __future__ import annotations

import os
from typing import Optional

from fastapi import FastAPI
from sqlmodel import Field, SQLModel

from capebase import AuthContext, CapeBase


class WorkerNote(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)  # noqa: UP045 - SQLModel style
    body: str


async def anyone() -> AuthContext:
    return AuthContext(id="worker-test")


app = FastAPI()
cape = CapeBase(app, os.environ["CAPE_DB"], anyone)
cape.publish(WorkerNote)
cape.permission_required(WorkerNote, role="*", actions=["*"])
