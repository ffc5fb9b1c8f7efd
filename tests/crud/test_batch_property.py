"""Random batches of valid, invalid and denied operations across two tables: a batch either
does exactly what its operations do when sent one by one (the same answers, rows and change
log), or nothing at all (rows and change log unchanged) and answers the failure the one-by-one
run meets; on the three databases, on the fast path and the reference."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from capebase import CapeBase
from capebase.testing import app_client
from tests._hypothesis import scaled
from tests.apps import as_user
from tests.crud._batch_app import (
    FORBIDDEN,
    HIDDEN_FROM,
    Card,
    Memo,
    changes_after,
    comparable,
    last_change,
    make_app,
    stored,
    wipe,
)

pytestmark = pytest.mark.usefixtures("fast_or_reference")

BASE = 1_000_000  # far above the keys the databases assign, which differ between runs
CARDS = [(BASE + 1, "alice", 5), (BASE + 2, "bob", 5), (BASE + 3, "bob", HIDDEN_FROM),
         (BASE + 4, "alice", 1)]
CARD_KEYS = [key for key, *_ in CARDS] + [BASE + 99]  # the last one is missing
MEMO_KEYS = ["m0", "m1", "m2"]
CALLERS = {"alice": as_user("alice"), "bob": as_user("bob"), "anonymous": {}}
UPFRONT = (400, 422)
"""The statuses a batch answers before it writes anything: no such route, an invalid body."""


@dataclass(frozen=True)
class Op:
    method: str
    url: str
    body: dict[str, Any] | None
    is_invalid: bool
    """Refused whatever the data: an invalid body or a route that is not published."""

    def as_json(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url} | (
            {} if self.body is None else {"body": self.body})


qty = st.sampled_from([0, 3, -1, HIDDEN_FROM + 50])  # -1: denied; above HIDDEN_FROM: hidden
memo_body = st.sampled_from(["x", "y", FORBIDDEN])
valid = st.one_of(
    st.builds(lambda t, q: Op("POST", "/bulk_card", {"title": t, "qty": q}, False),
              st.sampled_from(["a", "b"]), qty),
    st.builds(lambda k, q: Op("PATCH", f"/bulk_card/{k}", {"qty": q}, False),
              st.sampled_from(CARD_KEYS), qty),
    st.builds(lambda k: Op("DELETE", f"/bulk_card/{k}", None, False), st.sampled_from(CARD_KEYS)),
    st.builds(lambda k, b: Op("POST", "/bulk_memo", {"id": k, "body": b}, False),
              st.sampled_from(MEMO_KEYS), memo_body),
    st.builds(lambda k, b: Op("PATCH", f"/bulk_memo/{k}", {"body": b}, False),
              st.sampled_from(MEMO_KEYS), memo_body),
)
invalid = st.one_of(
    st.builds(lambda k: Op("PATCH", f"/bulk_card/{k}", {"qty": "2"}, True),  # strict JSON
              st.sampled_from(CARD_KEYS)),
    st.just(Op("POST", "/bulk_card", {"title": "a", "owner_id": "bob"}, True)),  # server-set
    st.just(Op("DELETE", "/bulk_memo/m0", None, True)),  # Memo publishes no delete
)
operations = st.integers(0, 9).flatmap(lambda n: invalid if n == 0 else valid)  # 1 in 10


async def reset(client: httpx.AsyncClient, cape: CapeBase) -> None:
    await wipe(cape)
    async with cape.get_privileged_session() as session:
        session.add_all([Card(id=key, owner_id=owner, title="seed", qty=q)
                         for key, owner, q in CARDS])
        session.add(Memo(id="m0", body="x"))
        await session.commit()


async def one_by_one(
    client: httpx.AsyncClient, ops: list[Op], headers: dict[str, str]
) -> list[tuple[int, Any]]:
    """Each operation sent to its own route, up to the first that fails."""
    answers: list[tuple[int, Any]] = []
    for op in ops:
        response = await client.request(op.method, op.url, json=op.body, headers=headers)
        answers.append((response.status_code, response.json() if response.content else None))
        if response.status_code >= 400:
            break
    return answers


def without_card_keys(ops: list[Op], answers: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    return [(status, {k: v for k, v in body.items() if k != "id"}
             if body and op.url.startswith("/bulk_card") else body)
            for op, (status, body) in zip(ops, answers, strict=False)]


def test_a_batch_is_all_of_its_operations_or_none(db_url: str) -> None:
    app, cape = make_app(db_url)
    seen: Counter[str] = Counter()
    runner = asyncio.Runner()
    client_context = app_client(app)
    client = runner.run(client_context.__aenter__())

    async def check(ops: list[Op], caller: str) -> None:
        headers = CALLERS[caller]
        await reset(client, cape)
        rows, log = await stored(cape), await last_change(cape)
        response = await client.post("/_capebase/batch", headers=headers,
                                     json={"requests": [op.as_json() for op in ops]})
        after_batch, batch_log = await stored(cape), await changes_after(cape, log)
        await reset(client, cape)
        assert comparable(await stored(cape)) == comparable(rows)
        log = await last_change(cape)
        singles = await one_by_one(client, ops, headers)
        after_singles, singles_log = await stored(cape), await changes_after(cape, log)
        statuses = [status for status, _ in singles]
        if response.status_code == 200:
            seen["all applied"] += 1
            assert all(s < 400 for s in statuses) and len(singles) == len(ops), singles
            answers = [(a["status"], a["body"]) for a in response.json()["responses"]]
            assert without_card_keys(ops, answers) == without_card_keys(ops, singles)
            assert comparable(after_batch) == comparable(after_singles)
            assert [e[:2] for e in batch_log] == [e[:2] for e in singles_log]
            assert len(batch_log) <= len(ops)  # one entry per write; none for a no-op update
            return
        status, body = response.status_code, response.json()
        # nothing written, nothing logged
        assert after_batch == rows and batch_log == [], (status, body)
        assert statuses[-1] >= 400, (response.text, singles)
        index = body["index"] if "index" in body else body["detail"][0]["loc"][2]
        if status in UPFRONT:
            seen[f"none: {status}"] += 1
            assert ops[index].is_invalid, (ops[index], body)
            assert not any(op.is_invalid for op in ops[:index])
        else:
            seen[f"none: {status}"] += 1
            assert not any(op.is_invalid for op in ops), (ops, body)
            assert (index, status) == (len(singles) - 1, statuses[-1]), (body, singles)
        seen["failure in the middle"] += 0 < index < len(ops) - 1

    @given(ops=st.lists(operations, min_size=1, max_size=5),
           caller=st.sampled_from(["alice", "alice", "bob", "anonymous"]))
    def agree(ops: list[Op], caller: str) -> None:
        seen["several tables"] += len({op.url.split("/")[1] for op in ops}) > 1
        runner.run(check(ops, caller))

    try:
        agree()
    finally:
        runner.run(client_context.__aexit__(None, None, None))
        runner.close()
    examples = scaled(100)
    # the generator made what the test's name promises: batches applied and refused, for
    # each reason, with the failing operation between others
    # (shares the oldest hypothesis allowed reaches too)
    for case, share in [("all applied", 0.1), ("none: 403", 0.05), ("none: 404", 0.05),
                        ("none: 401", 0.02), ("none: 409", 0.02), ("none: 422", 0.05),
                        ("none: 400", 0.02), ("failure in the middle", 0.1),
                        ("several tables", 0.3)]:
        assert seen[case] >= share * examples, (case, seen)
