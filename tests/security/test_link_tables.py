"""A link model that has rules of its own is governed like any table: a user session may not
read its table as Core beside the classes it links (OWASP API1:2023, object level
authorization). Found by the second security review."""

# No `from __future__ import annotations`: SQLModel reads Relationship annotations.
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import registry, selectinload
from sqlmodel import Field, Relationship, SQLModel

from capebase import AuthContext, CapeBase, UnfilterableStatementError
from capebase.testing import app_client


class Base(SQLModel, registry=registry()):
    pass


class SecLink(Base, table=True):
    __tablename__ = "sec_link"
    team_id: int | None = Field(default=None, foreign_key="sec_team.id", primary_key=True)
    hero_id: int | None = Field(default=None, foreign_key="sec_hero.id", primary_key=True)
    owner: str
    note: str


class SecTeam(Base, table=True):
    __tablename__ = "sec_team"
    id: int | None = Field(default=None, primary_key=True)
    heroes: list["SecHero"] = Relationship(back_populates="teams", link_model=SecLink)


class SecHero(Base, table=True):
    __tablename__ = "sec_hero"
    id: int | None = Field(default=None, primary_key=True)
    teams: list[SecTeam] = Relationship(back_populates="heroes", link_model=SecLink)


@pytest.mark.parametrize("governed", [True, False])
async def test_a_governed_link_table_is_not_read_as_core(db_url: str, governed: bool) -> None:
    app = FastAPI()
    cape = CapeBase(app, db_url)
    for model in (SecTeam, SecHero):
        cape.permission_required(model, role="*", actions=["read"])
    if governed:
        cape.permission_required(SecLink, owner_field="owner", actions=["read"])
    link = SecLink.__table__  # type: ignore[attr-defined]
    async with app_client(app):
        async with cape.get_privileged_session() as session:
            session.add_all([SecTeam(id=1), SecHero(id=1)])
            await session.flush()
            session.add(SecLink(team_id=1, hero_id=1, owner="alice", note="ALICE-LINK-SECRET"))
            await session.commit()
        async with cape.get_session(AuthContext(id="bob")) as session:
            statement = select(SecTeam.id, link.c.note).join(link, link.c.team_id == SecTeam.id)
            # A relationship through the link table reads it too (issue 16: relationship loads
            # were not checked).
            loaded = select(SecTeam).options(selectinload(SecTeam.heroes))
            if governed:
                for refused in (statement, loaded):
                    with pytest.raises(UnfilterableStatementError):
                        await session.execute(refused)
            else:  # a plain association table, which no rule governs, stays readable
                assert (await session.execute(statement)).all() == [(1, "ALICE-LINK-SECRET")]
                team = (await session.scalars(loaded)).one()
                assert [hero.id for hero in team.heroes] == [1]
