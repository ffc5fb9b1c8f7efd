"""``@cape.subscribe`` handlers: every committed change, ORM and bulk, user and privileged;
failures isolated; a rollback leaves no trace."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update

from capebase import AuthContext
from capebase.changes.change import ModelChange
from capebase.changes.changelog import changes
from tests.realtime._app import Task, make_app, who
from tests.realtime._live import dispatched, serve, sse, wait_until


class Boom(Exception):
    """Raised by the failing handler."""


async def test_handlers_see_orm_and_bulk_changes_of_user_and_privileged_sessions(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, cape = make_app(db_url)
    seen: list[ModelChange[Any]] = []
    seen_sync: list[tuple[int, str]] = []

    @cape.subscribe(Task)
    async def record(change: ModelChange[Any]) -> None:
        seen.append(change)

    @cape.subscribe(Task)
    async def fail(change: ModelChange[Any]) -> None:
        raise Boom(f"handler failed on {change.id}")

    @cape.subscribe(Task)
    def record_sync(change: ModelChange[Any]) -> None:
        seen_sync.append((change.id, change.event))

    alice = AuthContext(id="alice")
    async with serve(app):
        # ORM unit of work, as a user: insert, update, delete.
        async with cape.get_session(alice) as session:
            task = Task(title="orm")
            session.add(task)
            await session.commit()
            task.is_complete = True
            await session.commit()
            await session.delete(task)
            await session.commit()
        # Bulk statements, as a user: two rows inserted, updated, then one deleted.
        async with cape.get_session(alice) as session:
            await session.execute(
                insert(Task),
                [{"title": "bulk1", "owner_id": "alice"}, {"title": "bulk2", "owner_id": "alice"}],
            )
            await session.commit()
            await session.execute(
                update(Task).where(Task.title.in_(["bulk1", "bulk2"])).values(level=3)
            )
            await session.commit()
            await session.execute(delete(Task).where(Task.title == "bulk1"))
            await session.commit()
        # The same through a privileged session, which bypasses the policy.
        async with cape.get_privileged_session() as session:
            session.add(Task(title="priv", owner_id="bob"))
            await session.execute(insert(Task).values(title="priv-bulk", owner_id="bob"))
            await session.commit()
            await session.execute(update(Task).where(Task.owner_id == "bob").values(org_id="o9"))
            await session.execute(delete(Task).where(Task.title == "bulk2"))
            await session.commit()
        last = await dispatched(cape)
        await wait_until(
            lambda: seen_sync and seen_sync[-1][0] == last,  # the last handler, last change
            what="every handler to run on every change",
        )

    summary = [(c.event, c.payload.title, c.old) for c in seen]
    base = {
        "owner_id": "alice",
        "is_complete": False,
        "org_id": "none",
        "level": 0,
        "public": False,
    }
    orm, bulk1, bulk2 = seen[0].payload.id, seen[3].payload.id, seen[4].payload.id
    priv, priv_bulk = seen[8].payload.id, seen[9].payload.id
    assert summary == [
        ("INSERT", "orm", None),
        ("UPDATE", "orm", {**base, "id": orm, "title": "orm"}),
        ("DELETE", "orm", {**base, "id": orm, "title": "orm", "is_complete": True}),
        ("INSERT", "bulk1", None),
        ("INSERT", "bulk2", None),
        ("UPDATE", "bulk1", {**base, "id": bulk1, "title": "bulk1"}),
        ("UPDATE", "bulk2", {**base, "id": bulk2, "title": "bulk2"}),
        ("DELETE", "bulk1", {**base, "id": bulk1, "title": "bulk1", "level": 3}),
        ("INSERT", "priv", None),
        ("INSERT", "priv-bulk", None),
        ("UPDATE", "priv", {**base, "id": priv, "title": "priv", "owner_id": "bob"}),
        ("UPDATE", "priv-bulk", {**base, "id": priv_bulk, "title": "priv-bulk", "owner_id": "bob"}),
        ("DELETE", "bulk2", {**base, "id": bulk2, "title": "bulk2", "level": 3}),
    ]
    assert [c.id for c in seen] == sorted({c.id for c in seen}), "in change-id order, once each"
    assert all(isinstance(c.payload, Task) for c in seen)
    assert seen[1].payload.is_complete is True  # UPDATE payloads are the new row
    assert seen[10].payload.org_id == "o9"
    assert [(c.actor_id, c.event) for c in seen[:3]] == [
        ("alice", e) for e in ("INSERT", "UPDATE", "DELETE")
    ]
    assert seen[8].actor_id is None  # privileged
    assert seen_sync == [(c.id, c.event) for c in seen], "the plain handler saw every change"
    failures = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.exc_info and isinstance(r.exc_info[1], Boom)
    ]
    assert sorted(str(r.exc_info[1]) for r in failures if r.exc_info) == sorted(
        f"handler failed on {c.id}" for c in seen
    ), "each failure is logged with its exception"

    async with cape.engine.connect() as connection:
        pending = (
            await connection.execute(
                select(func.count()).where(changes.c.handlers_pending.is_(True))
            )
        ).scalar()
    await cape.engine.dispose()
    assert pending == 0, "a failing handler still completes the change"


async def test_rollback_leaves_no_event_and_no_change_log_row(db_url: str) -> None:
    app, cape = make_app(db_url)
    handled: list[tuple[str, str]] = []

    @cape.subscribe(Task)
    async def record(change: ModelChange[Any]) -> None:
        handled.append((change.event, change.payload.title))

    async with serve(app) as live:
        async with cape.get_privileged_session() as session:
            session.add(Task(title="kept", owner_id="alice"))
            await session.commit()
        await dispatched(cape)
        await wait_until(lambda: handled, what="the first change to be handled")
        async with sse(live, who("alice")) as stream:
            async with cape.get_session(AuthContext(id="alice")) as session:
                session.add(Task(title="rolled back"))
                await session.flush()
                await session.execute(
                    insert(Task).values(title="bulk rolled back", owner_id="alice")
                )
                await session.execute(update(Task).values(title="renamed, rolled back"))
                await session.execute(delete(Task).where(Task.title == "kept"))
                await session.rollback()
            async with cape.get_privileged_session() as session:
                session.add(Task(title="also rolled back", owner_id="alice"))
                await session.flush()
                # Leaving the block without commit rolls back too.
            async with cape.get_session(AuthContext(id="alice")) as session:
                session.add(Task(title="after"))
                await session.commit()
            await stream.wait_for_title("after")
            await wait_until(lambda: len(handled) == 2, what="the later change to be handled")
        async with cape.engine.connect() as connection:
            logged = (
                await connection.execute(select(changes.c.op, changes.c.new).order_by(changes.c.id))
            ).all()

    assert stream.titles() == [("INSERT", "after")]
    assert handled == [("INSERT", "kept"), ("INSERT", "after")]
    assert [op for op, _ in logged] == ["INSERT", "INSERT"]
    assert all("rolled back" not in (new or "") for _, new in logged)


async def test_a_bulk_delete_logs_only_the_rows_it_deleted(sqlite_url: str) -> None:
    """A bulk DELETE in a user session whose subquery the policy filters logs (and announces)
    only the rows it really deleted."""
    from fastapi import FastAPI

    from capebase import CapeBase

    app = FastAPI()
    cape = CapeBase(app=app, db_url=sqlite_url)
    cape.permission_required(Task, role="*", actions=["delete"])
    cape.permission_required(Task, owner_field="owner_id", actions=["read"])
    async with app.router.lifespan_context(app):
        async with cape.get_privileged_session() as session:
            session.add_all(
                [Task(title="mine", owner_id="alice"), Task(title="hers", owner_id="bob")]
            )
            await session.commit()
        async with cape.get_session(AuthContext(id="alice")) as session:
            # The subquery is read-filtered to alice's rows: only "mine" goes.
            await session.execute(delete(Task).where(Task.id.in_(select(Task.id))))
            await session.commit()
        async with cape.get_privileged_session() as session:
            left = (await session.execute(select(Task.title))).scalars().all()
        async with cape.engine.connect() as connection:
            logged = (
                (await connection.execute(select(changes.c.old).where(changes.c.op == "DELETE")))
                .scalars()
                .all()
            )
    assert left == ["hers"]
    assert len(logged) == 1 and '"mine"' in logged[0]
