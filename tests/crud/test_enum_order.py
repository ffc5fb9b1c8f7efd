"""``order_by`` an enum sorts by its members' declaration order on every database: native enums
(PostgreSQL, MariaDB) do so by themselves; SQLite stores the members as text, which would sort by
name, so the list sorts it with a CASE there. Clients (the TypeScript live query) place rows by
declaration order and must see the server agree."""

from __future__ import annotations

import enum

from sqlalchemy import Column
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from capebase.testing import app_client
from tests.apps import make_cape


class Shade(enum.StrEnum):
    """Names, values and declaration each sort differently."""

    ZULU = "apple"
    ALPHA = "zebra"
    MIKE = "mango"


class Painted(SQLModel, table=True):
    """An enum class column and a column of a string Enum."""

    __tablename__ = "crud_painted"
    id: int | None = Field(default=None, primary_key=True)
    shade: Shade
    size: str = Field(sa_column=Column(SAEnum("small", "large", "medium", name="crud_size"),
                                       nullable=False))


async def test_order_by_enum_is_declaration_order(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Painted)
    cape.permission_required(Painted, role="*", actions=["read", "create"])
    async with app_client(app) as client:
        for shade, size in (("mango", "medium"), ("zebra", "large"), ("apple", "small")):
            created = await client.post("/crud_painted", json={"shade": shade, "size": size},
                                        headers={"X-User": "u"})
            assert created.status_code == 201, created.text
        by_shade = (await client.get("/crud_painted", params={"order_by": "shade"})).json()
        assert [row["shade"] for row in by_shade] == ["apple", "zebra", "mango"]
        descending = (await client.get("/crud_painted", params={"order_by": "-shade"})).json()
        assert [row["shade"] for row in descending] == ["mango", "zebra", "apple"]
        by_size = (await client.get("/crud_painted", params={"order_by": "size"})).json()
        assert [row["size"] for row in by_size] == ["small", "large", "medium"]
