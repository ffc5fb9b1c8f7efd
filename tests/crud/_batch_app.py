"""The app of the bulk create and batch tests: two tables, rules that decide per row, and
readers of the database and the change log that bypass the routes."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from sqlalchemy import delete, func, select
from sqlmodel import Field

from capebase import FROM_AUTH_ID, CapeBase
from capebase.changes.changelog import changes
from tests.apps import make_cape
from tests.models import TestModel

HIDDEN_FROM = 100
"""A card with ``qty >= HIDDEN_FROM`` is readable by its owner only."""


class Card(TestModel, table=True):
    """An autoincrement key, an owner, a value the write rule judges, a unique column."""

    __tablename__ = "bulk_card"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True)
    title: str = Field(max_length=50)
    qty: int = 0
    label: str | None = Field(default=None, unique=True, max_length=50)


class Memo(TestModel, table=True):
    """A key the client chooses; published without a delete route."""

    __tablename__ = "bulk_memo"

    id: str = Field(primary_key=True, max_length=40)
    body: str = Field(max_length=100)


EDITOR = "editor"

MEMO_ROUTES = ["list", "get", "create", "update", "subscribe"]
FORBIDDEN = "forbidden"
"""A memo body no one may write."""


def make_app(db_url: str, **options: Any) -> tuple[FastAPI, CapeBase]:
    """Cards: read by the owner, or by anyone below ``HIDDEN_FROM``; created, updated and
    deleted by the owner with ``qty >= 0`` only, updated by an ``EDITOR`` too (who may so
    move a card out of their own view). Memos: read by anyone, written by anyone
    (anonymous callers too) unless the body is ``FORBIDDEN``."""
    app, cape = make_cape(db_url, **options)
    cape.publish(Card)
    cape.publish(Memo, routes=MEMO_ROUTES)
    cape.permission_required(Card, owner_field="owner_id", actions=["read"])
    cape.permission_required(Card, where=lambda _ctx: Card.qty < HIDDEN_FROM, actions=["read"])
    cape.permission_required(Card, owner_field="owner_id", where=lambda _ctx: Card.qty >= 0,
                             actions=["create", "update", "delete"])
    cape.permission_required(Card, role=EDITOR, where=lambda _ctx: Card.qty >= 0,
                             actions=["update"])
    cape.permission_required(Memo, role="*", actions=["read"])
    cape.permission_required(Memo, role="*", where=lambda _ctx: Memo.body != FORBIDDEN,
                             actions=["create", "update"])
    return app, cape


async def last_change(cape: CapeBase) -> int:
    async with cape.engine.connect() as connection:
        return (await connection.execute(select(func.max(changes.c.id)))).scalar() or 0


async def changes_after(cape: CapeBase, after: int) -> list[tuple[str, str, Any]]:
    """``(table, op, key)`` of each change-log entry after ``after``, in order."""
    query = (select(changes.c.table_name, changes.c.op, changes.c.pk)
             .where(changes.c.id > after).order_by(changes.c.id))
    async with cape.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [(table, op, json.loads(pk)) for table, op, pk in rows]


async def stored(cape: CapeBase) -> dict[str, list[dict[str, Any]]]:
    """Every row of both tables, by table, in key order."""
    found = {}
    async with cape.engine.connect() as connection:
        for model in (Card, Memo):
            table = model.__table__  # type: ignore[attr-defined]
            result = await connection.execute(select(table).order_by(table.c.id))
            found[table.name] = [dict(row) for row in result.mappings()]
    return found


async def wipe(cape: CapeBase) -> None:
    async with cape.engine.begin() as connection:
        for model in (Card, Memo):
            await connection.execute(delete(model.__table__))  # type: ignore[attr-defined]


def comparable(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """``rows`` without the card keys the database assigns (they differ between two runs)."""
    return {
        table: [{k: v for k, v in row.items() if not (table == "bulk_card" and k == "id")}
                for row in table_rows]
        for table, table_rows in rows.items()
    }
