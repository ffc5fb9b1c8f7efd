"""Resume with ``Last-Event-ID`` or ``?last_event_id=``: exactly the missed events, in order,
filtered by the subscriber's rules; ``reset`` when the log no longer covers the id."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, update

from capebase import AuthContext
from tests.realtime._app import Task, make_app, who
from tests.realtime._live import (
    LiveServer,
    Recorded,
    Stream,
    dispatched,
    minted,
    serve,
    sse,
    wait_until,
    ws,
)

ALICE = who("alice")


def resumers(live: LiveServer, token: str) -> dict[str, Stream]:
    """alice's streams resuming after ``token``, every way there is."""
    return {
        "SSE Last-Event-ID": sse(live, {**ALICE, "Last-Event-ID": token}),
        "SSE ?last_event_id": sse(live, ALICE, last_event_id=token),
        "WS Last-Event-ID": ws(live, {**ALICE, "Last-Event-ID": token}),
        "WS ?last_event_id": ws(live, ALICE, last_event_id=token),
    }


async def test_resume_replays_exactly_the_missed_events(db_url: str) -> None:
    app, cape = make_app(db_url)
    alice, bob = AuthContext(id="alice"), AuthContext(id="bob")
    async with serve(app) as live, sse(live, ALICE) as always:
        # alice follows for a while, then drops off.
        async with sse(live, ALICE) as first:
            async with cape.get_session(alice) as session:
                mine = Task(title="mine")
                session.add(mine)
                await session.commit()
            async with cape.get_session(bob) as session:
                session.add(Task(title="bob's"))
                await session.commit()
            async with cape.get_session(alice) as session:
                session.add(Task(title="seen"))
                await session.commit()
            await first.wait_for_title("seen")
        token = first.tokens[-1]
        assert first.titles() == [("INSERT", "mine"), ("INSERT", "seen")]

        # What she misses: hers, bob's, a row leaving her view and one entering it.
        async with cape.get_session(alice) as session:
            session.add(Task(title="missed"))
            await session.commit()
        async with cape.get_session(bob) as session:
            theirs = Task(title="bob's 2")
            session.add(theirs)
            await session.commit()
        async with cape.get_privileged_session() as session:
            await session.execute(update(Task).where(Task.id == mine.id).values(owner_id="bob"))
            await session.execute(update(Task).where(Task.id == theirs.id).values(owner_id="alice"))
            await session.commit()
            session.add(Task(title="public", owner_id="alice", public=True))
            await session.commit()
            await session.execute(delete(Task).where(Task.title == "missed"))
            await session.commit()
        await dispatched(cape)

        async with AsyncExitStack() as stack:
            resumed = {
                name: await stack.enter_async_context(stream)
                for name, stream in resumers(live, token).items()
            }
            from_start = await stack.enter_async_context(
                sse(live, ALICE, last_event_id=minted(cape, "0", "alice"))
            )
            async with cape.get_session(alice) as session:
                session.add(Task(title="end"))  # live, after the replay
                await session.commit()
            await always.wait_for_title("end")
            for stream in [*resumed.values(), from_start]:
                await stream.wait_for_title("end")

    missed = [
        ("INSERT", "missed"),
        ("DELETE", None),
        ("INSERT", "bob's 2"),
        ("INSERT", "public"),
        ("DELETE", None),
        ("INSERT", "end"),
    ]
    assert always.titles() == [("INSERT", "mine"), ("INSERT", "seen"), *missed]
    after = always.tokens.index(token) + 1
    for name, got in resumed.items():
        assert got.titles() == missed, name
        assert got.messages == always.messages[after:], f"{name}: the same messages as live"
        assert not got.controls, name
    assert from_start.messages == always.messages


async def test_expired_or_unknown_ids_get_a_reset(db_url: str) -> None:
    """Also pins a bug: SQLite reused the ids of pruned changes (no AUTOINCREMENT), so the
    change after a prune of the whole log got an id the hub had passed and was never sent."""
    # Short enough to wait out, long enough that the hub's own periodic prune never removes
    # the "live" change below before it is dispatched.
    retention = timedelta(seconds=0.5)
    app, cape = make_app(db_url, retention=retention)
    alice = AuthContext(id="alice")
    async with serve(app) as live:
        async with cape.get_session(alice) as session:
            for title in ("one", "two", "three"):
                session.add(Task(title=title))
                await session.commit()
        committed = datetime.now(UTC)
        last = await dispatched(cape)
        await wait_until(
            lambda: datetime.now(UTC) - committed > retention,
            what="the changes to age past the retention window",
        )
        await cape.hub.prune()
        async with AsyncExitStack() as stack:
            expired, unknown, current = [
                [
                    await stack.enter_async_context(s)
                    for s in resumers(live, minted(cape, str(at), "alice")).values()
                ]
                for at in (1, last + 100, last)
            ]
            async with cape.get_session(alice) as session:
                session.add(Task(title="live"))
                await session.commit()
            for stream in [*expired, *unknown, *current]:
                await stream.wait_for_title("live")

    def resets(got: Recorded) -> list[tuple[str, int]]:
        return [(c["event"], c["id"]) for c in got.controls]

    for got in [*expired, *unknown]:
        assert resets(got) == [("reset", last)], "an explicit reset, never a silent gap"
        assert got.titles() == [("INSERT", "live")], "then live changes follow"
    assert "expired" in expired[0].controls[0]["reason"]
    assert "unknown" in unknown[0].controls[0]["reason"]
    for got in current:
        assert not got.controls and got.titles() == [("INSERT", "live")]


async def test_a_new_stream_says_where_it_starts_so_it_can_resume_before_any_change(
    sqlite_url: str,
) -> None:
    """A client that drops before its first change still has a position to resume from: the
    ``ready`` event (SSE) or message (WebSocket)."""
    app, cape = make_app(sqlite_url)
    async with serve(app) as live:
        for opened in (sse, ws):
            async with opened(live, who("alice")) as first:
                await wait_until(lambda f=first: bool(f.ready), what="the ready event")
            token = first.ready[0]["id"]
            async with cape.get_privileged_session() as session:
                session.add(Task(title=f"while away {opened.__name__}", owner_id="alice"))
                await session.commit()
            for resume in (sse, ws):
                async with resume(live, {**who("alice"), "Last-Event-ID": token}) as resumed:
                    await resumed.wait_for_title(f"while away {opened.__name__}")
                assert resumed.titles() == [("INSERT", f"while away {opened.__name__}")]
                assert not resumed.ready  # a resumed stream continues; it announces no start
                assert not resumed.controls
