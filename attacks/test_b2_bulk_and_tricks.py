"""Attack (b): bulk-by-primary-key, merge, transient-to-detached tricks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.orm import make_transient_to_detached

from capebase import PermissionDeniedError, UnfilterableStatementError

from ._rel import ALICE, RNote, RTeam, RWorld, rel_world


@pytest.fixture
async def world(db_url: str, db_kind: str) -> AsyncIterator[RWorld]:
    async with rel_world(db_url, db_kind) as opened:
        yield opened


async def _try(world: RWorld, action: Any) -> str:
    async with world.cape.get_session(ALICE) as s:
        try:
            await action(s)
            await s.commit()
            return "ok"
        except (PermissionDeniedError, UnfilterableStatementError) as e:
            return f"refused: {type(e).__name__}"
        except Exception as e:
            return f"error: {type(e).__name__}: {e}"


async def test_bulk_update_by_pk_hidden_row(world: RWorld) -> None:
    async def act(s: Any) -> None:
        await s.execute(update(RNote), [{"id": 3, "body": "pwned"}])
    out = await _try(world, act)
    stored = await world.stored(RNote)
    print(out, stored)
    assert (3, "bob", "bob's note in alice's team", 1) in stored


async def test_bulk_update_by_pk_missing_key_no_500(world: RWorld) -> None:
    async def act(s: Any) -> None:
        await s.execute(update(RNote), [{"body": "x"}])
    out = await _try(world, act)
    print(out)
    assert not out.startswith("error: KeyError"), out


async def test_bulk_insert_hidden_owner(world: RWorld) -> None:
    async def act(s: Any) -> None:
        await s.execute(insert(RNote), [{"id": 9, "owner": "bob", "body": "forged"}])
    out = await _try(world, act)
    stored = await world.stored(RNote)
    print(out, stored)
    assert not any(r[0] == 9 and r[1] == "bob" for r in stored)


async def test_transient_to_detached_hidden_row_change_team(world: RWorld) -> None:
    async def act(s: Any) -> None:
        n = RNote(id=3, owner="alice", body="bob's note in alice's team", team_id=1)
        make_transient_to_detached(n)
        s.add(n)
        team = await s.get(RTeam, 2)
        n.team_id = team.id
    out = await _try(world, act)
    stored = await world.stored(RNote)
    print(out, stored)
    assert (3, "bob", "bob's note in alice's team", 1) in stored


async def test_merge_hidden_row(world: RWorld) -> None:
    async def act(s: Any) -> None:
        await s.merge(RNote(id=3, owner="alice", body="merged", team_id=1))
    out = await _try(world, act)
    stored = await world.stored(RNote)
    print(out, stored)
    assert (3, "bob", "bob's note in alice's team", 1) in stored


async def test_merge_hidden_row_load_false(world: RWorld) -> None:
    async def act(s: Any) -> None:
        n = await s.merge(RNote(id=3, owner="alice", body="merged", team_id=1), load=False)
        n.body = "merged2"
    out = await _try(world, act)
    stored = await world.stored(RNote)
    print(out, stored)
    assert (3, "bob", "bob's note in alice's team", 1) in stored
