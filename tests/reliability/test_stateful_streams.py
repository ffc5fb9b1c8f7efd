"""The stateful authorization test of tests/policy, extended across REST, SSE and WebSocket.

``LedgerMachine`` (tests/policy/test_stateful.py) has random users read and write through the
REST API and through their own sessions, checking every answer against an independent model
of the rules. Here the same machine runs against a real server, and every user also holds an
SSE and a WebSocket subscription (some with a filter). Streams are dropped and resumed at
random; at random points during the run and at the end of every example, each subscriber's
messages are compared with the change log under the model of the read rule:

- every message is exactly the view-relative event the rules allow (no denied row, no denied
  ``old`` values, no event about a row the subscriber never could see);
- once delivery settles, an open subscriber has every change it may see, in order, once,
  across its reconnections.

1,000 operations in ``make test`` (CAPEBASE_STREAM_STATEFUL_EXAMPLES x _STEPS to change it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio.from_thread
import httpx
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import rule, run_state_machine_as_test

from capebase import AuthContext
from tests.policy._support import as_, make_app
from tests.policy.models import Ledger
from tests.policy.test_stateful import USERS, LedgerMachine, World, ledger_rules, may_read
from tests.realtime._live import serve

from ._expect import expected_ids, logged_changes, problems
from ._streams import StreamClient, wait_until

EXAMPLES = int(os.environ.get("CAPEBASE_STREAM_STATEFUL_EXAMPLES", "40"))
STEPS = int(os.environ.get("CAPEBASE_STREAM_STATEFUL_STEPS", "30"))
SETTLE = 15.0
TABLE = "pol_ledger"


@dataclass
class Subscription:
    """A user's stream, the filter it asked for, and where it started."""

    user: str
    client: StreamClient
    started_after: int
    passes: Callable[[dict[str, Any]], bool]

    @property
    def ctx(self) -> AuthContext:
        return USERS[self.user]


def subscriptions(url: str) -> list[Subscription]:
    """An SSE and a WebSocket stream per user; ann's and bob's WebSockets filter on org."""
    found = []
    for user in sorted(USERS):
        for transport in ("sse", "ws"):
            org = "red" if transport == "ws" and user in ("ann", "bob") else None
            params = {"org": org} if org else {}
            client = StreamClient(
                url, f"/{TABLE}/subscribe", transport, as_(user), params
            )
            passes = (lambda row, org=org: row["org"] == org) if org else (lambda _row: True)
            found.append(Subscription(user, client, 0, passes))
    return found


@dataclass
class StreamWorld(World):
    """The policy test's world, served by uvicorn, with every user's subscriptions."""

    subscriptions: list[Subscription] = field(default_factory=list)
    checks: int = 0
    reconnects: int = 0


@pytest.fixture
def stream_world(sqlite_url: str) -> Iterator[StreamWorld]:
    app, cape = make_app(sqlite_url, USERS)
    ledger_rules(cape)
    cape.publish(Ledger)
    transport = httpx.ASGITransport(app=app)  # REST in-process; streams over the wire
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serve(app)) as live,
        portal.wrap_async_context_manager(
            httpx.AsyncClient(transport=transport, base_url="http://test")
        ) as client,
    ):
        world = StreamWorld(portal, cape, client, subscriptions=subscriptions(live.url))
        for subscription in world.subscriptions:
            world.run(subscription.client.connect)
            assert subscription.client.is_open, subscription.client
        try:
            yield world
        finally:
            for subscription in world.subscriptions:
                world.run(subscription.client.disconnect)


class StreamingLedgerMachine(LedgerMachine):
    world: StreamWorld

    def pick_subscription(self, data: st.DataObject) -> Subscription:
        index = data.draw(st.integers(0, len(self.world.subscriptions) - 1), label="stream")
        return self.world.subscriptions[index]

    @rule(data=st.data())
    def drop_a_stream(self, data: st.DataObject) -> None:
        """The client goes away (abruptly); the next writes happen while it is gone."""
        self.count("drop_a_stream")
        self.world.run(self.pick_subscription(data).client.disconnect)

    @rule(data=st.data())
    def resume_a_stream(self, data: st.DataObject) -> None:
        """The client comes back with its last token (an open one reconnects)."""
        self.count("resume_a_stream")
        client = self.pick_subscription(data).client
        self.world.run(client.connect)
        assert client.status == (101 if client.transport == "ws" else 200), client
        self.world.reconnects += 1

    @rule()
    def streams_agree_with_the_policy(self) -> None:
        self.count("check_streams")
        self.world.run(self.settle_and_check)

    def teardown(self) -> None:
        for subscription in self.world.subscriptions:
            if not subscription.client.is_open:
                self.world.run(subscription.client.connect)
        self.world.run(self.settle_and_check)

    async def settle_and_check(self) -> None:
        """Once every committed change is dispatched and every open stream has what it may
        see, each stream's messages must be exactly what the model allows."""
        world = self.world
        world.checks += 1
        log = await logged_changes(world.cape.engine, TABLE)
        last = max(log, default=0)
        await wait_until(lambda: world.cape.hub.cursor >= last, within=SETTLE,
                         what=f"dispatch up to change {last}")
        for subscription in world.subscriptions:
            client = subscription.client
            wanted = expected_ids(log, subscription.ctx, may_read,
                                  after=subscription.started_after, passes=subscription.passes)
            if client.is_open:
                await wait_until(lambda c=client, w=wanted: len(c.messages) >= len(w),
                                 within=SETTLE, what=f"{subscription.user}'s stream to settle")
                assert client.ids == wanted, (subscription.user, client.transport)
            else:
                assert client.ids == wanted[: len(client.ids)], (subscription.user, client)
            found = problems(client.messages, log, subscription.ctx, may_read,
                             passes=subscription.passes)
            assert found == [], (subscription.user, client.transport, found[:5])
            assert client.controls == [], (subscription.user, client.controls)


def test_no_user_receives_what_the_policy_denies_on_any_transport(
    stream_world: StreamWorld,
) -> None:
    machine = type("Machine", (StreamingLedgerMachine,), {"world": stream_world})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            # derandomize, database and health checks come from the profile.
        ),
    )
    world = stream_world
    messages = sum(len(s.client.messages) for s in world.subscriptions)
    print(
        f"{world.operations} operations: {world.counts}; {world.checks} stream checks, "
        f"{world.reconnects} reconnections, {messages} messages checked"
    )
    assert world.operations >= 1000 or EXAMPLES * STEPS < 1000, world.counts
