"""Attack (a): a text column compared with a number given by the app. fallible._mixes_types
only looks at two *columns*; MariaDB converts the text of every row it meets and warns,
quoting it ("Truncated incorrect DOUBLE value: 'b-secret'")."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Integer, literal, select, type_coerce
from tests._databases import DbKind
from tests.security._shapes import Note, World, open_world

from .test_a1_fallible_shapes import _outcome


@pytest.fixture
async def world(db_url: str, db_kind: DbKind) -> AsyncIterator[World]:
    async with open_world(db_url, db_kind) as opened:
        yield opened


PROBES = {
    "eq int bind": lambda: select(Note.id).where(Note.body == 5),
    "in int list": lambda: select(Note.id).where(Note.body.in_([5, 6])),
    "type_coerce literal": lambda: select(Note.id).where(Note.body == type_coerce(5, Integer)),
    "literal int": lambda: select(Note.id).where(Note.body > literal(5)),
}


@pytest.mark.parametrize("probe", list(PROBES))
async def test_mixed_type_bind_warns_on_hidden(world: World, probe: str) -> None:
    async with world.session() as session:
        mine, warns = await _outcome(session, PROBES[probe]())
    print(probe, mine, warns)
    assert not any(s in w for w in warns for s in ("b-secret", "case")), warns
