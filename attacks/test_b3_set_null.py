"""Attack (b): ON DELETE SET NULL: alice deleting her team UPDATEs bob's hidden note
(team_id -> NULL): a denied write, and a committed change absent from the change log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from capebase import AuthContext, CapeBase
from capebase.realtime.changelog import changes
from capebase.testing import app_client


class SBase(DeclarativeBase):
    pass


class STeam(SBase):
    __tablename__ = "sn_team"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    notes: Mapped[list[SNote]] = relationship(passive_deletes=True)


class SNote(SBase):
    __tablename__ = "sn_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("sn_team.id", ondelete="SET NULL"), nullable=True)


@asynccontextmanager
async def world(db_url: str) -> AsyncIterator[CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_path=db_url)
    cape.permission_required(STeam, owner_field="owner", actions=["*"])
    cape.permission_required(SNote, owner_field="owner", actions=["*"])
    async with app_client(app):
        async with cape.get_privileged_session() as s:
            s.add(STeam(id=1, owner="alice"))
            await s.flush()
            s.add(SNote(id=3, owner="bob", team_id=1))
            await s.commit()
        yield cape


async def test_set_null_updates_hidden_row(db_url: str, db_kind: str) -> None:
    async with world(db_url) as cape:
        async with cape.get_session(AuthContext(id="alice")) as s:
            await s.delete(await s.get(STeam, 1))
            await s.commit()
        async with cape.engine.connect() as conn:
            note = (await conn.execute(select(SNote.__table__))).one()
            log = (await conn.execute(select(changes.c.op)
                                      .where(changes.c.table_name == "sn_note"))).all()
        print(note, log)
        assert note.team_id == 1, "alice's delete rewrote bob's hidden note (team_id NULL)"
