"""Change capture's row images and keys: as stored, composite keys, changed keys, and when
capture is off or a session has nowhere to report.

Each test reads the change log itself (op, pk, old and new images), the one record every
consumer (streams, handlers, the audit log) is built from.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import delete, event, insert, select, update
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import AuthContext, CapeBase
from capebase.changes.capture import _rows_by_key
from capebase.changes.change import ModelChange
from capebase.changes.changelog import changes
from capebase.db.sessions import make_sessionmaker, open_session
from capebase.errors import UnfilterableStatementError
from capebase.observer import ObserverSlot
from tests.realtime._app import Task, make_app
from tests.realtime._live import dispatched, serve, wait_until


class CaptureModel(SQLModel, registry=registry()):
    """Tables of these tests, in a registry of their own."""

    __test__ = False


class Pair(CaptureModel, table=True):
    """A composite primary key, and a column only the database fills in."""

    __tablename__ = "rt_pair"

    shelf: str = Field(primary_key=True, max_length=20)
    slot: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    note: str
    stamp: str | None = Field(
        default=None, max_length=20, sa_column_kwargs={"server_default": "stored"}
    )


@asynccontextmanager
async def pair_app(db_url: str) -> AsyncIterator[CapeBase]:
    """A running CapeBase whose sessions may write Pair (composite keys cannot be published,
    but their changes are captured all the same)."""
    cape = CapeBase(app=FastAPI(), db_url=db_url)
    async with serve(cape.app):
        async with cape.engine.begin() as connection:
            await connection.run_sync(CaptureModel.metadata.create_all)
        yield cape


async def logged(cape: CapeBase) -> list[tuple[str, Any, Any, Any]]:
    """Every change-log row so far: (op, pk, old, new), the JSON decoded."""
    async with cape.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(changes.c.op, changes.c.pk, changes.c.old, changes.c.new).order_by(
                    changes.c.id
                )
            )
        ).all()
    return [
        (op, json.loads(pk), old and json.loads(old), new and json.loads(new))
        for op, pk, old, new in rows
    ]


async def test_images_are_the_rows_as_stored_not_as_the_object_knows_them(db_url: str) -> None:
    """A column the database filled in, or an attribute expired before the change, is in the
    logged images with its stored value (the object's own state would say NULL)."""
    app, cape = make_app(db_url)
    async with serve(app), cape.get_privileged_session() as session:
        task = Task(title="a", owner_id="alice")
        session.add(task)
        await session.commit()
        session.expire(task, ["title"])
        task.level = 5
        await session.commit()
        session.expire(task, ["title"])
        await session.delete(task)
        await session.commit()
    log = [
        (op, pk, old and old["title"], new and new["title"])
        for op, pk, old, new in await logged(cape)
    ]
    assert log == [
        ("INSERT", task.id, None, "a"),
        ("UPDATE", task.id, "a", "a"),
        ("DELETE", task.id, "a", None),
    ]


async def test_composite_keys_are_logged_as_lists_and_bulk_updates_find_their_rows(
    db_url: str,
) -> None:
    async with pair_app(db_url) as cape, cape.get_privileged_session() as session:
        session.add_all(
            [Pair(shelf="s", slot=1, note="one"), Pair(shelf="s", slot=2, note="two")]
        )
        await session.commit()
        await session.execute(update(Pair), [{"shelf": "s", "slot": 1, "note": "uno"}])
        await session.commit()
    log = [
        (op, pk, old and old["note"], new and (new["note"], new["stamp"]))
        for op, pk, old, new in await logged(cape)
    ]
    assert log == [
        ("INSERT", ["s", 1], None, ("one", "stored")),
        ("INSERT", ["s", 2], None, ("two", "stored")),
        ("UPDATE", ["s", 1], "one", ("uno", "stored")),
    ]


async def test_rows_by_key_reads_exactly_the_rows_of_the_keys(db_url: str) -> None:
    async with pair_app(db_url) as cape:
        async with cape.get_privileged_session() as session:
            session.add_all(
                [Pair(shelf=s, slot=n, note=f"{s}{n}") for s in ("s", "t") for n in (1, 2)]
            )
            await session.commit()
        table = Pair.__table__
        async with cape.engine.connect() as connection:
            rows = await connection.run_sync(
                lambda sync: _rows_by_key(sync, table, [("s", 1), ("t", 2)])  # type: ignore[arg-type]
            )
    assert sorted(row["note"] for row in rows) == ["s1", "t2"]


async def test_a_changed_primary_key_logs_the_old_row_under_its_old_key(db_url: str) -> None:
    """Regression: the old image was looked up under the new key, found nothing, and was taken
    from the object's history instead, where an expired attribute looked NULL."""
    async with pair_app(db_url) as cape, cape.get_privileged_session() as session:
        pair = Pair(shelf="s", slot=1, note="one")
        session.add(pair)
        await session.commit()
        session.expire(pair, ["note"])
        pair.slot = 7
        await session.commit()
    assert (await logged(cape))[1] == (
        "UPDATE",
        ["s", 7],
        {"shelf": "s", "slot": 1, "note": "one", "stamp": "stored"},
        {"shelf": "s", "slot": 7, "note": "one", "stamp": "stored"},
    )


async def test_an_object_changed_once_the_flush_began_has_the_old_image_it_loaded(
    db_url: str,
) -> None:
    """An application's own before_flush listener, run after capture read the stored rows, may
    change another object: its old image is what the object loaded, and an attribute whose old
    value it never loaded keeps its current value there (not NULL, which rules would read as
    a real value)."""
    app, cape = make_app(db_url)
    async with serve(app), cape.get_privileged_session() as session:
        first = Task(title="first", owner_id="alice")
        second = Task(title="second", owner_id="bob", level=1)
        session.add_all([first, second])
        await session.commit()
        session.expire(second, ["title"])

        def touch_second(_session: Any, _flush: Any, _instances: Any) -> None:
            if second.level == 1:
                second.level = 2
                second.title = "renamed"

        event.listen(session.sync_session, "before_flush", touch_second)
        first.level = 3
        await session.commit()
    updates = {pk: (old, new) for op, pk, old, new in await logged(cape) if op == "UPDATE"}
    row = {"owner_id": "alice", "is_complete": False, "org_id": "none", "public": False}
    assert updates[first.id] == (
        {**row, "id": first.id, "title": "first", "level": 0},
        {**row, "id": first.id, "title": "first", "level": 3},
    )
    row = {**row, "id": second.id, "owner_id": "bob", "title": "renamed"}
    assert updates[second.id] == ({**row, "level": 1}, {**row, "level": 2})
    assert len(updates) == 2


async def test_nothing_is_captured_when_capture_is_off(db_url: str) -> None:
    app, cape = make_app(db_url, capture=False)
    async with serve(app):
        async with cape.get_privileged_session() as session:
            task = Task(title="a", owner_id="alice")
            session.add(task)
            await session.commit()
            task.level = 1
            await session.commit()
            await session.execute(insert(Task).values(title="b", owner_id="bob"))
            await session.execute(update(Task).values(level=2))
            await session.execute(delete(Task).where(Task.title == "b"))
            await session.delete(task)
            await session.commit()
        async with cape.get_session(AuthContext(id="alice")) as session:
            session.add(Task(title="c"))
            await session.commit()
    assert await logged(cape) == []


async def test_a_session_with_nowhere_to_report_captures_nothing(db_url: str) -> None:
    """``open_session`` without a sink: the policy applies, nothing is captured."""
    app, cape = make_app(db_url)
    async with serve(app):
        factory = make_sessionmaker(cape.engine, ObserverSlot())
        async with open_session(factory, cape.policy, AuthContext(id="alice")) as session:
            session.add(Task(title="a"))
            await session.commit()
            await session.execute(update(Task).values(level=2))
            await session.commit()
            assert (await session.execute(select(Task.owner_id, Task.level))).all() == [
                ("alice", 2)
            ]
    assert await logged(cape) == []


async def test_a_commit_wakes_the_dispatcher_at_once(db_url: str) -> None:
    """Handlers run on a commit in well under the poll interval: the commit woke the hub."""
    app, cape = make_app(db_url, poll_interval=60)
    seen: list[str] = []

    @cape.subscribe(Task)
    async def record(change: ModelChange[Any]) -> None:
        seen.append(change.payload.title)

    async with serve(app):
        for title in ("a", "b"):  # "a" may be read by the dispatch at startup; "b" not
            async with cape.get_privileged_session() as session:
                session.add(Task(title=title, owner_id="alice"))
                await session.commit()
            await wait_until(lambda: seen[-1:] == [title], what=f"{title}, before a poll")  # noqa: B023
            await dispatched(cape)


@pytest.mark.parametrize("ctx", [None, AuthContext(id="alice")], ids=["privileged", "user"])
async def test_insert_returning_is_refused_with_what_to_do_instead(
    db_url: str, ctx: AuthContext | None
) -> None:
    app, cape = make_app(db_url)
    async with serve(app), (
        cape.get_privileged_session() if ctx is None else cape.get_session(ctx)
    ) as session:
        with pytest.raises(UnfilterableStatementError) as refused:
            await session.execute(
                insert(Task).values(title="a", owner_id="alice").returning(Task.id)
            )
    assert str(refused.value) == (
        "insert(...).returning(...) is not supported in capebase sessions yet: drop "
        "returning() and read the rows back, or add the objects with session.add_all()"
    )
    assert await logged(cape) == []


async def test_a_flush_of_some_objects_logs_only_what_it_wrote(db_url: str) -> None:
    """Regression: ``session.flush([a])`` logged every pending change of the session, though it
    wrote only ``a``'s: an INSERT with a NULL key for an object not inserted yet, a DELETE of a
    row still there; the commit then logged them again."""
    app, cape = make_app(db_url)
    async with serve(app), cape.get_privileged_session() as session:
        a, b, gone = (Task(title=t, owner_id="alice") for t in ("a", "b", "gone"))
        session.add_all([a, gone])
        await session.commit()
        a.level = 1
        session.add(b)
        await session.delete(gone)
        with pytest.warns(DeprecationWarning):  # SQLAlchemy 2.1 deprecates flush(objects)
            await session.flush([a])
        connection = await session.connection()
        ops = select(changes.c.op, changes.c.pk).order_by(changes.c.id)
        assert (await connection.execute(ops)).all()[2:] == [("UPDATE", str(a.id))]
        await session.commit()
    assert sorted((op, pk) for op, pk, _old, _new in (await logged(cape))[2:]) == [
        ("DELETE", gone.id), ("INSERT", b.id), ("UPDATE", a.id)
    ]
