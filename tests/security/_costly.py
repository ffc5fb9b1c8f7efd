"""For ``test_error_oracles_costly``: a world whose read rule has a subquery (a 'costly'
rule): notes readable when their team is the caller's. Alice reads notes of team 1; note 3
("b-secret") is in bob's team 2."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from sqlalchemy import ForeignKey, String, delete, exists, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from capebase import AuthContext, CapeBase
from capebase.testing import app_client

from ._shapes import outcome


class CBase(DeclarativeBase):
    pass


class CTeam(CBase):
    __tablename__ = "ct_team"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))


class CNote(CBase):
    __tablename__ = "ct_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(40))
    team_id: Mapped[int] = mapped_column(ForeignKey("ct_team.id"))


ALICE = AuthContext(id="alice")


@dataclass
class CWorld:
    cape: CapeBase
    kind: str


@asynccontextmanager
async def costly_world(db_url: str, kind: str, rule: str = "exists") -> AsyncIterator[CWorld]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url)
    cape.permission_required(CTeam, owner_field="owner", actions=["read"])
    if rule == "exists":
        cape.permission_required(CNote, actions=["*"], where=lambda ctx: exists(
            select(CTeam.id).where(CTeam.id == CNote.team_id, CTeam.owner == ctx.id)))
    else:
        cape.permission_required(CNote, actions=["*"], where=lambda ctx: CNote.team_id.in_(
            select(CTeam.id).where(CTeam.owner == ctx.id)))
    async with app_client(app):
        async with cape.get_privileged_session() as s:
            s.add_all([CTeam(id=1, owner="alice"), CTeam(id=2, owner="bob")])
            await s.flush()
            s.add_all([CNote(id=1, body="a1", team_id=1), CNote(id=2, body="a2", team_id=1),
                       CNote(id=3, body="b-secret", team_id=2)])
            await s.commit()
        yield CWorld(cape, kind)


async def compare(world: CWorld, statement: Any) -> tuple[Any, Any]:
    async with world.cape.get_session(ALICE) as session:
        mine = await outcome(session, statement)
    async with world.cape.get_privileged_session() as session:
        await session.execute(delete(CNote).where(CNote.id == 3))
        await session.execute(delete(CTeam).where(CTeam.id == 2))
        expected = await outcome(session, statement)
    return mine, expected
