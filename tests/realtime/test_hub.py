"""The hub and its dispatcher, exactly: per-client limits and their messages, what a resume
point replays (its holes, an expired or unknown id, the reset's position), ids skipped by a
late commit (holes: watched, filled, given up, capped), ending a user's or a view's streams,
and the periodic re-check of sign-ins.

Real servers, real commits, real SSE and WebSocket streams. A change committed "late" (a
transaction that took its id before a later one committed) is written to the change log with
that id, through the engine: the state PostgreSQL's sequences reach under concurrency, which
SQLite's serialised writers never do by themselves.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI, Header
from sqlalchemy import func, insert, select, text

from capebase import AuthContext, CapeBase, ModelChange
from capebase.changes.changelog import ChangeRecord, changes
from capebase.db.direct import DirectExecutor
from capebase.errors import NotStartedError, TooManySubscriptionsError
from capebase.observer import Observer
from capebase.realtime import hub as hub_module
from capebase.realtime.config import RealtimeConfig
from capebase.realtime.dispatcher import MAX_HOLES, Reset
from capebase.realtime.hub import RECANCEL_INTERVAL, _cancel_and_wait
from capebase.realtime.resume import ResumePoint
from capebase.realtime.subscribers import Subscriber
from tests.realtime._app import Task, make_app, who
from tests.realtime._live import (
    TIMEOUT,
    dispatched,
    last_change_id,
    position,
    serve,
    sse,
    wait_until,
    ws,
)

ALICE = AuthContext(id="alice")
PER_CLIENT = (
    "Too many open subscriptions for this client (at most {}, "
    "RealtimeConfig.max_subscriptions_per_client); close one or retry later"
)


async def commit(cape: CapeBase, user: str, *titles: str) -> None:
    """Commit one task per title as ``user``, in one transaction."""
    async with cape.get_session(AuthContext(id=user)) as session:
        session.add_all([Task(title=title) for title in titles])
        await session.commit()


async def late_commit(
    cape: CapeBase, change_id: int, title: str, owner: str = "alice", table: str = "rt_task"
) -> None:
    """Commit the INSERT of a task as change ``change_id``, as a transaction that took its id
    earlier commits now: through the engine, so no session wakes the hub."""
    row = {"id": change_id, "owner_id": owner, "title": title, "is_complete": False,
           "org_id": "none", "level": 0, "public": False}
    async with cape.engine.begin() as connection:
        await connection.execute(insert(changes).values(
            id=change_id, table_name=table, op="INSERT", pk=str(change_id),
            new=json.dumps(row), actor_id=owner, created_at=datetime.now(UTC),
            handlers_pending=False,
        ))
        if connection.dialect.name == "postgresql":  # the next id a session takes is above it
            await connection.execute(text(
                "SELECT setval(pg_get_serial_sequence('capebase_changes', 'id'), "
                "(SELECT max(id) FROM capebase_changes))"
            ))


async def replayed(cape: CapeBase, point: ResumePoint, ctx: AuthContext = ALICE) -> list[Any]:
    """What the hub replays to ``ctx``'s unfiltered stream of tasks resuming at ``point``:
    ``(id, title)`` of each change, or the Reset."""
    subscriber = cape.hub.add_subscriber(cape.hub.views["rt_task"], ctx, [])
    try:
        items = [item async for item in cape.hub.replay(subscriber, point)]
    finally:
        cape.hub.remove_subscriber(subscriber)
    return [
        item if isinstance(item, Reset) else (item[0], json.loads(item[1])["payload"]["title"])
        for item in items
    ]


# -- subscriptions ---------------------------------------------------------------------------


async def test_per_client_and_process_limits_refuse_with_their_messages(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url, max_subscriptions_per_client=2, max_subscriptions=4)
    async with serve(app) as live:
        async with sse(live, who("alice")) as first, ws(live, who("alice")) as second:
            async with sse(live, who("alice")) as third, ws(live, who("alice")) as fourth:
                await third.ended.wait()
                await fourth.ended.wait()
            assert (first.status, second.status) == (200, 101)
            assert third.status == 429
            assert third.controls == [{"detail": PER_CLIENT.format(2)}]
            assert fourth.close_code == 1013
            assert cape.hub._per_client == {"user:alice": 2}
        await wait_until(lambda: cape.hub.subscriber_count == 0, what="alice's streams to end")
        assert cape.hub._per_client == {}
        async with sse(live, who("alice")) as first:
            # One closed of two: one more may open, not two.
            async with sse(live, who("alice")) as second:
                pass
            await wait_until(lambda: cape.hub.subscriber_count == 1, what="a stream to end")
            assert cape.hub._per_client == {"user:alice": 1}
            async with (
                sse(live, who("alice")) as again,
                sse(live, who("alice")) as over,
                sse(live, who("bob")) as bob,
                sse(live, {}) as anonymous,
                sse(live, who("carol")) as carol,
            ):
                await over.ended.wait()
                await carol.ended.wait()
                assert cape.hub._per_client == {
                    "user:alice": 2, "user:bob": 1, "address:127.0.0.1": 1
                }
        assert (second.status, again.status, over.status) == (200, 200, 429)
        assert (bob.status, anonymous.status) == (200, 200)
        assert carol.status == 429
        assert carol.controls == [{"detail": "Too many open subscriptions; retry later"}]
        assert first.status == 200


async def test_the_hub_counts_streams_per_named_client_only(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url, max_subscriptions_per_client=1, max_subscriptions=3)
    async with serve(app):
        hub, view = cape.hub, cape.hub.views["rt_task"]
        unnamed = [hub.add_subscriber(view, ALICE, []) for _ in range(3)]
        assert hub._per_client == {} and hub._client_of == {}
        with pytest.raises(TooManySubscriptionsError) as refused:
            hub.add_subscriber(view, ALICE, [], client="c")
        assert str(refused.value) == "Too many open subscriptions; retry later"
        hub.remove_subscriber(unnamed.pop())
        named = hub.add_subscriber(view, ALICE, [], client="c")
        assert hub._per_client == {"c": 1}
        hub.remove_subscriber(unnamed.pop())
        with pytest.raises(TooManySubscriptionsError) as refused:
            hub.add_subscriber(view, ALICE, [], client="c")
        assert str(refused.value) == PER_CLIENT.format(1)
        other = hub.add_subscriber(view, ALICE, [], client="d")
        assert hub._per_client == {"c": 1, "d": 1}
        for subscriber in (named, other, *unnamed):
            hub.remove_subscriber(subscriber)
            assert subscriber.closed
        assert (hub._per_client, hub._client_of, hub.subscriber_count) == ({}, {}, 0)
        hub.remove_subscriber(named)  # twice: nothing to forget
        assert hub.subscriber_count == 0


async def test_a_stream_is_filed_under_the_values_its_rules_pin(sqlite_url: str) -> None:
    """alice's only rule pins the owner: her stream is offered alice's rows, not bob's (the
    rules decide again for each candidate, so filing is what keeps a change's cost to the
    streams that may see it)."""
    app, cape = make_app(sqlite_url)
    async with serve(app):
        hub = cape.hub
        index = hub._indexes["rt_task"]
        alice = hub.add_subscriber(hub.views["rt_task"], ALICE, [])
        assert index.candidates(({"owner_id": "bob"}, None)) == set()
        assert index.candidates((None, {"owner_id": "alice"})) == {alice}
        # Rules added at run time: the next subscribe re-files alice, under one more pin...
        cape.permission_required(Task, owner_field="title", actions=["read"])
        bob = hub.add_subscriber(hub.views["rt_task"], AuthContext(id="bob"), [])
        assert index.candidates(({"owner_id": "carol", "title": "x"}, None)) == set()
        assert index.candidates(({"owner_id": "carol", "title": "alice"}, None)) == {alice}
        # ... then under none: a rule that pins nothing lets her see any row.
        cape.permission_required(
            Task, where=lambda ctx: Task.public == True, actions=["read"]  # noqa: E712
        )
        carol = hub.add_subscriber(hub.views["rt_task"], AuthContext(id="carol"), [])
        assert index.candidates(({"owner_id": "dave"}, None)) == {alice, bob, carol}
        for subscriber in (alice, bob, carol):
            hub.remove_subscriber(subscriber)
        assert index.candidates((None, {"owner_id": "alice", "title": "alice"})) == set()


# -- ending streams --------------------------------------------------------------------------


async def test_disconnecting_a_user_ends_their_open_streams_only(db_url: str) -> None:
    app, cape = make_app(db_url)
    async with (
        serve(app) as live,
        sse(live, who("alice")) as over_sse,
        ws(live, who("alice")) as over_ws,
        sse(live, who("bob")) as bob,
    ):
        hub = cape.hub
        closed = hub.add_subscriber(hub.views["rt_task"], ALICE, [])
        closed.close()  # ended but not yet forgotten: not counted again
        await commit(cape, "alice", "before")
        await over_sse.wait_for_title("before")
        await over_ws.wait_for_title("before")
        assert hub.disconnect_user("alice") == 2
        assert not closed.revoked
        await wait_until(lambda: over_sse.ended.is_set() and over_ws.ended.is_set(),
                         what="alice's streams to end")
        assert hub.disconnect_user("alice") == 0
        await commit(cape, "bob", "bob's")
        await bob.wait_for_title("bob's")
        hub.remove_subscriber(closed)
    assert over_sse.controls == [{"event": "expired", "reason": "credentials expired or revoked"}]
    assert over_ws.close_code == 1008
    assert over_sse.titles() == over_ws.titles() == [("INSERT", "before")]
    assert not bob.controls and bob.titles() == [("INSERT", "bob's")]


async def test_the_broker_echo_of_a_disconnect_ends_nothing_here(sqlite_url: str) -> None:
    """disconnect_user ends this process's streams at once and tells the others through the
    broker, which echoes the message back: the echo (signed with this process's id) must not
    end a stream the user opened since; the same message from another process does."""
    app, cape = make_app(sqlite_url)
    async with serve(app):
        hub = cape.hub
        assert hub.disconnect_user("alice") == 0
        since = hub.add_subscriber(hub.views["rt_task"], ALICE, [])
        hub.link._received_disconnect(f"{hub.process_id}:alice".encode())
        assert not since.closed
        hub.link._received_disconnect(b"0123456789abcdef0123456789abcdef:alice")
        assert since.closed and since.revoked
        hub.remove_subscriber(since)


async def test_removing_a_view_ends_its_streams_and_its_delivery(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url)
    async with (
        serve(app) as live,
        sse(live, who("alice")) as over_sse,
        ws(live, who("alice")) as over_ws,
    ):
        hub = cape.hub
        view = hub.views["rt_task"]
        await commit(cape, "alice", "before")
        await over_sse.wait_for_title("before")
        await over_ws.wait_for_title("before")
        hub.remove_view("rt_task")
        await wait_until(lambda: over_sse.ended.is_set() and over_ws.ended.is_set(),
                         what="the streams to end")
        assert "rt_task" not in hub.views and hub.subscriber_count == 0
        hub.remove_view("rt_task")  # again, and a table never streamed: nothing happens
        hub.remove_view("nothing")
        await commit(cape, "alice", "after")
        await dispatched(cape)
        hub.add_view(view)
        subscriber = hub.add_subscriber(view, ALICE, [])
        await commit(cape, "alice", "back")
        await dispatched(cape)
        assert [json.loads(text)["payload"]["title"] for _, text in subscriber.queue.take(10)] \
            == ["back"]
        hub.remove_subscriber(subscriber)
    assert not over_sse.controls and over_sse.error is None
    assert over_ws.close_code == 1001  # going away: not a revocation (1008)
    assert over_sse.titles() == over_ws.titles() == [("INSERT", "before")]


SignIn = tuple[str, str, str | None]


def session_app(db_url: str, **realtime: Any) -> tuple[FastAPI, CapeBase]:
    """Tasks streamed to callers whose sign-in (``X-Session``) a re-check may end."""

    async def auth(
        x_user: str | None = Header(None),
        x_session: str | None = Header(None),
        x_role: str | None = Header(None),
    ) -> AuthContext:
        return AuthContext(id=x_user, session=x_session, role=x_role)

    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=auth,
                    realtime=RealtimeConfig(**realtime))
    cape.publish(Task)
    cape.permission_required(Task, owner_field="owner_id", actions=["*"])
    cape.permission_required(Task, role="admin", actions=["read"])
    return app, cape


def signed_in(user: str, session: str | None, role: str | None = None) -> dict[str, str]:
    headers = who(user, role=role)
    if session is not None:
        headers["X-Session"] = session
    return headers


async def test_the_re_check_ends_exactly_the_streams_whose_sign_in_ended(db_url: str) -> None:
    app, cape = session_app(db_url, revalidate_interval=3600)
    asked: list[set[SignIn]] = []
    ended: set[SignIn] = set()

    async def revalidate(sign_ins: set[SignIn]) -> set[SignIn]:
        asked.append(set(sign_ins))
        return ended

    async with (
        serve(app) as live,
        sse(live, signed_in("alice", "s1")) as alice_1,
        ws(live, signed_in("alice", "s1")) as alice_1_ws,
        sse(live, signed_in("alice", "s2", "admin")) as alice_2,
        sse(live, signed_in("bob", "s3")) as bob,
        sse(live, signed_in("carol", None)) as carol,
    ):
        hub = cape.hub
        assert await hub.revalidate_streams() == 0  # no re-check without the built-in auth
        hub.revalidate = revalidate
        closed = hub.add_subscriber(hub.views["rt_task"], AuthContext(id="dave", session="s4"), [])
        closed.close()
        assert await hub.revalidate_streams() == 0
        everyone = {("alice", "s1", None), ("alice", "s2", "admin"), ("bob", "s3", None)}
        assert asked == [everyone]
        ended.update({("alice", "s1", None), ("bob", "s3", "admin"), ("eve", "s5", None)})
        assert await hub.revalidate_streams() == 2
        await wait_until(lambda: alice_1.ended.is_set() and alice_1_ws.ended.is_set(),
                         what="alice's first sign-in's streams to end")
        assert asked[1] == everyone
        assert await hub.revalidate_streams() == 0
        assert asked[2] == everyone - {("alice", "s1", None)}
        await commit(cape, "bob", "bob's")
        await alice_2.wait_for_title("bob's")
        await bob.wait_for_title("bob's")
        hub.remove_subscriber(closed)
    assert await cape.hub.revalidate_streams() == 0  # no stream open: nothing to ask
    assert len(asked) == 3
    assert alice_1.controls == [{"event": "expired", "reason": "credentials expired or revoked"}]
    assert alice_1_ws.close_code == 1008
    assert not alice_2.controls and not bob.controls and not carol.controls
    assert not closed.revoked


async def test_sign_ins_are_re_checked_every_interval_and_a_failure_is_survived(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, cape = session_app(sqlite_url, revalidate_interval=0.05)
    calls: list[set[SignIn]] = []

    async def revalidate(sign_ins: set[SignIn]) -> set[SignIn]:
        calls.append(sign_ins)
        if len(calls) == 1:
            raise OSError("the database is away")
        return set(sign_ins)

    async with serve(app) as live:
        cape.hub.revalidate = revalidate
        async with sse(live, signed_in("alice", "s1")) as stream:
            await wait_until(lambda: stream.ended.is_set(), what="the re-check to end it")
    assert len(calls) >= 2
    assert stream.controls == [{"event": "expired", "reason": "credentials expired or revoked"}]
    warnings = [r.getMessage() for r in caplog.records if r.name == "capebase.realtime"]
    assert "capebase: could not re-check stream sign-ins (the database is away)" in warnings


# -- replay ----------------------------------------------------------------------------------


async def test_a_resume_points_holes_are_replayed_first_when_visible_and_of_its_table(
    db_url: str,
) -> None:
    app, cape = make_app(db_url)
    async with serve(app):
        await commit(cape, "alice", "a1")       # 1
        await commit(cape, "bob", "b2")         # 2: not alice's
        await commit(cape, "alice", "a3")       # 3
        await late_commit(cape, 4, "other", table="rt_elsewhere")
        await commit(cape, "alice", "a5")       # 5
        await commit(cape, "alice", "a6", "a7")  # 6, 7
        await dispatched(cape)
        # The client had up to 5 but 1, 2, 3 and 4, and 0 (no change) as unsettled.
        assert await replayed(cape, ResumePoint(5, (1, 2, 3, 4))) == [
            (1, "a1"), (3, "a3"), (6, "a6"), (7, "a7")
        ]
        assert await replayed(cape, ResumePoint(5, (3,))) == [(3, "a3"), (6, "a6"), (7, "a7")]
        assert await replayed(cape, ResumePoint(5)) == [(6, "a6"), (7, "a7")]
        assert await replayed(cape, ResumePoint(7, (1, 2))) == [(1, "a1")]
        assert await replayed(cape, ResumePoint(0)) == [
            (1, "a1"), (3, "a3"), (5, "a5"), (6, "a6"), (7, "a7")
        ]
        assert await replayed(cape, ResumePoint(5), AuthContext(id="bob")) == []


async def test_a_replay_reads_the_log_in_batches(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url, replay_batch=2)
    async with serve(app):
        for title in ("t1", "t2", "t3", "t4", "t5"):
            await commit(cape, "alice", title)
        await commit(cape, "bob", "b6")
        await commit(cape, "bob", "b7")
        await dispatched(cape)
        assert await replayed(cape, ResumePoint(0)) == [
            (1, "t1"), (2, "t2"), (3, "t3"), (4, "t4"), (5, "t5")
        ]
        assert await replayed(cape, ResumePoint(2, (1,))) == [
            (1, "t1"), (3, "t3"), (4, "t4"), (5, "t5")
        ]
        assert await replayed(cape, ResumePoint(5)) == []


async def test_expired_and_unknown_resume_points_reset_to_the_streams_position(
    db_url: str,
) -> None:
    retention = timedelta(seconds=0.3)
    app, cape = make_app(db_url, retention=retention)
    async with serve(app):
        await commit(cape, "alice", "a1")
        await commit(cape, "alice", "a2")
        await commit(cape, "alice", "a3")
        committed = datetime.now(UTC)
        await dispatched(cape)
        await wait_until(lambda: datetime.now(UTC) - committed > retention * 2,
                         what="the changes to age")
        await cape.hub.prune()  # pruned through 3
        await commit(cape, "alice", "a4")
        await dispatched(cape)
        cursor = cape.hub.cursor
        assert cursor == 4

        def reset(last_id: int, reason: str) -> list[tuple[int, str]]:
            return [(cursor, f"last event id {last_id} is {reason}; reload and follow live")]

        def resets(items: list[Any]) -> list[tuple[int, str]]:
            found = [item for item in items if isinstance(item, Reset)]
            assert all(item.token == "" for item in found)  # the transport signs its own
            return [(item.id, item.reason) for item in found]

        assert resets(await replayed(cape, ResumePoint(2))) == reset(2, "expired")
        assert resets(await replayed(cape, ResumePoint(0))) == reset(0, "expired")
        assert await replayed(cape, ResumePoint(3)) == [(4, "a4")]
        assert await replayed(cape, ResumePoint(4)) == []
        assert resets(await replayed(cape, ResumePoint(5))) == reset(5, "unknown")
        assert resets(await replayed(cape, ResumePoint(105, (4,)))) == reset(105, "unknown")


async def test_a_resume_point_ahead_of_this_process_is_known_and_wakes_it(db_url: str) -> None:
    """Another process dispatched changes this one has not read yet (it polls once a minute
    here and nothing woke it): a token from there is not unknown, and the resume makes this
    process read the log at once."""
    app, cape = make_app(db_url, poll_interval=60)
    async with serve(app) as live:
        await commit(cape, "alice", "a1")
        await dispatched(cape)
        await late_commit(cape, 2, "elsewhere 2")
        await late_commit(cape, 3, "elsewhere 3")
        assert cape.hub.cursor == 1
        assert await replayed(cape, ResumePoint(3)) == []  # known, and nothing to replay
        await dispatched(cape)  # the resume woke the dispatcher
        await late_commit(cape, 4, "elsewhere 4")
        await late_commit(cape, 5, "elsewhere 5")
        assert cape.hub.cursor == 3
        # Up to this process's position only: 4 and 5 reach the stream live.
        assert await replayed(cape, ResumePoint(2)) == [(3, "elsewhere 3")]
        await dispatched(cape)
        await late_commit(cape, 6, "elsewhere 6")
        assert cape.hub.cursor == 5
        unknown = await replayed(cape, ResumePoint(7))
        assert [(r.id, r.reason) for r in unknown] == [
            (5, "last event id 7 is unknown; reload and follow live")
        ]
        await dispatched(cape)
        async with sse(live, who("alice")) as stream:
            await late_commit(cape, 7, "elsewhere 7")
            cape.hub.notify()
            await stream.wait_for_title("elsewhere 7")


async def test_a_resume_point_on_an_empty_or_wholly_pruned_log(db_url: str) -> None:
    retention = timedelta(seconds=0.3)
    app, cape = make_app(db_url, poll_interval=60, retention=retention)
    # "Another process" writes 1 and 2 and prunes them all before this one reads them: this
    # dispatcher is held from the start (a wake-up at start could read them first).
    dispatcher = cape.hub.dispatcher

    async def held() -> None:
        return None

    dispatcher.dispatch_pending = held  # type: ignore[method-assign]
    async with serve(app):
        assert [(r.id, r.reason) for r in await replayed(cape, ResumePoint(1))] == [
            (0, "last event id 1 is unknown; reload and follow live")
        ]
        assert await replayed(cape, ResumePoint(0)) == []
        await late_commit(cape, 1, "elsewhere 1")
        await late_commit(cape, 2, "elsewhere 2")
        written = datetime.now(UTC)
        await wait_until(lambda: datetime.now(UTC) - written > retention * 2,
                         what="the changes to age")
        await cape.hub.prune()
        del dispatcher.dispatch_pending
        assert cape.hub.cursor == 0
        assert [(r.id, r.reason) for r in await replayed(cape, ResumePoint(1))] == [
            (0, "last event id 1 is expired; reload and follow live")
        ]
        assert [(r.id, r.reason) for r in await replayed(cape, ResumePoint(2))] == [
            (0, "last event id 2 is unknown; reload and follow live")
        ]


# -- holes -----------------------------------------------------------------------------------


async def test_skipped_ids_are_watched_named_in_tokens_and_delivered_when_they_commit(
    db_url: str,
) -> None:
    app, cape = make_app(db_url)
    async with serve(app) as live, sse(live, who("alice")) as stream:
        await commit(cape, "alice", "a1")  # 1
        await stream.wait_for_title("a1")
        assert cape.hub.unsettled() == [] and not cape.hub.has_holes
        await late_commit(cape, 3, "a3")  # 2 still open
        cape.hub.notify()
        await stream.wait_for_title("a3")
        assert cape.hub.unsettled() == [2] and cape.hub.has_holes
        await late_commit(cape, 7, "a7")  # 4, 5, 6 still open
        cape.hub.notify()
        await stream.wait_for_title("a7")
        assert cape.hub.unsettled() == [2, 4, 5, 6]
        await late_commit(cape, 5, "a5")
        cape.hub.notify()
        await stream.wait_for_title("a5")
        assert cape.hub.unsettled() == [2, 4, 6]
        await late_commit(cape, 2, "b2", owner="bob")  # not alice's: settled all the same
        await late_commit(cape, 8, "a8")
        cape.hub.notify()
        await stream.wait_for_title("a8")
        assert cape.hub.unsettled() == [4, 6]
        await late_commit(cape, 6, "a6")
        cape.hub.notify()
        await stream.wait_for_title("a6")
        await late_commit(cape, 4, "a4")
        cape.hub.notify()
        await stream.wait_for_title("a4")
        await wait_until(lambda: not cape.hub.has_holes, what="every hole to fill")
        await commit(cape, "alice", "a9")
        await stream.wait_for_title("a9")
    assert stream.titles() == [
        ("INSERT", t) for t in ("a1", "a3", "a7", "a5", "a8", "a6", "a4", "a9")
    ]
    assert [position(token) for token in stream.tokens] == [
        "1", "3~2", "7~2,4,5,6", "7~2,4,6", "8~4,6", "8~4", "8", "9"
    ]


async def test_a_late_commit_is_judged_by_the_database_when_python_cannot(db_url: str) -> None:
    app, cape = make_app(db_url)
    cape.permission_required(
        Task, role="sql", where=lambda ctx: func.lower(Task.title).like("sql%"), actions=["read"]
    )
    async with serve(app) as live, sse(live, who("sam", role="sql")) as stream:
        await late_commit(cape, 3, "SQL three", owner="system")  # 1 and 2 open
        cape.hub.notify()
        await stream.wait_for_title("SQL three")
        await late_commit(cape, 1, "not one", owner="system")
        await late_commit(cape, 2, "Sql two", owner="system")
        cape.hub.notify()
        await stream.wait_for_title("Sql two")
        assert not cape.hub.has_holes
        sam = AuthContext(id="sam", role="sql")
        assert await replayed(cape, ResumePoint(3, (1, 2)), sam) == [(2, "Sql two")]
    assert stream.titles() == [("INSERT", "SQL three"), ("INSERT", "Sql two")]


async def test_a_hole_not_committed_within_the_late_commit_window_is_given_up(
    sqlite_url: str,
) -> None:
    app, cape = make_app(sqlite_url, late_commit_window=0.2)
    async with serve(app) as live, sse(live, who("alice")) as stream:
        await commit(cape, "alice", "a1")
        await late_commit(cape, 4, "a4")  # 2 and 3 open
        cape.hub.notify()
        await stream.wait_for_title("a4")
        assert cape.hub.unsettled() == [2, 3]
        await late_commit(cape, 2, "a2")  # within the window
        cape.hub.notify()
        await stream.wait_for_title("a2")
        assert cape.hub.unsettled() == [3]
        loop_time = asyncio.get_running_loop().time
        since = loop_time()
        await wait_until(lambda: loop_time() - since > 0.4, what="the window to pass")
        await commit(cape, "alice", "a5")
        await stream.wait_for_title("a5")
        assert cape.hub.unsettled() == []
        await late_commit(cape, 3, "a3")  # too late: given up
        await commit(cape, "alice", "a6")
        await stream.wait_for_title("a6")
    assert stream.titles() == [("INSERT", t) for t in ("a1", "a4", "a2", "a5", "a6")]


async def test_at_most_max_holes_ids_are_watched(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url)
    async with serve(app) as live, sse(live, who("alice")) as stream:
        await commit(cape, "alice", "a1")
        jump = 1 + MAX_HOLES + 5
        await late_commit(cape, jump, "far")
        cape.hub.notify()
        await stream.wait_for_title("far")
        assert cape.hub.unsettled() == list(range(2, 2 + MAX_HOLES))
        await late_commit(cape, jump + 3, "further")
        cape.hub.notify()
        await stream.wait_for_title("further")
        assert len(cape.hub.unsettled()) == MAX_HOLES
        await late_commit(cape, 2, "late")
        cape.hub.notify()
        await stream.wait_for_title("late")
        assert len(cape.hub.unsettled()) == MAX_HOLES - 1
        assert cape.hub.unsettled()[0] == 3
    # More holes than a token holds: resume from below the lowest.
    assert [position(token) for token in stream.tokens] == ["1", "1", "1", "2"]


async def test_ids_missing_below_the_log_end_at_start_are_watched(db_url: str) -> None:
    app, cape = make_app(db_url)
    async with serve(app):
        for change_id in (3, 6):
            await late_commit(cape, change_id, f"a{change_id}")
    again, cape_again = make_app(db_url)
    async with serve(again):
        assert cape_again.hub.cursor == 6
        assert cape_again.hub.unsettled() == [1, 2, 4, 5]
        await late_commit(cape_again, 4, "a4")  # watched since the start: filled
        cape_again.hub.notify()
        await wait_until(lambda: cape_again.hub.unsettled() == [1, 2, 5], what="4 to fill")
    app, cape = make_app(db_url)
    async with serve(app):
        for change_id in (1500, 1603, 2601):
            await late_commit(cape, change_id, f"a{change_id}")
    again, cape_again = make_app(db_url)
    async with serve(again):
        assert cape_again.hub.cursor == 2601
        watched = cape_again.hub.unsettled()
        assert watched == [1602, *range(1604, 2601)]  # the last 1000 ids only


# -- dispatch --------------------------------------------------------------------------------


async def test_a_change_nothing_announced_is_read_within_the_poll_interval(
    sqlite_url: str,
) -> None:
    app, cape = make_app(sqlite_url, poll_interval=0.05)
    async with serve(app) as live, sse(live, who("alice")) as stream:
        await late_commit(cape, 1, "a1")  # no session, no notify, no broker message
        await stream.wait_for_title("a1")
        await late_commit(cape, 2, "a2")
        await stream.wait_for_title("a2")


async def test_the_log_is_read_through_the_engine_without_a_driver_path(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A driver the direct executor does not know (for_engine gives None): the dispatcher
    reads the log through SQLAlchemy, in batches, as it does on the driver path."""
    app, cape = make_app(sqlite_url)
    log_query = cape.hub.dispatcher._log_after
    assert cape.direct is not None and cape.hub.dispatcher.direct is cape.direct
    assert cape.direct._prebuilt[id(log_query)][0] is log_query  # built once, run per commit
    monkeypatch.setattr(DirectExecutor, "for_engine", classmethod(lambda cls, engine: None))
    app, cape = make_app(sqlite_url, replay_batch=2, poll_interval=60)
    assert cape.hub.dispatcher.direct is None
    async with serve(app) as live, sse(live, who("alice")) as stream:
        await commit(cape, "alice", "a1", "a2", "a3")
        await stream.wait_for_title("a3")
        await commit(cape, "bob", "b4")
        await commit(cape, "alice", "a5")
        await stream.wait_for_title("a5")
    assert stream.titles() == [("INSERT", t) for t in ("a1", "a2", "a3", "a5")]
    assert [position(token) for token in stream.tokens] == ["1", "2", "3", "5"]


async def test_streams_ended_but_not_yet_forgotten_are_skipped_not_the_others(
    sqlite_url: str,
) -> None:
    app, cape = make_app(sqlite_url, poll_interval=60)
    async with serve(app):
        hub = cape.hub
        subscribers = [hub.add_subscriber(hub.views["rt_task"], ALICE, []) for _ in range(20)]
        for ended in subscribers[::2]:
            ended.close()  # ended, not yet unsubscribed: still among the candidates
        await commit(cape, "alice", "a1")
        await dispatched(cape)
        assert [
            [json.loads(text)["payload"]["title"] for _, text in subscriber.queue.take(10)]
            for subscriber in subscribers[1::2]
        ] == [["a1"]] * 10
        for subscriber in subscribers:
            hub.remove_subscriber(subscriber)


async def test_a_transaction_larger_than_a_batch_is_dispatched_at_once(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url, replay_batch=2, poll_interval=60)
    async with serve(app) as live, sse(live, who("alice")) as stream:
        titles = [f"t{i}" for i in range(1, 8)]
        await commit(cape, "alice", *titles)
        await stream.wait_for_title("t7", within=TIMEOUT)
        assert await last_change_id(cape) == 7
    assert stream.titles() == [("INSERT", t) for t in titles]


async def test_delivery_goes_on_after_the_log_was_unreadable(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, cape = make_app(sqlite_url, poll_interval=60)
    async with serve(app) as live, sse(live, who("alice")) as stream:
        await commit(cape, "alice", "a1")
        await stream.wait_for_title("a1")
        async with cape.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE capebase_changes RENAME TO away"))
        cape.hub.notify()
        await wait_until(
            lambda: sum("change log still unreadable" in r.getMessage()
                        for r in caplog.records) >= 1,
            what="two failed reads",
        )
        async with cape.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE away RENAME TO capebase_changes"))
        await late_commit(cape, 2, "a2")  # nothing wakes the hub: its retry does
        await stream.wait_for_title("a2")
        # A second outage is reported as the first was: the count started again.
        async with cape.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE capebase_changes RENAME TO away"))
        cape.hub.notify()
        await wait_until(
            lambda: sum(r.getMessage() == "capebase: reading the change log failed; retrying"
                        for r in caplog.records) == 2,
            what="the second outage",
        )
        async with cape.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE away RENAME TO capebase_changes"))
        await late_commit(cape, 3, "a3")
        await stream.wait_for_title("a3")
        async with cape.engine.connect() as connection:
            assert (await connection.execute(select(func.count()).select_from(changes))).scalar()
    messages = [r.getMessage() for r in caplog.records if r.name == "capebase.realtime"]
    failed = messages.index("capebase: reading the change log failed; retrying")
    again = messages.index("capebase: change log readable again; delivery goes on")
    assert failed < again
    assert all("still unreadable" in m for m in messages[failed + 1:again])
    assert messages.count("capebase: change log readable again; delivery goes on") == 2
    assert [r.levelno for r in caplog.records if r.getMessage() == messages[failed]] \
        == [logging.ERROR] * 2


# -- lifecycle -------------------------------------------------------------------------------

TASKS = {
    "capebase-dispatch", "capebase-handlers", "capebase-maintenance", "capebase-revalidate",
    "capebase-broker-publish", "capebase-broker-listen", "capebase-server-exit",
}


async def test_the_hubs_tasks_are_named_and_end_with_it(sqlite_url: str) -> None:
    """A stack dump of a running app names what each of the hub's tasks is."""
    app, _cape = make_app(sqlite_url)
    async with serve(app):
        running = [task.get_name() for task in asyncio.all_tasks()]
        assert sorted(name for name in running if name.startswith("capebase-")) == sorted(TASKS)
    assert not TASKS & {task.get_name() for task in asyncio.all_tasks()}


async def test_maintenance_that_fails_is_logged_and_retried(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "MAINTENANCE_INTERVAL", 0.05)
    failed = "capebase: change-log maintenance failed; retrying"
    app, cape = make_app(sqlite_url, poll_interval=60)
    async with serve(app) as live, sse(live, who("alice")) as stream:
        async with cape.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE capebase_changes RENAME TO away"))
        await wait_until(
            lambda: sum(r.getMessage() == failed for r in caplog.records) >= 2,
            what="maintenance to fail twice",
        )
        async with cape.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE away RENAME TO capebase_changes"))
        await commit(cape, "alice", "a1")
        await stream.wait_for_title("a1")
    records = [r for r in caplog.records if r.getMessage() == failed]
    assert all(r.levelno == logging.ERROR and r.exc_info for r in records)


SHUTDOWN_LEFT = "capebase: shutdown left changes unhandled; the next start handles them"


async def test_a_shutdown_that_cannot_read_the_log_says_so_and_stops(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, cape = make_app(sqlite_url, poll_interval=60)
    async with serve(app):
        await commit(cape, "alice", "a1")
        await dispatched(cape)
        async with cape.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE capebase_changes RENAME TO away"))
    left = [r for r in caplog.records if r.getMessage() == SHUTDOWN_LEFT]
    assert [r.levelno for r in left] == [logging.WARNING]
    assert left[0].exc_info is not None and left[0].exc_info[0] is not None
    assert not TASKS & {task.get_name() for task in asyncio.all_tasks()}
    await cape.hub.stop()  # stopped again: nothing left to stop
    async with cape.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE away RENAME TO capebase_changes"))


async def test_tokens_need_a_started_hub_and_a_hub_never_started_stops(sqlite_url: str) -> None:
    _app, cape = make_app(sqlite_url)
    with pytest.raises(NotStartedError, match="lifespan running"):
        cape.hub.tokens  # noqa: B018
    cape.hub.notify()  # a commit announced before the start: nothing to wake yet, no error
    await cape.hub.stop()  # a lifespan that failed before the hub started
    assert cape.hub.subscriber_count == 0


async def test_rules_added_at_run_time_reach_open_streams(sqlite_url: str) -> None:
    """alice's stream is filed under her owner id (her only rule); a rule added while it is
    open lets her read public rows, which the hub must then offer her."""
    app, cape = make_app(sqlite_url)
    async with serve(app) as live, sse(live, who("alice")) as stream:
        async with cape.get_privileged_session() as session:
            session.add(Task(title="public before", owner_id="bob", public=True))
            await session.commit()
        await commit(cape, "alice", "mine")
        await stream.wait_for_title("mine")
        cape.permission_required(
            Task, where=lambda ctx: Task.public == True, actions=["read"]  # noqa: E712
        )
        async with cape.get_privileged_session() as session:
            session.add(Task(title="public after", owner_id="bob", public=True))
            await session.commit()
        await stream.wait_for_title("public after")
    assert stream.titles() == [("INSERT", "mine"), ("INSERT", "public after")]


class Recording(Observer):
    """What the hub reports to an app's observer (metrics), in order."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def subscription_opened(self, subscriber: Subscriber) -> None:
        self.seen.append(("opened", subscriber.ctx.id))

    def subscription_closed(self, subscriber: Subscriber) -> None:
        self.seen.append(("closed", subscriber.ctx.id))

    def change_dispatched(self, record: ChangeRecord) -> None:
        self.seen.append(("dispatched", record.id))

    def change_offered(self, subscriber: Subscriber, record: ChangeRecord) -> None:
        self.seen.append(("offered", subscriber.ctx.id, record.id))

    def broker_state(self, connected: bool, *, outage: bool = False) -> None:
        self.seen.append(("broker", connected, outage))


async def test_the_hub_reports_streams_changes_and_the_broker_to_the_observer(
    sqlite_url: str,
) -> None:
    app, cape = make_app(sqlite_url)
    recording = Recording()
    cape.hub.observers.observer = recording
    async with serve(app) as live:
        async with sse(live, who("alice")) as alice, sse(live, who("bob")) as bob:
            await wait_until(lambda: cape.hub.subscriber_count == 2, what="two streams")
            await commit(cape, "alice", "a1")
            await commit(cape, "bob", "b2")
            await alice.wait_for_title("a1")
            await bob.wait_for_title("b2")
        await wait_until(lambda: cape.hub.subscriber_count == 0, what="the streams to close")
    seen = recording.seen
    assert seen[0] == ("broker", True, False)
    assert [e for e in seen if e[0] in ("dispatched", "offered")] == [
        ("dispatched", 1), ("offered", "alice", 1), ("dispatched", 2), ("offered", "bob", 2)
    ]
    assert sorted(e for e in seen if e[0] == "opened") == [("opened", "alice"), ("opened", "bob")]
    assert sorted(set(e for e in seen if e[0] == "closed")) == [
        ("closed", "alice"), ("closed", "bob")
    ]


async def test_stopping_cancels_a_task_that_swallowed_its_cancellation_again() -> None:
    """Python 3.11's wait_for can swallow a cancellation (redis-py wraps socket writes in it):
    the hub cancels such a task again after ``RECANCEL_INTERVAL`` instead of waiting for it."""
    cancelled: list[int] = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(1)  # swallowed: carries on
        try:
            await asyncio.sleep(10)  # not waited for: cancelled again
        except asyncio.CancelledError:
            cancelled.append(2)
            raise

    async def failed() -> None:
        raise LookupError("what the task raised")

    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(stubborn()), asyncio.create_task(asyncio.sleep(3600))]
    await asyncio.sleep(0)
    started = loop.time()
    await _cancel_and_wait(tasks)
    assert RECANCEL_INTERVAL * 0.9 <= loop.time() - started < RECANCEL_INTERVAL + 2
    assert cancelled == [1, 2] and all(task.done() for task in tasks)
    broken = asyncio.create_task(failed())
    await asyncio.sleep(0)
    with pytest.raises(LookupError, match="what the task raised"):
        await _cancel_and_wait([broken])
    await _cancel_and_wait([])


async def test_changes_of_a_table_with_handlers_reach_them(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url)
    handled: list[tuple[int, str]] = []

    @cape.subscribe(Task)
    async def record(change: ModelChange[Any]) -> None:
        handled.append((change.id, change.event))

    async with serve(app) as live, sse(live, who("alice")) as stream:
        assert cape.hub.has_handlers("rt_task") and not cape.hub.has_handlers("other")
        await commit(cape, "alice", "a1")
        await stream.wait_for_title("a1")
        await wait_until(lambda: handled, what="the handler")
    assert handled == [(1, "INSERT")]
    # The change was claimed by this process, under an id no other process has.
    async with cape.engine.connect() as connection:
        claimed = (await connection.execute(select(changes.c.claimed_by))).scalars().all()
    _other_app, other = make_app(sqlite_url)
    assert claimed == [cape.hub.process_id] and other.hub.process_id != cape.hub.process_id
