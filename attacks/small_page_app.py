"""An app whose CrudConfig pages by 20, at most 50 (``python -m attacks.small_page_app``)."""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI
from sqlmodel import Field, SQLModel

from capebase import CapeBase
from capebase.crud.config import CrudConfig


class Item(SQLModel, table=True):
    """Anyone reads and writes."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = ""


app = FastAPI()
db = os.environ.get("TS_APP_DB", "small.db")
cape = CapeBase(app=app, db_path=f"sqlite+aiosqlite:///{db}", crud=CrudConfig(default_page_size=20, max_page_size=50))
cape.publish(Item)
cape.permission_required(Item, role="*", actions=["read", "create", "update", "delete"])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning")
