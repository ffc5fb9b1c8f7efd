"""Attack (a) with a rule that has a subquery: PostgreSQL/MariaDB turn it into a semi-join
and run a term on the scan, before the join drops hidden rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.orm import aliased

from ._costly import CNote, CWorld, compare, costly_world


@pytest.fixture(params=["exists", "in"])
async def world(request: Any, db_url: str, db_kind: str) -> AsyncIterator[CWorld]:
    async with costly_world(db_url, db_kind, request.param) as opened:
        yield opened


def fail_on(col: Any, kind: str) -> Any:
    """Fails (or warns, MariaDB) only where col is "b-secret": hidden note 3's body."""
    picked = case((col == "b-secret", col), else_="{}" if kind != "postgresql" else "1")
    if kind in ("sqlite", "mariadb"):
        return func.json_extract(picked, "$.a")
    return cast(picked, Integer)


def _ok(mine: Any, expected: Any) -> bool:
    return mine[0] == "refused" or mine == expected


async def test_where_term(world: CWorld) -> None:
    stmt = select(CNote.id).where(fail_on(CNote.body, world.kind).is_(None))
    mine, expected = await compare(world, stmt)
    assert _ok(mine, expected)


async def test_aliased_subquery_column(world: CWorld) -> None:
    n = aliased(CNote)
    sub = select(n.id.label("id"), n.body.label("b")).subquery()
    stmt = select(sub.c.id).where(fail_on(sub.c.b, world.kind).is_(None))
    mine, expected = await compare(world, stmt)
    assert _ok(mine, expected)


async def test_select_list_term(world: CWorld) -> None:
    stmt = select(CNote.id, fail_on(CNote.body, world.kind))
    mine, expected = await compare(world, stmt)
    assert _ok(mine, expected)


async def test_union_second_member_bare_column(world: CWorld) -> None:
    """coverage._origin checks a compound's first member only."""
    from sqlalchemy import union_all

    sub = union_all(
        select(func.lower(CNote.body).label("b")).where(CNote.id == 1),
        select(CNote.body.label("b")),
    ).subquery()
    stmt = select(sub.c.b).where(fail_on(sub.c.b, world.kind).is_(None))
    mine, expected = await compare(world, stmt)
    assert _ok(mine, expected)


async def test_cte_aliased_column(world: CWorld) -> None:
    n = aliased(CNote)
    cte = select(n.id.label("id"), n.body.label("b")).cte("c")
    stmt = select(cte.c.id).where(fail_on(cte.c.b, world.kind).is_(None))
    mine, expected = await compare(world, stmt)
    assert _ok(mine, expected)
