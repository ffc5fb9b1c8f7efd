"""A bulk UPDATE's SET values meet the rules as the column stores them: a column type that
normalizes what it binds (here: lower case) normalizes the new image the rules check, whether
the value comes from ``.values()`` or from the execution parameters; a value with a type of
its own is checked with that type, the one it is stored with.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, String, TypeDecorator, literal, select, update
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import AuthContext
from capebase.testing import app_client

from ._support import make_app, reset


class LoweredBase(SQLModel, registry=registry()):
    __test__ = False


class Lowered(TypeDecorator[str]):
    """Text stored in lower case, as a case-insensitive user name column might be."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Any, _dialect: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class Handle(LoweredBase, table=True):
    __tablename__ = "pol_handle"

    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(sa_column=Column(Lowered(), nullable=False))
    note: str = Field(default="", max_length=40)


async def test_set_values_are_checked_as_the_column_binds_them(db_url: str) -> None:
    app, cape = make_app(db_url)
    cape.permission_required(Handle, owner_field="owner", actions=["*"])
    alice = AuthContext(id="alice")
    mine = update(Handle).where(Handle.id == 1)
    async with app_client(app):
        await reset(cape, Handle, [{"id": 1, "owner": "alice"}])
        async with cape.get_session(alice) as session:
            by_values = await session.execute(mine.values(owner="ALICE", note="values"))
            by_parameters = await session.execute(mine, {"owner": "Alice", "note": "params"})
            await session.commit()
        async with cape.get_privileged_session() as session:
            stored = (await session.execute(select(Handle.owner, Handle.note))).all()
    assert (by_values.rowcount, by_parameters.rowcount) == (1, 1)  # type: ignore[attr-defined]
    assert stored == [("alice", "params")]


async def test_a_set_value_of_its_own_type_is_checked_with_that_type(db_url: str) -> None:
    """``literal("ALICE", String())`` is bound as plain text, so it is stored as "ALICE", not
    alice's: the update is denied, though the column's own type would have lowered it."""
    app, cape = make_app(db_url)
    cape.permission_required(Handle, owner_field="owner", actions=["*"])
    async with app_client(app):
        await reset(cape, Handle, [{"id": 1, "owner": "alice"}])
        async with cape.get_session(AuthContext(id="alice")) as session:
            result = await session.execute(
                update(Handle).where(Handle.id == 1).values(owner=literal("ALICE", String(40)))
            )
            await session.commit()
        async with cape.get_privileged_session() as session:
            stored = (await session.execute(select(Handle.owner))).all()
    assert result.rowcount == 0  # type: ignore[attr-defined]
    assert stored == [("alice",)]
