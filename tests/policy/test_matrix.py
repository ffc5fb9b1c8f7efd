"""The permission matrix: every generated route, every kind of caller, three rule styles.

Each table row is an operation on the seeded rows, each column a caller (see ``USERS``), each
cell the expected HTTP status. After every operation the stored rows must be exactly the seed,
or the seed with that one operation applied when the status says it succeeded.

HTTP mapping under test (DESIGN.md §3): not readable → 404 with the body of a missing row;
readable but not writable → 403; a write by an anonymous caller → 401.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import ColumnElement

from capebase import AuthContext, CapeBase
from capebase.testing import app_client

from ._support import USERS, as_, make_app, reset, stored
from .models import LevelDoc, OrgDoc, Todo

# Every test twice: on the fast path, and on the reference (CrudConfig(fast_path=False)).
pytestmark = pytest.mark.usefixtures("fast_or_reference")

CALLERS = tuple(USERS)


@dataclass(frozen=True)
class Op:
    """One request of the matrix."""

    method: str
    target: int | None = None  # the row a GET/PATCH/DELETE addresses
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Scenario:
    model: type[Any]
    rules: Callable[[CapeBase], None]
    seed: list[dict[str, Any]]
    ops: dict[str, Op]
    table: str  # op name, then one expected status per caller
    readable: dict[str, set[int]]  # what each caller's GET /{table} returns
    fields: tuple[str, ...] = field(default=())


def parse(table: str) -> dict[str, dict[str, int]]:
    lines = [line.split() for line in table.strip().splitlines()]
    header, rows = lines[0][1:], lines[1:]
    assert tuple(header) == CALLERS, header
    return {row[0]: dict(zip(header, map(int, row[1:]), strict=True)) for row in rows}


# -- the seed README's three rules -----------------------------------------------------------


def readme_rules(cape: CapeBase) -> None:
    cape.permission_required(Todo, role="*", actions=["read"])
    cape.permission_required(Todo, owner_field="user_id", actions=["create", "update", "delete"])
    cape.permission_required(Todo, role="admin", actions=["read", "create", "update", "delete"])


README = Scenario(
    model=Todo,
    rules=readme_rules,
    seed=[
        {"id": 1001, "user_id": "alice", "task": "alice's"},
        {"id": 1002, "user_id": "bob", "task": "bob's"},
    ],
    ops={
        "get": Op("GET", 1001),
        "create": Op("POST", body={"task": "new"}),
        "patch": Op("PATCH", 1001, {"is_complete": True}),
        "delete": Op("DELETE", 1001),
    },
    table="""
        op      anonymous owner other admin matched lookalike
        get     200       200   200   200   200     200
        create  401       201   201   201   201     201
        patch   401       200   403   200   403     403
        delete  401       204   403   204   403     403
    """,
    readable={name: {1001, 1002} for name in CALLERS},
    fields=("user_id", "task", "is_complete"),
)

# -- context_fields: list form for reading (a list value means IN), dict form for writing -----


def context_rules(cape: CapeBase) -> None:
    cape.permission_required(OrgDoc, context_fields=["org_id"], actions=["read"])
    cape.permission_required(
        OrgDoc, context_fields={"org_id": "manages"}, actions=["create", "update", "delete"]
    )
    cape.permission_required(OrgDoc, role="admin", actions=["*"])


CONTEXT = Scenario(
    model=OrgDoc,
    rules=context_rules,
    seed=[
        {"id": 2001, "org_id": "o1", "title": "one"},
        {"id": 2002, "org_id": "o2", "title": "two"},
        {"id": 2003, "org_id": "o3", "title": "three"},
        {"id": 2004, "org_id": "O1", "title": "case"},
    ],
    ops={
        "get_o1": Op("GET", 2001),
        "get_o3": Op("GET", 2003),
        "get_O1": Op("GET", 2004),
        "create_o1": Op("POST", body={"org_id": "o1", "title": "new"}),
        "create_o3": Op("POST", body={"org_id": "o3", "title": "new"}),
        "patch_o1": Op("PATCH", 2001, {"title": "patched"}),
        "patch_o3": Op("PATCH", 2003, {"title": "patched"}),
        "move_o1_to_o3": Op("PATCH", 2001, {"org_id": "o3"}),
        "delete_o1": Op("DELETE", 2001),
        "delete_o3": Op("DELETE", 2003),
    },
    # owner and lookalike have no context at all: a missing key means no access.
    table="""
        op             anonymous owner other admin matched lookalike
        get_o1         404       404   404   200   200     404
        get_o3         404       404   404   200   200     404
        get_O1         404       404   404   200   404     404
        create_o1      401       403   403   201   201     403
        create_o3      401       403   403   201   403     403
        patch_o1       404       404   404   200   200     404
        patch_o3       404       404   404   200   403     404
        move_o1_to_o3  404       404   404   200   403     404
        delete_o1      404       404   404   204   204     404
        delete_o3      404       404   404   204   403     404
    """,
    readable={
        "anonymous": set(),
        "owner": set(),
        "other": {2002},
        "admin": {2001, 2002, 2003, 2004},
        "matched": {2001, 2003},
        "lookalike": set(),
    },
    fields=("org_id", "title"),
)

# -- where: a SQLAlchemy expression over the row and the caller's context ---------------------


def level_at_most_clearance(ctx: AuthContext) -> ColumnElement[bool]:
    return LevelDoc.level <= ctx.context["clearance"]


def level_below_clearance(ctx: AuthContext) -> ColumnElement[bool]:
    return LevelDoc.level < ctx.context["clearance"]


def where_rules(cape: CapeBase) -> None:
    cape.permission_required(LevelDoc, where=level_at_most_clearance, actions=["read", "create"])
    cape.permission_required(LevelDoc, where=level_below_clearance, actions=["update"])
    cape.permission_required(LevelDoc, role="admin", actions=["*"])


WHERE = Scenario(
    model=LevelDoc,
    rules=where_rules,
    seed=[
        {"id": 3001, "level": 3, "title": "three"},
        {"id": 3002, "level": 5, "title": "five"},
        {"id": 3003, "level": 0, "title": "zero"},
    ],
    ops={
        "get_3": Op("GET", 3001),
        "get_5": Op("GET", 3002),
        "create_3": Op("POST", body={"level": 3, "title": "new"}),
        "create_9": Op("POST", body={"level": 9, "title": "new"}),
        "patch_3": Op("PATCH", 3001, {"title": "patched"}),
        "patch_5": Op("PATCH", 3002, {"title": "patched"}),
        "raise_3_to_9": Op("PATCH", 3001, {"level": 9}),
        "delete_3": Op("DELETE", 3001),
        "delete_0": Op("DELETE", 3003),
    },
    # A where callable reading a context key the caller lacks (KeyError) matches nothing.
    table="""
        op            anonymous owner other admin matched lookalike
        get_3         404       404   404   200   200     404
        get_5         404       404   404   200   200     404
        create_3      401       403   403   201   201     403
        create_9      401       403   403   201   403     403
        patch_3       404       404   404   200   200     404
        patch_5       404       404   404   200   403     404
        raise_3_to_9  404       404   404   200   403     404
        delete_3      404       404   404   204   403     404
        delete_0      404       404   403   204   403     404
    """,
    readable={
        "anonymous": set(),
        "owner": set(),
        "other": {3003},
        "admin": {3001, 3002, 3003},
        "matched": {3001, 3002, 3003},
        "lookalike": set(),
    },
    fields=("level", "title"),
)

SCENARIOS = {"readme": README, "context_fields": CONTEXT, "where": WHERE}


def expected_after(op: Op, status: int, before: dict[Any, Any]) -> dict[Any, Any]:
    """The stored rows after a PATCH, DELETE or GET answered ``status``."""
    after = {pk: dict(row) for pk, row in before.items()}
    if op.method == "PATCH" and status == 200:
        assert op.target is not None and op.body is not None
        after[op.target].update(op.body)
    elif op.method == "DELETE" and status == 204:
        del after[op.target]
    return after


@pytest.mark.parametrize("scenario_name", list(SCENARIOS))
async def test_matrix(db_url: str, scenario_name: str) -> None:
    scenario = SCENARIOS[scenario_name]
    expected = parse(scenario.table)
    app, cape = make_app(db_url)
    scenario.rules(cape)
    cape.publish(scenario.model)
    path = f"/{scenario.model.__tablename__}"
    mismatches: list[str] = []
    async with app_client(app) as client:
        missing = await client.get(f"{path}/999999", headers=as_("admin"))
        assert missing.status_code == 404
        await reset(cape, scenario.model, scenario.seed)
        before = await stored(cape, scenario.model, *scenario.fields)
        for caller in CALLERS:
            listed = await client.get(f"{path}?count=true", headers=as_(caller))
            assert listed.status_code == 200
            ids = {row["id"] for row in listed.json()}
            if ids != scenario.readable[caller] or listed.headers["X-Total-Count"] != str(
                len(ids)
            ):
                mismatches.append(f"list as {caller}: {ids} (want {scenario.readable[caller]})")
            for name, op in scenario.ops.items():
                problem = await check(client, cape, scenario, op, caller, expected[name][caller],
                                      before, missing.json())
                if problem:
                    mismatches.append(f"{name} as {caller}: {problem}")
    assert not mismatches, f"{scenario_name}:\n" + "\n".join(mismatches)


async def check(
    client: Any,
    cape: CapeBase,
    scenario: Scenario,
    op: Op,
    caller: str,
    want: int,
    before: dict[Any, Any],
    missing_body: Any,
) -> str | None:
    """Send ``op`` as ``caller``; say what is wrong with the answer or the stored rows."""
    path = f"/{scenario.model.__tablename__}"
    url = path if op.target is None else f"{path}/{op.target}"
    response = await client.request(op.method, url, json=op.body, headers=as_(caller))
    after = await stored(cape, scenario.model, *scenario.fields)
    if after != before:
        await reset(cape, scenario.model, scenario.seed)
    if response.status_code != want:
        return f"{response.status_code} (want {want}) {response.text}"
    if want == 404 and response.json() != missing_body:
        return f"404 body {response.json()} differs from a missing row's {missing_body}"
    if op.method == "GET" and want == 200 and response.json()["id"] != op.target:
        return f"got row {response.json()}"
    if op.method == "POST" and want == 201:
        created = response.json()
        if set(after) != set(before) | {created["id"]}:
            return f"stored ids {set(after)} after creating {created['id']}"
        row = after[created["id"]]
        if any(row[key] != value for key, value in (op.body or {}).items()):
            return f"stored {row} for {op.body}"
        if "user_id" in row and row["user_id"] != USERS[caller].id:
            return f"FROM_AUTH_ID filled with {row['user_id']!r}"
        return None
    wanted = expected_after(op, want, before)
    if after != wanted:
        return f"stored rows {after}, want {wanted}"
    return None
