"""Random users doing random things, through the REST API and through their own sessions.

A model of the table (``Ledger``) is kept in memory; after every step the stored rows must equal
it, and every answer (what a list shows, which status a write gets, how many rows a bulk
statement touched) must be what an independent model of the rules says. So nobody ever reads,
changes or deletes a row the policy denies them.

The rules, in words:
- read: your own rows; rows of an org listed in your context (a list means any of them); admins
  read everything.
- create: rows you own (the owner is filled from your id) at a level up to your clearance.
- update: the same condition as create, checked on the row before and after; or rows of the org
  you manage, before and after; admins update anything.
- delete: your own rows; admins delete anything.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.from_thread
import httpx
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import ColumnElement, delete, select, update

from capebase import AuthContext, CapeBase
from capebase.errors import PermissionDeniedError
from capebase.testing import app_client
from tests._databases import DbKind
from tests._hypothesis import scaled

from ._support import as_, make_app, reset
from .models import Ledger

T = TypeVar("T")

USERS: dict[str, AuthContext] = {
    "anonymous": AuthContext(),
    "ann": AuthContext(id="ann", context={"org": ["red"], "clearance": 3, "manages": "blue"}),
    "Ann": AuthContext(id="Ann", context={"org": "blue", "clearance": 1}),
    "ann_": AuthContext(id="ann ", context={"org": ["red", "green"], "clearance": 5}),
    "bob": AuthContext(id="bob", context={"clearance": 2, "manages": "red"}),
    "root": AuthContext(id="root", role="admin"),
}
NAMES = sorted(USERS)
ORGS = ["red", "green", "blue"]
OWNERS = ["ann", "Ann", "ann ", "bob", "root", "carl"]

# Operations per run, by database: the 1,000 of `make test` on SQLite, fewer on the servers,
# which cost more per request. CAPEBASE_STATEFUL_OPERATIONS overrides all three.
OPERATIONS: dict[DbKind, int] = {"sqlite": 1000, "postgresql": 400, "mariadb": 400}
STEPS = 25
STEPS_PER_EXAMPLE = 19  # Hypothesis runs about three quarters of stateful_step_count on average


def within_clearance(ctx: AuthContext) -> ColumnElement[bool]:
    return Ledger.level <= ctx.context["clearance"]


def ledger_rules(cape: CapeBase) -> None:
    cape.permission_required(Ledger, owner_field="owner", actions=["read", "delete"])
    cape.permission_required(Ledger, context_fields=["org"], actions=["read"])
    cape.permission_required(
        Ledger, owner_field="owner", where=within_clearance, actions=["create", "update"]
    )
    cape.permission_required(Ledger, context_fields={"org": "manages"}, actions=["update"])
    cape.permission_required(Ledger, role="admin", actions=["*"])


# -- the independent model of the rules ------------------------------------------------------


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def may_read(ctx: AuthContext, row: dict[str, Any]) -> bool:
    if ctx.role == "admin":
        return True
    if ctx.id is not None and row["owner"] == ctx.id:
        return True
    return "org" in ctx.context and row["org"] in _listed(ctx.context["org"])


def _may_write(ctx: AuthContext, row: dict[str, Any]) -> bool:
    clearance = ctx.context.get("clearance")
    return (
        ctx.id is not None
        and row["owner"] == ctx.id
        and clearance is not None
        and row["level"] <= clearance
    )


def may_create(ctx: AuthContext, row: dict[str, Any]) -> bool:
    return ctx.role == "admin" or _may_write(ctx, row)


def _may_update_image(ctx: AuthContext, row: dict[str, Any]) -> bool:
    manages = ctx.context.get("manages")
    if ctx.role == "admin" or _may_write(ctx, row):
        return True
    return manages is not None and row["org"] == manages


def may_update(ctx: AuthContext, old: dict[str, Any], new: dict[str, Any]) -> bool:
    return _may_update_image(ctx, old) and _may_update_image(ctx, new)


def may_delete(ctx: AuthContext, row: dict[str, Any]) -> bool:
    return ctx.role == "admin" or (ctx.id is not None and row["owner"] == ctx.id)


PATCHES = st.fixed_dictionaries(
    {}, optional={"org": st.sampled_from(ORGS), "level": st.integers(0, 5)}
)


def beyond(ctx: AuthContext) -> st.SearchStrategy[dict[str, Any]]:
    """Patches aimed past what ``ctx`` may update: a level above its clearance, an org other
    than the one it manages (what they do depends on the row; the model judges)."""
    options = []
    clearance = ctx.context.get("clearance")
    if clearance is not None and clearance < 5:
        options.append(
            st.fixed_dictionaries(
                {"level": st.integers(clearance + 1, 5)}, optional={"org": st.sampled_from(ORGS)}
            )
        )
    manages = ctx.context.get("manages")
    if manages is not None:
        options.append(
            st.fixed_dictionaries(
                {"org": st.sampled_from([o for o in ORGS if o != manages])},
                optional={"level": st.integers(0, 5)},
            )
        )
    return st.one_of(options) if options else PATCHES


MOSTLY = st.integers(0, 3).map(lambda n: n > 0)
"""True three times in four: how often the rules below aim at the cases ``PROMISED`` names."""
EDITS = st.one_of(
    st.tuples(st.just("level"), st.integers(0, 5)),
    st.tuples(st.just("owner"), st.sampled_from(OWNERS)),
    st.tuples(st.just("org"), st.sampled_from(ORGS)),
)
BULK_VALUES = st.fixed_dictionaries(
    {},
    optional={
        "level": st.integers(0, 5),
        "owner": st.sampled_from(OWNERS),
        "org": st.sampled_from(ORGS),
    },
)


def aimed_edit(ctx: AuthContext) -> st.SearchStrategy[tuple[str, Any]]:
    """One-column changes aimed past what ``ctx`` may update: the row handed to someone else,
    raised above its clearance, moved out of the org it manages."""
    options = [st.tuples(st.just("owner"), st.sampled_from([o for o in OWNERS if o != ctx.id]))]
    clearance = ctx.context.get("clearance")
    if clearance is not None and clearance < 5:
        options.append(st.tuples(st.just("level"), st.integers(clearance + 1, 5)))
    manages = ctx.context.get("manages")
    if manages is not None:
        options.append(
            st.tuples(st.just("org"), st.sampled_from([o for o in ORGS if o != manages]))
        )
    return st.one_of(options)


PROMISED = [
    f"{surface}: {outcome}"
    for surface in ("REST", "session", "bulk update")
    for outcome in ("allowed", "old allowed, new denied")
]
"""Update cases every run must generate: on each surface, updates the rules allow, and updates
of a row the caller may update as it stands to one the rules deny (an owner handing a row to
someone else, a row raised above the caller's clearance, moved out of the org it manages)."""


def denied_status(ctx: AuthContext) -> int:
    return 401 if ctx.is_anonymous else 403


SEED = [
    {"id": 100001, "owner": "ann", "org": "red", "level": 1, "title": "s1"},
    {"id": 100002, "owner": "Ann", "org": "blue", "level": 1, "title": "s2"},
    {"id": 100003, "owner": "ann ", "org": "green", "level": 4, "title": "s3"},
    {"id": 100004, "owner": "bob", "org": "red", "level": 2, "title": "s4"},
    {"id": 100005, "owner": "carl", "org": "blue", "level": 0, "title": "s5"},
    {"id": 100006, "owner": "root", "org": "green", "level": 5, "title": "s6"},
]
FIELDS = ("owner", "org", "level", "title")


@dataclass
class World:
    """What the machine drives: the app's client and the portal its event loop runs in."""

    portal: Any
    cape: CapeBase
    client: httpx.AsyncClient
    operations: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)
    """How often each case class the test promises was generated (see ``PROMISED``)."""

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return self.portal.call(fn, *args)  # type: ignore[no-any-return]

    def request(
        self, method: str, url: str, user: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        return self.run(self._request, method, url, user, body)

    async def _request(
        self, method: str, url: str, user: str, body: dict[str, Any] | None
    ) -> httpx.Response:
        return await self.client.request(method, url, json=body, headers=as_(user))


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    app, cape = make_app(db_url, USERS)
    ledger_rules(cape)
    cape.publish(Ledger)
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app_client(app)) as client,
    ):
        yield World(portal, cape, client)


class LedgerMachine(RuleBasedStateMachine):
    world: World

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[int, dict[str, Any]] = {}

    def count(self, name: str) -> None:
        self.world.operations += 1
        self.world.counts[name] = self.world.counts.get(name, 0) + 1

    @initialize()
    def seed(self) -> None:
        self.world.run(reset, self.world.cape, Ledger, SEED)
        self.rows = {row["id"]: {k: row[k] for k in FIELDS} for row in SEED}

    def saw(self, case: str) -> None:
        self.world.classes[case] = self.world.classes.get(case, 0) + 1

    def pick_id(self, data: st.DataObject, updater: AuthContext | None = None) -> int:
        """A known row's id (999 if there is none); for ``updater``, mostly one of the rows it
        may update as they stand, so that updates whose new image the rules deny are common
        rather than rare."""
        known = sorted(self.rows)
        if updater is not None:
            updatable = [
                pk
                for pk in known
                if may_read(updater, self.rows[pk]) and _may_update_image(updater, self.rows[pk])
            ]
            if updatable and data.draw(MOSTLY, label="prefer updatable"):
                return data.draw(st.sampled_from(updatable), label="id")
        return data.draw(st.sampled_from(known) if known else st.just(999), label="id")

    def classify_update(
        self, surface: str, ctx: AuthContext, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        if new != old and _may_update_image(ctx, old):
            allowed = _may_update_image(ctx, new)
            self.saw(f"{surface}: {'allowed' if allowed else 'old allowed, new denied'}")

    # -- REST ----------------------------------------------------------------------------------

    @rule(user=st.sampled_from(NAMES), org=st.none() | st.sampled_from(ORGS))
    def rest_list(self, user: str, org: str | None) -> None:
        self.count("rest_list")
        ctx = USERS[user]
        query = "" if org is None else f"?org={org}"
        response = self.world.request("GET", f"/pol_ledger{query}", user)
        assert response.status_code == 200
        expected = {
            pk for pk, row in self.rows.items()
            if may_read(ctx, row) and (org is None or row["org"] == org)
        }
        assert {row["id"] for row in response.json()} == expected

    @rule(user=st.sampled_from(NAMES), data=st.data())
    def rest_get(self, user: str, data: st.DataObject) -> None:
        self.count("rest_get")
        pk = self.pick_id(data)
        response = self.world.request("GET", f"/pol_ledger/{pk}", user)
        readable = pk in self.rows and may_read(USERS[user], self.rows[pk])
        assert response.status_code == (200 if readable else 404)
        if readable:
            assert {k: response.json()[k] for k in FIELDS} == self.rows[pk]

    @rule(user=st.sampled_from(NAMES), org=st.sampled_from(ORGS), level=st.integers(0, 5))
    def rest_create(self, user: str, org: str, level: int) -> None:
        self.count("rest_create")
        ctx = USERS[user]
        body = {"org": org, "level": level, "title": "new"}
        response = self.world.request("POST", "/pol_ledger", user, body)
        row = {"owner": ctx.id, **body}
        if may_create(ctx, row):
            assert response.status_code == 201, response.text
            self.rows[response.json()["id"]] = row
        else:
            assert response.status_code == denied_status(ctx), response.text

    @rule(user=st.sampled_from(NAMES), data=st.data())
    def rest_patch(self, user: str, data: st.DataObject) -> None:
        self.count("rest_patch")
        ctx = USERS[user]
        pk = self.pick_id(data, ctx)
        changes = data.draw(beyond(ctx) if data.draw(MOSTLY, label="aimed") else PATCHES)
        body = {**changes, "title": "patched"}
        response = self.world.request("PATCH", f"/pol_ledger/{pk}", user, body)
        old = self.rows.get(pk)
        if old is None or not may_read(ctx, old):
            assert response.status_code == 404, response.text
            return
        new = {**old, **changes, "title": "patched"}
        self.classify_update("REST", ctx, old, new)
        if may_update(ctx, old, new):
            assert response.status_code == 200, response.text
            self.rows[pk] = new
        else:
            assert response.status_code == denied_status(ctx), response.text

    @rule(user=st.sampled_from(NAMES), data=st.data())
    def rest_delete(self, user: str, data: st.DataObject) -> None:
        self.count("rest_delete")
        ctx = USERS[user]
        pk = self.pick_id(data)
        response = self.world.request("DELETE", f"/pol_ledger/{pk}", user)
        row = self.rows.get(pk)
        if row is None or not may_read(ctx, row):
            assert response.status_code == 404
        elif may_delete(ctx, row):
            assert response.status_code == 204
            del self.rows[pk]
        else:
            assert response.status_code == denied_status(ctx)

    # -- user sessions --------------------------------------------------------------------------

    @rule(user=st.sampled_from(NAMES))
    def session_select(self, user: str) -> None:
        self.count("session_select")
        ctx = USERS[user]
        seen = self.world.run(self._select_ids, ctx)
        assert seen == {pk for pk, row in self.rows.items() if may_read(ctx, row)}

    async def _select_ids(self, ctx: AuthContext) -> set[int]:
        async with self.world.cape.get_session(ctx) as session:
            return set((await session.scalars(select(Ledger.id))).all())

    @rule(user=st.sampled_from(NAMES), data=st.data())
    def session_bulk_update(self, user: str, data: st.DataObject) -> None:
        self.count("session_bulk_update")
        ctx = USERS[user]
        # Mostly an org holding rows the caller may update, and values aimed past what it may
        # update, so that the statement denies some rows their new image.
        updatable = sorted(
            {
                row["org"]
                for row in self.rows.values()
                if may_read(ctx, row) and _may_update_image(ctx, row)
            }
        )
        aimed = bool(updatable) and data.draw(MOSTLY, label="aimed")
        org = data.draw(st.sampled_from(updatable if aimed else ORGS), label="org")
        aimed_values = aimed_edit(ctx).map(lambda change: dict([change]))
        values = data.draw(BULK_VALUES | aimed_values if aimed else BULK_VALUES, label="set")
        values = {**values, "title": "bulk"}
        touched = self.world.run(self._bulk_update, ctx, org, values)
        for row in self.rows.values():
            if row["org"] == org and may_read(ctx, row):
                self.classify_update("bulk update", ctx, row, {**row, **values})
        expected = {
            pk
            for pk, row in self.rows.items()
            if row["org"] == org
            and may_read(ctx, row)
            and may_update(ctx, row, {**row, **values})
        }
        assert touched == len(expected)
        for pk in expected:
            self.rows[pk] = {**self.rows[pk], **values}

    async def _bulk_update(self, ctx: AuthContext, org: str, values: dict[str, Any]) -> int:
        async with self.world.cape.get_session(ctx) as session:
            statement = update(Ledger).where(Ledger.org == org).values(**values)
            result = await session.execute(statement)
            await session.commit()
            return int(result.rowcount)  # type: ignore[attr-defined]

    @rule(user=st.sampled_from(NAMES), org=st.sampled_from(ORGS))
    def session_bulk_delete(self, user: str, org: str) -> None:
        self.count("session_bulk_delete")
        ctx = USERS[user]
        deleted = self.world.run(self._bulk_delete, ctx, org)
        expected = {
            pk
            for pk, row in self.rows.items()
            if row["org"] == org and may_read(ctx, row) and may_delete(ctx, row)
        }
        assert deleted == len(expected)
        for pk in expected:
            del self.rows[pk]

    async def _bulk_delete(self, ctx: AuthContext, org: str) -> int:
        async with self.world.cape.get_session(ctx) as session:
            result = await session.execute(delete(Ledger).where(Ledger.org == org))
            await session.commit()
            return int(result.rowcount)  # type: ignore[attr-defined]

    @rule(user=st.sampled_from(NAMES), data=st.data())
    def session_edit(self, user: str, data: st.DataObject) -> None:
        self.count("session_edit")
        ctx = USERS[user]
        pk = self.pick_id(data, ctx)
        aimed = data.draw(st.booleans(), label="aimed")
        change, value = data.draw(aimed_edit(ctx) if aimed else EDITS, label="edit")
        outcome = self.world.run(self._edit, ctx, pk, change, value)
        old = self.rows.get(pk)
        if old is None or not may_read(ctx, old):
            assert outcome == "missing"
            return
        new = {**old, change: value}
        self.classify_update("session", ctx, old, new)
        if new == old or may_update(ctx, old, new):  # an unchanged object is not flushed
            assert outcome == "saved"
            self.rows[pk] = new
        else:
            assert outcome == "denied"

    async def _edit(self, ctx: AuthContext, pk: int, change: str, value: Any) -> str:
        async with self.world.cape.get_session(ctx) as session:
            row = await session.get(Ledger, pk)
            if row is None:
                return "missing"
            setattr(row, change, value)
            try:
                await session.commit()
            except PermissionDeniedError:
                return "denied"
            return "saved"

    @rule(user=st.sampled_from(NAMES), data=st.data())
    def session_remove(self, user: str, data: st.DataObject) -> None:
        self.count("session_remove")
        ctx = USERS[user]
        pk = self.pick_id(data)
        outcome = self.world.run(self._remove, ctx, pk)
        row = self.rows.get(pk)
        if row is None or not may_read(ctx, row):
            assert outcome == "missing"
        elif may_delete(ctx, row):
            assert outcome == "saved"
            del self.rows[pk]
        else:
            assert outcome == "denied"

    async def _remove(self, ctx: AuthContext, pk: int) -> str:
        async with self.world.cape.get_session(ctx) as session:
            row = await session.get(Ledger, pk)
            if row is None:
                return "missing"
            await session.delete(row)
            try:
                await session.commit()
            except PermissionDeniedError:
                return "denied"
            return "saved"

    @invariant()
    def stored_rows_match_the_model(self) -> None:
        assert self.world.run(self._stored) == self.rows

    async def _stored(self) -> dict[int, dict[str, Any]]:
        # Straight from the engine: the cheapest read that bypasses the policy.
        table = Ledger.__table__
        async with self.world.cape.engine.connect() as connection:
            rows = (await connection.execute(select(table))).mappings().all()
        return {row["id"]: {k: row[k] for k in FIELDS} for row in rows}


@pytest.mark.timeout(600)
def test_random_users_never_exceed_their_permissions(world: World, db_kind: DbKind) -> None:
    target = int(os.environ.get("CAPEBASE_STATEFUL_OPERATIONS", scaled(OPERATIONS[db_kind])))
    machine = type("Machine", (LedgerMachine,), {"world": world})
    # derandomize, database and health checks come from the profile (tests/_hypothesis.py).
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=max(1, round(target / STEPS_PER_EXAMPLE)), stateful_step_count=STEPS
        ),
    )
    assert world.operations >= target * 0.8, world.counts
    missing = [case for case in PROMISED if not world.classes.get(case)]
    assert not missing, f"never generated {missing}; generated {world.classes}"
