"""schemathesis against the generated OpenAPI, in-process (ASGI), as anonymous, owner and admin.

For every operation it sends valid and invalid requests (a bounded number, derandomized under
`make test`) and requires, for each response:

- no server error (5xx), and the status, content type, headers and body as documented;
- invalid input rejected with a 4xx, never accepted;
- the policy respected (checked against an independent model of the rules and the row as it
  was stored before the call): no row in a body that the caller may not read, no write the
  caller may not make, no anonymous write at all.

The SSE operation is fuzzed too, in a bounded mode that needs nothing of the server: the
fuzzer reads at most one event, or until its read deadline, then hangs up (a new stream opens
with a ``ready`` event; a resumed one may have nothing to say). WebSocket streams are not in
OpenAPI; test_stateful_streams covers them.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlmodel import create_engine

from capebase import CapeBase
from tests._hypothesis import scaled

from ._app import FIELDS, PATH, Memo, context_of, make_app, may_read, may_write, who

EXAMPLES = int(os.environ.get("CAPEBASE_FUZZ_EXAMPLES", "25"))
STREAM_READ_TIMEOUT = 0.5
AUTH_HEADERS = frozenset({"x-user", "x-role", "x-org"})
ROLES = {"anonymous": {}, "owner": who("alice", orgs="red"), "admin": who("root", role="admin")}
SEED = [
    {"id": 1, "owner": "alice", "org": "red", "level": 1, "body": "a1"},
    {"id": 2, "owner": "alice", "org": "blue", "level": 2, "body": "a2"},
    {"id": 3, "owner": "bob", "org": "red", "level": 3, "body": "b1"},
    {"id": 4, "owner": "bob", "org": "blue", "level": 4, "body": "b2"},
    {"id": 5, "owner": "carl", "org": "green", "level": 5, "body": "c1"},
]
SUCCEEDS = {
    # Anonymous callers read nothing (item GETs are 404) and write nothing (401); a batch of
    # no operations answers 200 for anyone.
    "anonymous": {f"GET {PATH}", f"GET {PATH}/subscribe", "POST /_capebase/batch"},
    "owner": {
        f"GET {PATH}", f"POST {PATH}", f"GET {PATH}/subscribe", f"GET {PATH}/{{id}}",
        f"PATCH {PATH}/{{id}}", f"DELETE {PATH}/{{id}}", "POST /_capebase/batch",
    },
}
SUCCEEDS["admin"] = SUCCEEDS["owner"]
"""The operations that must answer 2xx at least once, for each role."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def seed(database: Path) -> None:
    """Create the table and its first rows before the app starts (it keeps them)."""
    engine = create_engine(f"sqlite:///{database}")
    Memo.metadata.create_all(engine)
    with sqlite3.connect(database) as connection:
        connection.executemany(
            "INSERT INTO rel_memo (id, owner, org, level, body) VALUES (?, ?, ?, ?, ?)",
            [tuple(row.values()) for row in SEED],
        )
    engine.dispose()


def stored_row(database: Path, pk: Any) -> dict[str, Any] | None:
    """The row as stored now, read beside the app."""
    with sqlite3.connect(database) as connection:
        row = connection.execute(
            "SELECT owner, org, level, body FROM rel_memo WHERE id = ?", (pk,)
        ).fetchone()
    return dict(zip(FIELDS, row, strict=True)) if row else None


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[tuple[CapeBase, Path, Any]]:
    database = tmp_path / "fuzz.db"
    seed(database)
    app, cape = make_app(f"sqlite+aiosqlite:///{database}")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.max_stream_events = 1
    yield cape, database, schema


def strategies(operation: Any) -> Any:
    """Valid and invalid requests; item routes often aim at a stored row."""
    parts = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        parts.append(operation.as_strategy(generation_mode=mode))
        if "{id}" in operation.path:
            parts.append(
                st.sampled_from([row["id"] for row in SEED]).flatmap(
                    lambda pk, mode=mode: operation.as_strategy(
                        generation_mode=mode, path_parameters={"id": pk}
                    )
                )
            )
    return st.one_of(parts)


def check_policy(role: str, case: Any, response: Any, before: dict[str, Any] | None) -> None:
    """The response gives ``role`` nothing the rules deny it, and no write happened that the
    rules do not allow on the row as it was stored before the call."""
    ctx = context_of(ROLES[role])
    method, status = case.method.upper(), response.status_code
    batch = case.path == "/_capebase/batch"
    if 200 <= status < 300 and method in ("POST", "PATCH", "DELETE"):
        # A batch of no operations writes nothing, for anyone.
        empty = batch and response.json() == {"responses": []}
        assert not ctx.is_anonymous or empty, f"anonymous {method} accepted: {status}"
    if method in ("PATCH", "DELETE") and 200 <= status < 300:
        assert before is not None and may_write(ctx, before), (method, before)
    if method in ("GET", "PATCH") and before is not None and not may_read(ctx, before):
        # Not one answer: the fuzzed request may also be malformed (400, 413, 422), which is
        # checked first. What matters is that it never succeeds or says "forbidden" (403).
        assert status in (400, 404, 413, 422), f"{method} of an unreadable row: {status}"
    if status >= 300 or not response.content or "json" not in response.headers.get(
        "content-type", ""
    ):
        return
    body = response.json()
    if batch:  # each operation's answer: a row, or nothing for a delete
        rows = [answer["body"] for answer in body["responses"] if answer["body"] is not None]
    else:
        rows = body if isinstance(body, list) else [body]
    for row in rows:
        assert may_read(ctx, row), f"{role} received a row it may not read: {row}"
        if method in ("POST", "PATCH"):
            assert may_write(ctx, row), f"{role} wrote a row it may not write: {row}"


@pytest.mark.parametrize("role", sorted(ROLES))
def test_fuzzing_the_openapi_finds_no_error(
    role: str, fuzzed: tuple[CapeBase, Path, Any]
) -> None:
    cape, database, schema = fuzzed
    headers = ROLES[role]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == {
        f"GET {PATH}", f"POST {PATH}", f"GET {PATH}/subscribe", f"GET {PATH}/{{id}}",
        f"PATCH {PATH}/{{id}}", f"DELETE {PATH}/{{id}}", "POST /_capebase/batch",
    }
    statuses: Counter[str] = Counter()
    succeeded: Counter[str] = Counter()
    for operation in operations:
        # The fuzzer reads a stream until its first event or this deadline.
        kwargs = {"timeout": STREAM_READ_TIMEOUT} if operation.path.endswith("/subscribe") else {}

        # derandomize and the example database come from the profile (tests/_hypothesis.py).
        @given(case=strategies(operation))
        @settings(max_examples=scaled(EXAMPLES), suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            pk = (case.path_parameters or {}).get("id")
            before = stored_row(database, pk) if isinstance(pk, int) and abs(pk) < 2**63 else None
            # The auth headers are documented parameters, so the fuzzer fills them in too;
            # each test acts as exactly its role.
            for name in [h for h in case.headers or {} if h.lower() in AUTH_HEADERS]:
                del case.headers[name]
            response = case.call(headers=headers, **kwargs)  # noqa: B023  called in this loop
            case.validate_response(response, checks=CHECKS, headers=headers)
            check_policy(role, case, response, before)
            statuses[f"{case.method.upper()} {response.status_code}"] += 1
            if 200 <= response.status_code < 300:
                succeeded[operation.label] += 1  # noqa: B023  called in this loop

        call()
    print(f"{role}: {statuses.total()} requests: {dict(sorted(statuses.items()))}")
    # A fuzzer whose every request is refused tests nothing but the refusals.
    assert set(succeeded) == SUCCEEDS[role], f"2xx by operation: {dict(succeeded)}"
    assert cape.hub.subscriber_count == 0  # every fuzzed stream was let go
