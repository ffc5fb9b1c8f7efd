"""Rows a database's own referential actions write are checked and logged (OWASP API1:2023).

Found by the relationship-write attack: with ``ForeignKey(..., ondelete="CASCADE")`` alice
deleting her own team (allowed) made the database delete bob's note in it, hidden from her and
not hers to delete, on every database; ``SET NULL`` rewrote it; and the rows a cascade deleted
or updated never reached the change log, so no stream delivered them. Now every write path
(session flush, bulk statements, the REST route) reads those rows first, checks each as the
caller (a hidden row and a visible denied one alike), and logs each with the write.

Rules: teams are read by everyone; notes, comments, pins and tags by their owner (notes also
when public); every row is written by its owner only.
"""

# No `from __future__ import annotations`: SQLModel reads the field annotations.
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table, delete, select, update
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import AuthContext, CapeBase, ModelChange
from capebase.changes.changelog import changes
from capebase.errors import PermissionDeniedError, UnfilterableStatementError
from capebase.policy.referential import Effect, denial
from capebase.testing import app_client
from tests.realtime._live import dispatched, wait_until

ALICE = AuthContext(id="alice")
ALICE_HEADERS = {"X-User": "alice"}


class Base(SQLModel, registry=registry()):
    pass


class CTeam(Base, table=True):
    __tablename__ = "c_team"
    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)


class CNote(Base, table=True):
    __tablename__ = "c_note"
    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)
    public: bool = False
    team_id: int | None = Field(default=None, foreign_key="c_team.id", ondelete="CASCADE")


class CComment(Base, table=True):
    __tablename__ = "c_comment"
    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)
    note_id: int = Field(foreign_key="c_note.id", ondelete="CASCADE")


class CPin(Base, table=True):
    __tablename__ = "c_pin"
    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)
    team_id: int | None = Field(default=None, foreign_key="c_team.id", ondelete="SET NULL")


class CTag(Base, table=True):
    __tablename__ = "c_tag"
    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)
    team_id: int | None = Field(default=None, sa_column=Column(
        Integer, ForeignKey("c_team.id", onupdate="CASCADE"), nullable=True
    ))


@dataclass
class World:
    cape: CapeBase
    client: Any
    events: list[tuple[str, str, Any]] = field(default_factory=list)

    async def add(self, *rows: Any) -> None:
        async with self.cape.get_privileged_session() as s:
            for row in rows:  # in order: parents first
                s.add(row)
                await s.flush()
            await s.commit()

    async def ids(self, model: Any) -> set[int]:
        async with self.cape.engine.connect() as conn:
            return set((await conn.execute(select(model.__table__.c.id))).scalars())

    async def log(self, table: str) -> list[tuple[str, Any, Any]]:
        async with self.cape.engine.connect() as conn:
            result = await conn.execute(
                select(changes.c.op, changes.c.old, changes.c.new)
                .where(changes.c.table_name == table).order_by(changes.c.id)
            )
            return [(op, _json(old), _json(new)) for op, old, new in result]


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


async def header_auth(request: Request) -> AuthContext:
    return AuthContext(id=request.headers.get("X-User"))


@asynccontextmanager
async def world(db_url: str) -> AsyncIterator[World]:
    app = FastAPI()
    cape = CapeBase(app=app, db_path=db_url, get_auth_context=header_auth)
    cape.publish(CTeam)
    cape.permission_required(CTeam, role="*", actions=["read"])
    for model in (CTeam, CNote, CComment, CPin, CTag):
        cape.permission_required(model, owner_field="owner",
                                 actions=["read", "create", "update", "delete"])
    cape.permission_required(CNote, where=lambda _ctx: CNote.public, actions=["read"])
    async with app_client(app) as client:
        opened = World(cape, client)
        for model in (CNote, CComment, CPin, CTag):
            @cape.subscribe(model)
            async def record(change: ModelChange[Any], table: str = model.__tablename__) -> None:
                opened.events.append((table, change.event, change.payload.id))
        await opened.add(CTeam(id=1, owner="alice"), CTeam(id=2, owner="alice"),
                         CTeam(id=3, owner="bob"))
        yield opened


@pytest.fixture
async def w(db_url: str) -> AsyncIterator[World]:
    async with world(db_url) as opened:
        yield opened


async def _delete_team(w: World, team_id: int) -> None:
    async with w.cape.get_session(ALICE) as s:
        await s.delete(await s.get(CTeam, team_id))
        await s.commit()


async def test_flush_delete_refused_when_a_cascade_deletes_a_hidden_row(w: World) -> None:
    await w.add(CNote(id=1, owner="alice", team_id=1), CNote(id=3, owner="bob", team_id=1))
    with pytest.raises(PermissionDeniedError, match="cannot delete CNote"):
        await _delete_team(w, 1)
    assert await w.ids(CTeam) == {1, 2, 3}
    assert await w.ids(CNote) == {1, 3}


async def test_multi_level_cascade_refused_for_a_hidden_grandchild(w: World) -> None:
    await w.add(CNote(id=1, owner="alice", team_id=1), CComment(id=1, owner="bob", note_id=1))
    with pytest.raises(PermissionDeniedError, match="cannot delete CComment"):
        await _delete_team(w, 1)
    assert await w.ids(CComment) == {1}


async def test_set_null_of_a_hidden_row_is_refused(w: World) -> None:
    await w.add(CPin(id=1, owner="bob", team_id=1))
    with pytest.raises(PermissionDeniedError, match="cannot update CPin"):
        await _delete_team(w, 1)
    async with w.cape.engine.connect() as conn:
        assert (await conn.execute(select(CPin.__table__.c.team_id))).scalar_one() == 1


async def test_allowed_cascade_is_logged_and_delivered(w: World) -> None:
    await w.add(
        CNote(id=1, owner="alice", team_id=1), CComment(id=1, owner="alice", note_id=1),
        CPin(id=1, owner="alice", team_id=1), CNote(id=2, owner="bob", team_id=3),
    )
    await _delete_team(w, 1)
    assert (await w.ids(CNote), await w.ids(CComment)) == ({2}, set())
    assert [op for op, _o, _n in await w.log("c_note")] == ["INSERT", "INSERT", "DELETE"]
    assert [op for op, _o, _n in await w.log("c_comment")] == ["INSERT", "DELETE"]
    op, old, new = (await w.log("c_pin"))[-1]
    assert (op, old["team_id"], new["team_id"]) == ("UPDATE", 1, None)
    expected = {("c_note", "DELETE", 1), ("c_comment", "DELETE", 1), ("c_pin", "UPDATE", 1)}
    await dispatched(w.cape)
    await wait_until(lambda: expected <= set(w.events), what="the handlers to run")
    assert {e for e in w.events if e[1] != "INSERT"} == expected


async def test_bulk_delete_checks_and_logs_cascades(w: World) -> None:
    await w.add(CNote(id=1, owner="alice", team_id=1), CNote(id=3, owner="bob", team_id=1),
                CNote(id=4, owner="alice", team_id=2))
    async with w.cape.get_session(ALICE) as s:
        with pytest.raises(PermissionDeniedError, match="cannot delete CNote"):
            await s.execute(delete(CTeam).where(CTeam.id.in_([1, 2])))
    assert await w.ids(CNote) == {1, 3, 4}
    async with w.cape.get_session(ALICE) as s:
        await s.execute(delete(CTeam).where(CTeam.id == 2))
        await s.commit()
    assert await w.ids(CTeam) == {1, 3}
    assert await w.ids(CNote) == {1, 3}
    assert [(op, old["id"]) for op, old, _n in await w.log("c_note") if op == "DELETE"] == [
        ("DELETE", 4)
    ]


async def test_bulk_delete_checks_only_the_rows_it_deletes(w: World) -> None:
    """A bulk delete's own filters decide which parents' children are checked: bob's team
    (not alice's to delete) holds a hidden note, yet deleting 'every team' deletes alice's."""
    await w.add(CNote(id=3, owner="bob", team_id=3), CNote(id=1, owner="alice", team_id=1))
    async with w.cape.get_session(ALICE) as s:
        await s.execute(delete(CTeam))
        await s.commit()
    assert (await w.ids(CTeam), await w.ids(CNote)) == ({3}, {3})


async def test_rest_delete_same_answer_for_hidden_and_visible_denied_child(w: World) -> None:
    await w.add(CNote(id=3, owner="bob", team_id=1),  # hidden from alice
                CNote(id=4, owner="bob", public=True, team_id=2))  # visible, not hers
    hidden = await w.client.delete("/c_team/1", headers=ALICE_HEADERS)
    visible = await w.client.delete("/c_team/2", headers=ALICE_HEADERS)
    assert (hidden.status_code, visible.status_code) == (403, 403)
    assert hidden.json() == visible.json()
    assert await w.ids(CTeam) == {1, 2, 3}


async def test_rest_delete_logs_cascades(w: World) -> None:
    await w.add(CNote(id=1, owner="alice", team_id=2), CPin(id=1, owner="alice", team_id=2))
    response = await w.client.delete("/c_team/2", headers=ALICE_HEADERS)
    assert response.status_code == 204
    assert await w.ids(CNote) == set()
    assert [op for op, _o, _n in await w.log("c_note")] == ["INSERT", "DELETE"]
    assert [op for op, _o, _n in await w.log("c_pin")] == ["INSERT", "UPDATE"]


async def test_privileged_delete_is_logged_unchecked(w: World) -> None:
    await w.add(CNote(id=3, owner="bob", team_id=1))
    async with w.cape.get_privileged_session() as s:
        await s.delete(await s.get(CTeam, 1))
        await s.commit()
    async with w.cape.get_privileged_session() as s:
        await s.execute(delete(CTeam).where(CTeam.id == 2))
        await s.commit()
    assert [op for op, _o, _n in await w.log("c_note")] == ["INSERT", "DELETE"]


async def test_on_update_cascade_of_a_key_change(w: World) -> None:
    await w.add(CTag(id=1, owner="alice", team_id=1), CTag(id=2, owner="bob", team_id=2))
    async with w.cape.get_session(ALICE) as s:
        team = await s.get(CTeam, 2)
        assert team is not None
        team.id = 20
        with pytest.raises(PermissionDeniedError, match="cannot update CTag"):
            await s.commit()
    async with w.cape.get_session(ALICE) as s:
        team = await s.get(CTeam, 1)
        assert team is not None
        team.id = 10
        await s.commit()
    op, old, new = (await w.log("c_tag"))[-1]
    assert (op, old["team_id"], new["team_id"]) == ("UPDATE", 1, 10)
    async with w.cape.get_session(ALICE) as s:
        with pytest.raises(UnfilterableStatementError, match="ON UPDATE"):
            await s.execute(update(CTeam).where(CTeam.id == 10).values(id=11))
    async with w.cape.get_privileged_session() as s:
        await s.execute(update(CTeam).where(CTeam.id == 10).values(id=12))
        await s.commit()
    op, old, new = (await w.log("c_tag"))[-1]
    assert (op, old["team_id"], new["team_id"]) == ("UPDATE", 10, 12)


async def test_a_cascaded_row_python_cannot_judge_is_checked_by_the_database(
    db_url: str,
) -> None:
    """A delete rule with a subquery cannot be evaluated in Python: the database decides, for
    the very row and action (issue 17: every rule above was decided in Python)."""
    app = FastAPI()
    cape = CapeBase(app=app, db_path=db_url, get_auth_context=header_auth)
    cape.permission_required(CTeam, owner_field="owner", actions=["read", "delete"])
    cape.permission_required(CNote, role="*", actions=["read"])
    # a note may be deleted if it is in a team of the caller's other than team 2
    cape.permission_required(CNote, actions=["delete"], where=lambda ctx: CNote.team_id.in_(
        select(CTeam.id).where(CTeam.owner == ctx.id, CTeam.id != 2)
    ))
    async with app_client(app):
        w = World(cape, None)
        await w.add(CTeam(id=1, owner="alice"), CTeam(id=2, owner="alice"),
                    CNote(id=1, owner="bob", team_id=1), CNote(id=2, owner="bob", team_id=2))
        with pytest.raises(PermissionDeniedError, match="cannot delete CNote"):
            await _delete_team(w, 2)
        await _delete_team(w, 1)
        assert (await w.ids(CTeam), await w.ids(CNote)) == ({2}, {2})


def test_denial_checks_every_effect_each_image_and_asks_only_when_python_cannot(
    sqlite_url: str,
) -> None:
    """``referential.denial`` on effects made by hand: a plain table's row is free and the
    next effect still checked; an update needs its new image allowed too; a rule Python can
    decide never asks the database (issue 17)."""
    cape = CapeBase(app=FastAPI(), db_path=sqlite_url)
    cape.permission_required(CNote, owner_field="owner", actions=["delete", "update"])
    cape.permission_required(CPin, actions=["update"],
                             where=lambda _ctx: CPin.team_id.is_not(None))
    plain = Table("c_plain", MetaData(), Column("id", Integer, primary_key=True))
    asked: list[tuple[Any, str, Any]] = []

    def undecided(model: Any, action: str, row: Any) -> bool:
        asked.append((model, action, row))
        return True

    mine = {"id": 1, "owner": "alice", "public": False, "team_id": 1}
    bobs = {**mine, "id": 2, "owner": "bob"}
    free = Effect(plain, "DELETE", {"id": 1}, None)
    assert denial(cape.policy, ALICE, [free, Effect(CNote.__table__, "DELETE", bobs, None)],
                  undecided) == ("delete", CNote)
    assert denial(cape.policy, ALICE, [free, Effect(CNote.__table__, "DELETE", mine, None)],
                  undecided) is None
    pin = {"id": 1, "owner": "alice", "team_id": 1}
    assert denial(cape.policy, ALICE, [
        Effect(CPin.__table__, "UPDATE", pin, {**pin, "team_id": None})
    ], undecided) == ("update", CPin)
    assert denial(cape.policy, ALICE, [
        Effect(CPin.__table__, "UPDATE", pin, {**pin, "team_id": 2})
    ], undecided) is None
    assert asked == []
