"""SQL that a model's mapping (a column's type, a column_property, a relationship's
primaryjoin/order_by, polymorphic_on) adds as a statement compiles is refused in a user
session (``policy.mapper_sql``): it read rows the caller may not read (third confirmation
review of issue 16). OWASP API Security Top 10 (2023): API1:2023 Broken Object Level
Authorization.

Oracle: bob's doc (secret "bob-secret") is hidden from alice. Each statement must be refused
(UnfilterableStatementError) or give what it gives with bob's doc deleted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select
from sqlalchemy.orm import joinedload, selectinload, undefer

from capebase import UnfilterableStatementError
from capebase.testing import app_client

from ._mapper_world import (
    ALICE,
    CoercedProp,
    DeferredRaw,
    Doc,
    Folder,
    RawProp,
    Shape,
    Typed,
    make,
    seed,
)


def _plain(value: Any) -> Any:
    if hasattr(value, "__table__"):
        state = {k: _plain(v) for k, v in vars(value).items() if not k.startswith("_")}
        return (type(value).__name__, sorted(state.items(), key=repr))
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def _run(session: Any, statement: Any) -> Any:
    rows = (await session.execute(statement)).unique().all()
    return sorted((tuple(_plain(v) for v in row) for row in rows), key=repr)


STATEMENTS: dict[str, Callable[[], Any]] = {
    # high: plain select(Model) of a model whose column type has column_expression
    "select(Model), a mapped column's type has column_expression": lambda: select(Typed),
    "selectinload of a model whose column type has column_expression": lambda: select(Folder)
    .where(Folder.id == 1).options(selectinload(Folder.typed_children)),
    "joinedload of a model whose column type has column_expression": lambda: select(Folder)
    .where(Folder.id == 1).options(joinedload(Folder.typed_children)),
    # high: column_property of literal SQL (select(RawProp.raw) alone is refused)
    "select(Model) with column_property(literal_column)": lambda: select(RawProp),
    "select(Model) with column_property(type_coerce(col, type with column_expression))":
        lambda: select(CoercedProp),
    "undefer(deferred(literal_column))": lambda: select(DeferredRaw)
    .options(undefer(DeferredRaw.lazy_raw)),
    # high: relationship primaryjoin with app SQL, rendered by joinedload / join
    "joinedload of a relationship whose primaryjoin is app SQL": lambda: select(Folder)
    .where(Folder.id == 1).options(joinedload(Folder.probed_docs)),
    "join(relationship) whose primaryjoin is app SQL": lambda: select(Folder.id, Doc.id)
    .join(Folder.probed_docs),
    # medium: relationship order_by with app SQL, rendered by joinedload
    "joinedload of a relationship whose order_by is app SQL": lambda: select(Folder)
    .where(Folder.id == 1).options(joinedload(Folder.ordered_docs)),
    # medium: polymorphic_on expression: the class of alice's row tells a hidden row exists
    "select(Model) with polymorphic_on reading another table": lambda: select(Shape),
}


@pytest.mark.parametrize("name", list(STATEMENTS))
async def test_mapper_sql_is_refused_or_reads_only_permitted_rows(
    name: str, db_url: str
) -> None:
    app = FastAPI()
    cape = make(db_url, app)
    async with app_client(app):
        await seed(cape)
        async with cape.get_privileged_session() as session:
            await session.execute(delete(Doc).where(Doc.id == 3))
            expected = await _run(session, STATEMENTS[name]())
            await session.rollback()
        async with cape.get_session(ALICE) as session:
            try:
                got = await _run(session, STATEMENTS[name]())
            except UnfilterableStatementError:
                return
    assert got == expected


async def test_deferred_literal_sql_loaded_on_access(db_url: str) -> None:
    """The load of a deferred column_property on attribute access."""
    app = FastAPI()
    cape = make(db_url, app)
    async with app_client(app):
        await seed(cape)
        async with cape.get_session(ALICE) as session:
            try:
                row = (await session.execute(select(DeferredRaw))).scalar_one()
                value = await session.run_sync(lambda _: row.lazy_raw)
            except UnfilterableStatementError:
                return
    assert value != "bob-secret"
