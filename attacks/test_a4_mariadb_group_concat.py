"""Attack (a), MariaDB: GROUP_CONCAT's truncation warning quotes a row counter
("Row N was cut by GROUP_CONCAT()"). If N counts rows the WHERE (policy) dropped, the warning
depends on hidden rows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from tests.security._shapes import Note, World, open_world

from .test_a1_fallible_shapes import _outcome


@pytest.fixture
async def world(db_url: str, db_kind: str) -> AsyncIterator[World]:
    if db_kind != "mariadb":
        pytest.skip("MariaDB only")
    async with open_world(db_url, db_kind) as opened:
        yield opened


async def test_group_concat_warning_row_counter(world: World) -> None:
    stmt = select(func.length(func.group_concat(func.repeat(Note.body, 300000))))
    async with world.session() as session:
        mine = await _outcome(session, stmt)
    async with world.cape.get_privileged_session() as session:
        await session.execute(Note.__table__.delete().where(Note.id.in_([3, 5])))
        expected = await _outcome(session, stmt)
    print("\nmine", mine, "\nexpected", expected)
    assert mine == expected
