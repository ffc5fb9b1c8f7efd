"""A row that breaks a table constraint is a 409 on every database and write path, never the
503 "retry later" (MariaDB reports a failed CHECK as an OperationalError)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import CheckConstraint, Column, String
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


class Renamed(Base, table=True):
    __tablename__ = "constraint_renamed"
    id: int | None = Field(default=None, primary_key=True, sa_column_kwargs={"name": "thing id"})
    label: str = Field(sa_column=Column("display_name", String(50), nullable=False))
    owner: str | None = None


def test_fields_stored_under_another_column_name_are_refused_where_first_used() -> None:
    """Rows are named by field everywhere (bodies, filters, rules, change log, payloads): a field
    whose database column has another name is refused by publish, the policy and handlers,
    naming each such field, instead of answering 500 at request time."""
    cape = CapeBase(FastAPI(), "sqlite+aiosqlite:///:memory:")
    expected = r"'id' \(column 'thing id'\), 'label' \(column 'display_name'\)"
    with pytest.raises(ConfigurationError, match=f"Cannot publish Renamed: .*{expected}"):
        cape.publish(Renamed)
    with pytest.raises(ConfigurationError, match=f"permission_required on Renamed: .*{expected}"):
        cape.permission_required(Renamed, role="*", actions=["read"], owner_field="owner")
    with pytest.raises(ConfigurationError, match=f"subscribe to Renamed: .*{expected}"):
        cape.subscribe(Renamed)
    # A model whose fields are named like their columns is served.
    cape.publish(Gauge)
