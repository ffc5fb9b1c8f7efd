"""A world for relationship writes: Team (owner) 1:n Note (owner); every action by owner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from capebase import AuthContext, CapeBase
from capebase.realtime.changelog import changes
from capebase.testing import app_client


class RBase(DeclarativeBase):
    pass


class RTeam(RBase):
    __tablename__ = "rt_team"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    # one-to-many WITHOUT a back reference: the child's FK changes only at flush (sync)
    notes: Mapped[list[RNote]] = relationship(passive_deletes=True)


class RNote(RBase):
    __tablename__ = "rt_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(String(40))
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("rt_team.id", ondelete="CASCADE"), nullable=True
    )


ALICE = AuthContext(id="alice")


@dataclass
class RWorld:
    cape: CapeBase
    kind: str

    async def change_log(self, table: str) -> list[tuple[str, str, str | None]]:
        async with self.cape.engine.connect() as conn:
            result = await conn.execute(
                select(changes.c.op, changes.c.pk, changes.c.new)
                .where(changes.c.table_name == table).order_by(changes.c.id)
            )
            return [tuple(r) for r in result]

    async def stored(self, model: Any) -> list[tuple[Any, ...]]:
        async with self.cape.engine.connect() as conn:
            t = model.__table__
            return [tuple(r) for r in await conn.execute(select(t).order_by(t.c.id))]


@asynccontextmanager
async def rel_world(db_url: str, kind: str) -> AsyncIterator[RWorld]:
    app = FastAPI()
    cape = CapeBase(app=app, db_path=db_url)
    cape.permission_required(RTeam, owner_field="owner", actions=["*"])
    cape.permission_required(RNote, owner_field="owner", actions=["*"])
    async with app_client(app):
        async with cape.get_privileged_session() as s:
            s.add_all([RTeam(id=1, owner="alice"), RTeam(id=2, owner="alice"),
                       RTeam(id=3, owner="bob")])
            await s.flush()
            s.add_all([
                RNote(id=1, owner="alice", body="a1", team_id=1),
                RNote(id=2, owner="alice", body="a2", team_id=None),
                RNote(id=3, owner="bob", body="bob's note in alice's team", team_id=1),
            ])
            await s.commit()
        yield RWorld(cape, kind)
