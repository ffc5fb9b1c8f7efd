"""The tutorial's todo app, configured from the environment: what docker-compose.yml runs."""

import os
from datetime import datetime, timezone

from fastapi import FastAPI
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, CapeBase, PasswordAuth


class Todo(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    user_id: FROM_AUTH_ID = Field(index=True)
    task: str = Field(min_length=1, max_length=200)
    is_complete: bool = False
    inserted_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))  # noqa: UP017


app = FastAPI(title="Todos")
cape = CapeBase(
    app=app,
    db_url=os.environ["DATABASE_URL"],  # postgresql://app:app@db:5432/app
    broker=os.environ.get("BROKER_URL", "memory://"),  # redis://redis:6379/0 wakes every worker
    auth=PasswordAuth(secret=os.environ["CAPEBASE_SECRET"]),
)
cape.publish(Todo)
cape.permission_required(Todo, role="*", actions=["read"])
cape.permission_required(Todo, owner_field="user_id", actions=["create", "update", "delete"])
cape.permission_required(Todo, role="admin", actions=["*"])


@app.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
