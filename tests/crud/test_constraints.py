"""A row that breaks a table constraint is a 409 on every database and write path, never the
503 "retry later" (MariaDB reports a failed CHECK as an OperationalError)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import CheckConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import AuthContext, CapeBase, ConfigurationError
from capebase.testing import app_client


class Base(SQLModel, registry=registry()):
    pass


class Gauge(Base, table=True):
    __tablename__ = "constraint_gauge"
    __table_args__ = (CheckConstraint("level > 0", name="level_positive"),)
    id: int | None = Field(default=None, primary_key=True)
    level: int


@pytest.mark.parametrize("path", ["direct", "session"])
async def test_a_failed_check_constraint_is_a_409(db_url: str, path: str) -> None:
    app = FastAPI()
    cape = CapeBase(app, db_url, get_auth_context=lambda: AuthContext(id="u", role="writer"))
    if path == "direct":
        cape.permission_required(Gauge, role="writer", actions=["*"])
    else:  # a rule Python cannot evaluate sends writes through the session
        cape.permission_required(
            Gauge, role="writer", actions=["*"],
            where=lambda ctx: Gauge.level.op("%")(1) == 0,  # type: ignore[union-attr]
        )
    cape.publish(Gauge)
    async with app_client(app) as client:
        created = await client.post("/constraint_gauge", json={"level": 1})
        assert created.status_code == 201, created.text
        key: Any = created.json()["id"]
        for response in (
            await client.post("/constraint_gauge", json={"level": -1}),
            await client.patch(f"/constraint_gauge/{key}", json={"level": -1}),
        ):
            assert response.status_code == 409, response.text
            assert "conflicts with stored data" in response.json()["detail"]
        assert (await client.get(f"/constraint_gauge/{key}")).json()["level"] == 1


@pytest.mark.parametrize(
    "name", ["offset", "limit", "count", "order_by", "ticket", "last_event_id", "name__eq"]
)
def test_fields_named_like_query_parameters_are_refused_at_publish(name: str) -> None:
    """``?offset=2`` must not silently page where a column ``offset`` was meant, nor a stream
    ignore a filter on a column ``ticket``: publish names the field instead."""
    model = type(
        f"Named_{name}",
        (Base,),
        {
            "__tablename__": f"named_{name}",
            "__annotations__": {"id": int | None, name: int},
            "id": Field(default=None, primary_key=True),
        },
        table=True,
    )
    with pytest.raises(ConfigurationError, match=f"field '{name}' cannot be filtered"):
        CapeBase(FastAPI(), "sqlite+aiosqlite:///:memory:").publish(model)
