"""What a subscriber should have received, computed from the change log and an independent
model of the read rule, and a comparison that names every difference.

This is the stream side of "no user ever receives what the policy denies": every message a
subscriber got must be exactly the view-relative event the model allows for that change (no
extra rows, no denied ``old`` values), and, once delivery has settled, nothing it may see is
missing and nothing came twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from capebase import AuthContext
from capebase.changes.changelog import changes

Row = dict[str, Any]
ReadRule = Callable[[AuthContext, Row], bool]
RowFilter = Callable[[Row], bool]


@dataclass(frozen=True, slots=True)
class LoggedChange:
    """One row of the change log, its images decoded."""

    id: int
    op: str
    pk: str
    old: Row | None
    new: Row | None


async def logged_changes(engine: AsyncEngine, table: str) -> dict[int, LoggedChange]:
    """Every change to ``table`` in the log, by id."""
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(changes.c.id, changes.c.op, changes.c.pk, changes.c.old, changes.c.new)
                .where(changes.c.table_name == table)
                .order_by(changes.c.id)
            )
        ).all()
    return {
        row.id: LoggedChange(
            row.id,
            row.op,
            row.pk,
            json.loads(row.old) if row.old else None,
            json.loads(row.new) if row.new else None,
        )
        for row in rows
    }


def _everything(_row: Row) -> bool:
    return True


def view_event(
    change: LoggedChange, ctx: AuthContext, may_read: ReadRule, passes: RowFilter = _everything
) -> str | None:
    """The event this subscriber should get for ``change``, relative to what it can see."""
    was = change.old is not None and passes(change.old) and may_read(ctx, change.old)
    now = change.new is not None and passes(change.new) and may_read(ctx, change.new)
    if was and now:
        return "UPDATE"
    if now:
        return "INSERT"
    if was:
        return "DELETE"
    return None


def expected_ids(
    log: dict[int, LoggedChange],
    ctx: AuthContext,
    may_read: ReadRule,
    *,
    after: int,
    passes: RowFilter = _everything,
) -> list[int]:
    """The change ids a subscriber resuming after ``after`` should receive, in order."""
    return [
        change_id
        for change_id, change in sorted(log.items())
        if change_id > after and view_event(change, ctx, may_read, passes) is not None
    ]


def problems(
    received: Iterable[dict[str, Any]],
    log: dict[int, LoggedChange],
    ctx: AuthContext,
    may_read: ReadRule,
    *,
    pk: str = "id",
    passes: RowFilter = _everything,
) -> list[str]:
    """Every message that is not exactly what the model allows this subscriber to see."""
    found = []
    for message in received:
        change = log.get(int(message["id"]))
        if change is None:
            found.append(f"message for unknown change {message['id']}")
            continue
        expected = view_event(change, ctx, may_read, passes)
        event, payload, old = message["event"], message["payload"], message["old"]
        if event != expected:
            found.append(f"change {change.id}: got {event}, the policy allows {expected}")
            continue
        if event == "DELETE":
            wanted_payload: Row | None = {pk: payload.get(pk)}
            if str(payload.get(pk)) != change.pk:
                found.append(f"change {change.id}: DELETE of {payload} for row {change.pk}")
        else:
            wanted_payload = change.new
        if payload != wanted_payload:
            found.append(f"change {change.id}: payload {payload} is not {wanted_payload}")
        wanted_old = None if event == "INSERT" else change.old
        if old != wanted_old:
            found.append(f"change {change.id}: old {old} is not {wanted_old}")
        if old is not None and not may_read(ctx, old):
            found.append(f"change {change.id}: old values {old} the caller may not read")
    return found
