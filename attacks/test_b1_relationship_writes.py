"""Attack (b): writes produced by relationships / the database itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ._rel import ALICE, RNote, RTeam, RWorld, rel_world


@pytest.fixture
async def world(db_url: str, db_kind: str) -> AsyncIterator[RWorld]:
    async with rel_world(db_url, db_kind) as opened:
        yield opened


async def test_fk_sync_update_reaches_change_log(world: RWorld) -> None:
    """team.notes.append(note) (no backref): the flush UPDATEs note.team_id by FK sync.
    A committed change must be in the change log (streams are fed from it)."""
    async with world.cape.get_session(ALICE) as s:
        team = (await s.execute(select(RTeam).where(RTeam.id == 2)
                                .options(selectinload(RTeam.notes)))).scalar_one()
        note = await s.get(RNote, 2)
        team.notes.append(note)
        await s.commit()
    stored = await world.stored(RNote)
    assert (2, "alice", "a2", 2) in stored  # the write happened
    log = await world.change_log("rt_note")
    print(log)
    assert any(op == "UPDATE" and "2" in pk for op, pk, _new in log), log


async def test_fk_sync_remove_reaches_change_log(world: RWorld) -> None:
    async with world.cape.get_session(ALICE) as s:
        team = (await s.execute(select(RTeam).where(RTeam.id == 1)
                                .options(selectinload(RTeam.notes)))).scalar_one()
        note = await s.get(RNote, 1)
        team.notes.remove(note)
        await s.commit()
    assert (1, "alice", "a1", None) in await world.stored(RNote)
    log = await world.change_log("rt_note")
    print(log)
    assert any(op == "UPDATE" for op, _pk, _new in log), log


async def test_db_cascade_deletes_hidden_row(world: RWorld) -> None:
    """ON DELETE CASCADE: alice may delete her team, never bob's note 3 (hidden from her,
    and her delete rule denies it). The database deletes it anyway, and no stream hears."""
    async with world.cape.get_session(ALICE) as s:
        team = await s.get(RTeam, 1)
        await s.delete(team)
        await s.commit()
    stored = await world.stored(RNote)
    log = await world.change_log("rt_note")
    print(stored, log)
    assert any(row[0] == 3 for row in stored), "bob's note 3 was deleted by alice's flush"


async def test_db_cascade_delete_of_visible_row_not_in_change_log(world: RWorld) -> None:
    """The cascade also deletes alice's own note 1: a committed change no stream delivers."""
    async with world.cape.get_session(ALICE) as s:
        await s.delete(await s.get(RTeam, 1))
        await s.commit()
    gone = {1, 3} - {row[0] for row in await world.stored(RNote)}
    log = await world.change_log("rt_note")
    print(gone, log)
    assert gone == {1, 3}
    assert any(op == "DELETE" for op, _pk, _new in log), "no DELETE of rt_note in the change log"
