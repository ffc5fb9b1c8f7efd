"""Change capture of bulk UPDATEs: by primary keys (privileged) and by WHERE (users alike).

Each change is checked where it lands: the change-log row, the stream event, the handler call
and the audit entry. A row a bulk statement leaves as it was is no change, anywhere.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from capebase import AuthContext
from capebase.changes.change import ModelChange
from capebase.changes.changelog import changes
from tests.realtime._app import Task, make_app, who
from tests.realtime._live import dispatched, serve, sse, wait_until


async def test_bulk_updates_log_exactly_the_rows_they_change(db_url: str) -> None:
    app, cape = make_app(db_url)
    handled: list[tuple[str, str]] = []

    @cape.subscribe(Task)
    async def record(change: ModelChange[Any]) -> None:
        handled.append((change.event, change.payload.title))

    async with serve(app) as live, sse(live, who("root", role="admin")) as stream:
        async with cape.get_privileged_session() as session:
            rows = [Task(title=t, owner_id="alice", level=1) for t in ("a", "b", "c", "d")]
            session.add_all(rows)
            await session.commit()
            a, b, c, d = (row.id for row in rows)
        after_inserts = await dispatched(cape)
        async with cape.get_privileged_session() as session:
            # Bulk UPDATE by primary keys: a changes; b is "changed" to what it holds.
            await session.execute(
                update(Task), [{"id": a, "title": "a2"}, {"id": b, "title": "b"}]
            )
            await session.commit()
        async with cape.get_session(AuthContext(id="alice")) as session:
            # Bulk UPDATE by WHERE as a user: c and d match, only d changes.
            await session.execute(update(Task).where(Task.id.in_([c, d])).values(level=1))
            await session.execute(update(Task).where(Task.id.in_([c, d])).values(title="c"))
            await session.commit()
        async with cape.get_privileged_session() as session:
            session.add(Task(title="end", owner_id="alice"))
            await session.commit()
        last = await dispatched(cape)
        await stream.wait_for_title("end")
        await wait_until(lambda: ("INSERT", "end") in handled, what="the handler to see the end")

    expected = [("UPDATE", a, "a", "a2", None), ("UPDATE", d, "d", "c", "alice")]
    async with cape.engine.connect() as connection:
        logged = (
            await connection.execute(
                select(changes.c.op, changes.c.pk, changes.c.actor_id)
                .where(changes.c.id > after_inserts, changes.c.id < last)
                .order_by(changes.c.id)
            )
        ).all()
    assert [tuple(row) for row in logged] == [
        ("UPDATE", str(pk), actor) for _op, pk, _old, _new, actor in expected
    ]
    updates = [m for m in stream.messages if m["event"] == "UPDATE"]
    assert [(m["payload"]["id"], m["old"]["title"], m["payload"]["title"]) for m in updates] == [
        (pk, old, new) for _op, pk, old, new, _actor in expected
    ]
    assert [h for h in handled if h[0] == "UPDATE"] == [("UPDATE", "a2"), ("UPDATE", "c")]
    entries = await cape.audit.query(table=Task, limit=100)
    audited = [e for e in reversed(entries) if e.op == "UPDATE"]
    assert [
        (e.op, e.pk, e.old and e.old["title"], e.new and e.new["title"], e.actor_id)
        for e in audited
    ] == expected
