"""Rows a flush writes through relationships are checked like any other write (OWASP API1:2023,
broken object level authorization). Found by the relationship-write attack:

1. Appending to / removing from a many-to-many collection made the flush INSERT / DELETE rows
   of the association table directly, past the link model's create/delete rules; and a forged
   detached object's collection turned "expected to delete 1 row(s); 0 were matched" into an
   oracle for whether a hidden link row exists.
2. A one-to-many append/remove without a backref, or a many-to-one set, made the flush UPDATE
   (or INSERT) a foreign key after the flush checks had run: another user's row changed
   without its update rule being checked.

Rules here: a team, member or hero is read by everyone if public and by its owner, and written
by its owner; a member's team must be NULL or a team its owner owns; a governed link row
(``RwLink``) is read, created and deleted only by the team's owner. ``RwTagLink`` has no rule.
"""

# No `from __future__ import annotations`: SQLModel reads Relationship annotations.
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import ColumnElement, delete, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached, registry, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Field, Relationship, SQLModel

from capebase import AuthContext, CapeBase
from capebase.errors import PermissionDeniedError, UnfilterableStatementError
from capebase.testing import app_client

ALICE = AuthContext(id="alice")


class Base(SQLModel, registry=registry()):
    pass


class RwLink(Base, table=True):
    __tablename__ = "rw_link"
    team_id: int | None = Field(default=None, foreign_key="rw_team.id", primary_key=True)
    hero_id: int | None = Field(default=None, foreign_key="rw_hero.id", primary_key=True)


class RwTagLink(Base, table=True):
    __tablename__ = "rw_tag_link"
    team_id: int | None = Field(default=None, foreign_key="rw_team.id", primary_key=True)
    tag_id: int | None = Field(default=None, foreign_key="rw_tag.id", primary_key=True)


class RwTeam(Base, table=True):
    __tablename__ = "rw_team"
    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)
    public: bool = False
    # One-to-many without a backref (RwMember.team is a separate many-to-one).
    members: list["RwMember"] = Relationship(sa_relationship_kwargs={"overlaps": "team"})
    heroes: list["RwHero"] = Relationship(back_populates="teams", link_model=RwLink)
    tags: list["RwTag"] = Relationship(link_model=RwTagLink)
    tasks: list["RwTask"] = Relationship(sa_relationship_kwargs={"cascade": "all, delete-orphan"})


class RwMember(Base, table=True):
    __tablename__ = "rw_member"
    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)
    public: bool = False
    team_id: int | None = Field(default=None, foreign_key="rw_team.id")
    team: RwTeam | None = Relationship(sa_relationship_kwargs={"overlaps": "members"})


class RwTask(Base, table=True):
    """The child of a delete-orphan collection: removing it deletes its row."""

    __tablename__ = "rw_task"
    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)
    team_id: int | None = Field(default=None, foreign_key="rw_team.id")


class RwBadge(Base, table=True):
    """A many-to-one written by a post_update: a second UPDATE with no mapper event."""

    __tablename__ = "rw_badge"
    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)
    team_id: int | None = Field(default=None, foreign_key="rw_team.id")
    team: RwTeam | None = Relationship(sa_relationship_kwargs={"post_update": True})


class RwHero(Base, table=True):
    __tablename__ = "rw_hero"
    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)
    public: bool = False
    teams: list[RwTeam] = Relationship(back_populates="heroes", link_model=RwLink)


class RwTag(Base, table=True):
    __tablename__ = "rw_tag"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(default="", max_length=40)


def _teams_of(ctx: AuthContext) -> Any:
    return select(RwTeam.id).where(RwTeam.owner == ctx.id)


def _in_own_team(ctx: AuthContext) -> ColumnElement[bool]:
    return or_(RwMember.team_id.is_(None), RwMember.team_id.in_(_teams_of(ctx)))


def _link_of_own_team(ctx: AuthContext) -> ColumnElement[bool]:
    return RwLink.team_id.in_(_teams_of(ctx))


def _rules(cape: CapeBase) -> None:
    for model in (RwTeam, RwMember, RwHero):
        cape.permission_required(model, where=lambda _c, m=model: m.public.is_(True),
                                 actions=["read"])
        cape.permission_required(model, owner_field="owner", actions=["read"])
    for model in (RwTeam, RwHero):
        cape.permission_required(model, owner_field="owner", actions=["create", "update",
                                                                      "delete"])
    cape.permission_required(RwTask, owner_field="owner", actions=["*"])
    cape.permission_required(RwBadge, owner_field="owner", actions=["*"],
                             where=lambda _c: RwBadge.team_id.is_(None))
    cape.permission_required(RwMember, owner_field="owner", where=_in_own_team,
                             actions=["create", "update", "delete"])
    cape.permission_required(RwLink, where=_link_of_own_team,
                             actions=["read", "create", "delete"])
    cape.permission_required(RwTag, role="*", actions=["*"])


# Team 1 alice's, team 2 bob's (public), team 3 bob's (hidden). Member 2 is bob's and public,
# member 3 bob's and hidden. Hero 1 alice's, hero 2 bob's (public). Link (2, 2) is bob's,
# hidden from alice; (1, 1) is alice's.
ROWS: list[tuple[type[Any], list[dict[str, Any]]]] = [
    (RwTeam, [{"id": 1, "owner": "alice"}, {"id": 2, "owner": "bob", "public": True},
              {"id": 3, "owner": "bob"}]),
    (RwMember, [{"id": 1, "owner": "alice", "team_id": 1},
                {"id": 2, "owner": "bob", "public": True, "team_id": 2},
                {"id": 3, "owner": "bob", "team_id": 3}]),
    (RwHero, [{"id": 1, "owner": "alice"}, {"id": 2, "owner": "bob", "public": True}]),
    (RwBadge, [{"id": 1, "owner": "alice"}]),
    (RwTask, [{"id": 1, "owner": "alice", "team_id": 1}, {"id": 2, "owner": "bob", "team_id": 1}]),
    (RwTag, [{"id": 1, "name": "red"}]),
    (RwLink, [{"team_id": 2, "hero_id": 2}, {"team_id": 1, "hero_id": 1}]),
    (RwTagLink, [{"team_id": 2, "tag_id": 1}]),
]


class Running:
    def __init__(self, cape: CapeBase) -> None:
        self.cape = cape

    def session(self, ctx: AuthContext = ALICE) -> AsyncSession:
        return self.cape.get_session(ctx)

    async def rows(self, model: type[Any]) -> list[dict[str, Any]]:
        """Every row of ``model`` as stored, sorted."""
        async with self.cape.get_privileged_session() as session:
            objects = (await session.scalars(select(model))).all()
        return sorted(
            ({c.key: getattr(o, c.key) for c in model.__table__.c} for o in objects),  # type: ignore[attr-defined]
            key=repr,
        )

    async def snapshot(self) -> list[list[dict[str, Any]]]:
        return [await self.rows(model) for model, _ in ROWS]


@pytest.fixture
async def running(db_url: str) -> AsyncIterator[Running]:
    app = FastAPI()
    cape = CapeBase(app, db_url)
    _rules(cape)
    async with app_client(app):
        async with cape.get_privileged_session() as session:
            for model, rows in ROWS:
                session.add_all(model(**row) for row in rows)
                await session.flush()
            if cape.engine.dialect.name == "postgresql":
                # Explicit ids do not advance PostgreSQL's sequences; keep new ids clear.
                for name in ("rw_team", "rw_member", "rw_hero", "rw_tag", "rw_task",
                             "rw_badge"):
                    await session.execute(
                        text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), 1000)")
                    )
            await session.commit()
        yield Running(cape)


def forged(model: type[Any], **values: Any) -> Any:
    """An object of a row the caller never loaded (maybe hidden, maybe not there), attached."""
    obj = model(**values)
    make_transient_to_detached(obj)
    return obj


async def own_team(session: AsyncSession, team_id: int = 1, **loaded: list[Any]) -> RwTeam:
    """Team ``team_id`` as read by the session, its collections set without a load."""
    team = await session.get(RwTeam, team_id)
    assert team is not None
    for key, value in loaded.items():
        set_committed_value(team, key, value)
    return team


# -- 2. foreign keys a relationship sets at flush --------------------------------------------


async def test_one_to_many_append_checks_the_child(running: Running) -> None:
    before = await running.snapshot()
    messages = set()
    for member_id in (2, 3, 99):  # bob's public member, bob's hidden member, no member
        async with running.session() as session:
            team = await own_team(session, members=[])
            member = forged(RwMember, id=member_id, owner="alice", team_id=None)
            session.add(member)
            team.members.append(member)
            with pytest.raises(PermissionDeniedError) as denied:
                await session.commit()
            messages.add(str(denied.value))
    # A hidden row and a missing one look the same (no StaleDataError oracle).
    assert messages == {"Permission denied: cannot update RwMember"}
    async with running.session() as session:  # readable, so loaded: the same
        team = await own_team(session, members=[])
        public = await session.get(RwMember, 2)
        team.members.append(public)
        with pytest.raises(PermissionDeniedError):
            await session.commit()
    assert await running.snapshot() == before


async def test_one_to_many_remove_checks_the_child(running: Running) -> None:
    before = await running.snapshot()
    messages = set()
    for member_id, team_id in ((2, 2), (3, 3), (99, 3)):
        async with running.session() as session:
            member = forged(RwMember, id=member_id, owner="bob", team_id=team_id)
            session.add(member)
            team = await own_team(session, team_id=1, members=[member])
            team.members.remove(member)
            with pytest.raises(PermissionDeniedError) as denied:
                await session.commit()
            messages.add(str(denied.value))
    assert messages == {"Permission denied: cannot update RwMember"}
    assert await running.snapshot() == before


async def test_a_new_parent_checks_the_children_it_adopts(running: Running) -> None:
    before = await running.snapshot()
    async with running.session() as session:
        member = forged(RwMember, id=3, owner="alice", team_id=None)
        session.add(member)
        session.add(RwTeam(owner="alice", members=[member]))
        with pytest.raises(PermissionDeniedError):
            await session.commit()
    assert await running.snapshot() == before


async def test_an_orphan_deleted_at_flush_is_checked(running: Running) -> None:
    """Task 2 is bob's (hidden from alice) in alice's team; task 99 does not exist."""
    before = await running.snapshot()
    messages = set()
    for task_id in (2, 99):
        async with running.session() as session:
            task = forged(RwTask, id=task_id, owner="alice", team_id=1)
            session.add(task)
            team = await own_team(session, tasks=[task])
            team.tasks.remove(task)
            with pytest.raises(PermissionDeniedError) as denied:
                await session.commit()
            messages.add(str(denied.value))
    assert messages == {"Permission denied: cannot delete RwTask"}
    async with running.session() as session:  # her own task: deleted as an orphan
        team = await own_team(session, tasks=[await session.get(RwTask, 1)])
        team.tasks.clear()
        await session.commit()
    assert await running.rows(RwTask) == [{"id": 2, "owner": "bob", "team_id": 1}]
    assert [rows for rows in await running.snapshot() if rows not in before] == [
        [{"id": 2, "owner": "bob", "team_id": 1}]
    ]


async def test_many_to_one_set_checks_the_foreign_key_it_writes(running: Running) -> None:
    before = await running.snapshot()
    async with running.session() as session:
        mine = await session.get(RwMember, 1)
        assert mine is not None
        mine.team = await session.get(RwTeam, 2)  # bob's team: not one alice owns
        with pytest.raises(PermissionDeniedError):
            await session.commit()
    async with running.session() as session:
        session.add(RwMember(owner="alice", team=await session.get(RwTeam, 2)))
        with pytest.raises(PermissionDeniedError):
            await session.commit()
    assert await running.snapshot() == before


async def test_post_update_relationships_are_refused(running: Running) -> None:
    before = await running.snapshot()
    async with running.session() as session:
        badge = await session.get(RwBadge, 1)
        assert badge is not None
        badge.team = await session.get(RwTeam, 2)
        with pytest.raises(UnfilterableStatementError, match="post_update"):
            await session.commit()
    async with running.session() as session:
        session.add(RwBadge(owner="alice", team=await session.get(RwTeam, 2)))
        with pytest.raises(UnfilterableStatementError, match="post_update"):
            await session.commit()
    async with running.session() as session:  # the column itself is checked as usual
        badge = await session.get(RwBadge, 1)
        assert badge is not None
        badge.team_id = 2
        with pytest.raises(PermissionDeniedError):
            await session.commit()
    assert await running.snapshot() == before


async def test_relationship_writes_the_rules_allow_still_work(running: Running) -> None:
    async with running.session() as session:
        team = RwTeam(owner="alice")
        session.add(team)
        mine = await session.get(RwMember, 1)
        assert mine is not None
        mine.team = team
        session.add(RwMember(owner="alice", team=team))
        await session.commit()
        team_id = team.id
    async with running.session() as session:
        team = (await session.scalars(
            select(RwTeam).where(RwTeam.id == team_id).options(selectinload(RwTeam.members))
        )).one()
        assert sorted(m.owner for m in team.members) == ["alice", "alice"]
        team.members.remove(next(m for m in team.members if m.id == 1))
        await session.commit()
    assert {m["id"]: m["team_id"] for m in await running.rows(RwMember)}[1] is None


# -- 1. association tables -------------------------------------------------------------------

LINK_REFUSED = "RwLink"


async def _refused(session: AsyncSession) -> str:
    with pytest.raises(UnfilterableStatementError) as refused:
        await session.commit()
    assert LINK_REFUSED in str(refused.value)
    return str(refused.value)


async def test_many_to_many_append_to_a_governed_link_is_refused(running: Running) -> None:
    before = await running.snapshot()
    async with running.session() as session:  # bob's team: the link rule denies
        team = await own_team(session, team_id=2, heroes=[])
        team.heroes.append(await session.get(RwHero, 1))
        await _refused(session)
    async with running.session() as session:  # a new team of alice's: refused all the same
        session.add(RwTeam(owner="alice", heroes=[await session.get(RwHero, 2)]))
        await _refused(session)
    async with running.session() as session:  # from the other side
        hero = await session.get(RwHero, 1)
        assert hero is not None
        set_committed_value(hero, "teams", [])
        hero.teams.append(await session.get(RwTeam, 2))
        await _refused(session)
    assert await running.snapshot() == before


async def test_many_to_many_remove_is_refused_alike_for_hidden_and_missing_rows(
    running: Running,
) -> None:
    """Link (2, 2) exists but alice cannot see it; (2, 1) does not exist: same answer."""
    before = await running.snapshot()
    messages = set()
    for hero_id in (2, 1):
        async with running.session() as session:
            hero = forged(RwHero, id=hero_id, owner="bob", public=True)
            session.add(hero)
            team = await own_team(session, team_id=2, heroes=[hero])
            team.heroes.remove(hero)
            messages.add(await _refused(session))
    assert len(messages) == 1
    async with running.session() as session:  # deleting a parent deletes its link rows
        hero = await session.get(RwHero, 1)
        assert hero is not None
        team = forged(RwTeam, id=2, owner="bob")
        session.add(team)
        set_committed_value(hero, "teams", [team])
        await session.delete(hero)
        await _refused(session)
    assert await running.snapshot() == before


async def test_governed_links_are_written_as_link_objects(running: Running) -> None:
    async with running.session() as session:
        session.add(RwLink(team_id=1, hero_id=2))
        await session.commit()
    async with running.session() as session:
        session.add(RwLink(team_id=2, hero_id=1))
        with pytest.raises(PermissionDeniedError):
            await session.commit()
    async with running.session() as session:
        link = await session.get(RwLink, (1, 1))
        assert link is not None
        await session.delete(link)
        await session.commit()
    assert await running.rows(RwLink) == [{"team_id": 1, "hero_id": 2},
                                          {"team_id": 2, "hero_id": 2}]


Write = Callable[[AsyncSession], Any]


async def test_plain_link_tables_stay_free_and_privileged_sessions_unchanged(
    running: Running,
) -> None:
    async with running.session() as session:
        team = await own_team(session, team_id=1, tags=[])
        team.tags.append(await session.get(RwTag, 1))
        await session.commit()
    async with running.session() as session:
        team = await own_team(session, team_id=2)
        set_committed_value(team, "tags", [await session.get(RwTag, 1)])
        team.tags.clear()
        await session.commit()
    assert await running.rows(RwTagLink) == [{"team_id": 1, "tag_id": 1}]
    async with running.cape.get_privileged_session() as session:
        team = (await session.scalars(
            select(RwTeam).where(RwTeam.id == 2).options(selectinload(RwTeam.heroes))
        )).one()
        team.heroes.append(await session.get(RwHero, 1))
        await session.commit()
        await session.execute(delete(RwLink).where(RwLink.hero_id == 1))
        await session.commit()
    assert await running.rows(RwLink) == [{"team_id": 2, "hero_id": 2}]


# -- the legacy bulk methods: no flush, no statement the session sees ------------------------

BULK: dict[str, Callable[[Any], Any]] = {
    "bulk_update_mappings": lambda s: s.bulk_update_mappings(
        RwMember, [{"id": 3, "owner": "alice"}]
    ),
    "bulk_insert_mappings": lambda s: s.bulk_insert_mappings(
        RwMember, [{"id": 50, "owner": "bob"}]
    ),
    "bulk_save_objects": lambda s: s.bulk_save_objects([RwMember(id=51, owner="bob")]),
}


@pytest.mark.parametrize("method", list(BULK))
async def test_legacy_bulk_methods_are_refused(running: Running, method: str) -> None:
    before = await running.snapshot()
    async with running.session() as session:
        with pytest.raises(UnfilterableStatementError, match=method):
            await session.run_sync(BULK[method])
        await session.commit()
    assert await running.snapshot() == before
    async with running.cape.get_privileged_session() as session:
        await session.run_sync(BULK[method])
        await session.commit()
    assert await running.snapshot() != before
