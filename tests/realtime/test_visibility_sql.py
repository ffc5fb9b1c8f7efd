"""Streams whose rules Python cannot decide: the database judges each image, and the events are
still view-relative (a row entering the view is an INSERT, leaving it a DELETE), live and on
resume. Python decides first where it can: a stream filter the image fails needs no query.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from sqlalchemy import delete, func, update

from capebase import AuthContext, CapeBase
from tests.realtime._app import Task, make_app, who
from tests.realtime._live import dispatched, serve, sse, ws

SAM = who("sam", role="sql")


def with_sql_rule(db_url: str) -> tuple[object, CapeBase]:
    """make_app's Task, and a rule for role ``sql`` that only SQL can evaluate (a function)."""
    app, cape = make_app(db_url)
    cape.permission_required(
        Task, role="sql", where=lambda ctx: func.lower(Task.title).like("sql%"), actions=["read"]
    )
    return app, cape


def from_start(cape: CapeBase, **filters: str) -> str:
    """A resume token of sam's stream (role ``sql``, with ``filters``) before any change."""
    binding = cape.hub.binding("rt_task", AuthContext("sam", role="sql"), list(filters.items()))
    return cape.hub.tokens.issue(binding, "0")


async def changes(cape: CapeBase) -> dict[str, int]:
    """Commit one change at a time, each judged on both images by the database."""
    ids: dict[str, int] = {}
    async with cape.get_privileged_session() as session:
        for title in ("SQL a", "other"):
            row = Task(title=title, owner_id="system")
            session.add(row)
            await session.commit()
            assert row.id is not None
            ids[title] = row.id
        a, other = ids["SQL a"], ids["other"]
        for statement in (
            update(Task).where(Task.id == a).values(title="sql b"),  # still visible
            update(Task).where(Task.id == a).values(title="gone"),  # leaves the view
            update(Task).where(Task.id == other).values(title="SQL c"),  # enters it
            update(Task).where(Task.id == other).values(is_complete=True),  # enters the filter
            delete(Task).where(Task.id == other),
        ):
            await session.execute(statement)
            await session.commit()
        end = Task(title="sql end", owner_id="system", is_complete=True)
        session.add(end)
        await session.commit()
        assert end.id is not None
        ids["end"] = end.id
    return ids


async def test_the_database_decides_what_python_cannot_live_and_on_resume(db_url: str) -> None:
    app, cape = with_sql_rule(db_url)
    async with serve(app) as live, AsyncExitStack() as stack:  # type: ignore[arg-type]
        everything = await stack.enter_async_context(sse(live, SAM))
        over_ws = await stack.enter_async_context(ws(live, SAM))
        complete = await stack.enter_async_context(sse(live, SAM, is_complete="true"))
        ids = await changes(cape)
        await dispatched(cape)
        # A replay from the start judges the same changes again, through the resume path.
        replayed = await stack.enter_async_context(
            sse(live, SAM, last_event_id=from_start(cape))
        )
        # The resume point comes first in the query string: the filter after it still counts.
        replayed_complete = await stack.enter_async_context(
            sse(live, SAM, last_event_id=from_start(cape, is_complete="true"), is_complete="true")
        )
        for stream in (everything, over_ws, complete, replayed, replayed_complete):
            await stream.wait_for_title("sql end")
        # A server shutting down ends the streams without calling them expired or revoked.
        await live.stop()
        await everything.ended.wait()
    assert everything.controls == [] and everything.error is None

    a, other, end = ids["SQL a"], ids["other"], ids["end"]
    seen = [
        ("INSERT", a),
        ("UPDATE", a),
        ("DELETE", a),
        ("INSERT", other),
        ("UPDATE", other),
        ("DELETE", other),
        ("INSERT", end),
    ]
    assert everything.events() == seen
    assert over_ws.messages == everything.messages
    assert replayed.events() == seen
    # The filter is decided in Python: rows it fails are not even asked about.
    assert complete.events() == [("INSERT", other), ("DELETE", other), ("INSERT", end)]
    assert replayed_complete.events() == complete.events()
    assert everything.messages[1]["old"]["title"] == "SQL a"
    assert everything.messages[1]["payload"]["title"] == "sql b"
