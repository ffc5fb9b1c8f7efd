"""Related rows: statement counts (no statement per row), the limits of expand, bad input
(each a 4xx naming the problem), ``select=`` with expanded rows, and relations found from
foreign keys alone; on each database, on the fast path and the reference."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlmodel import Field

from capebase import CapeBase, LimitsConfig
from capebase.testing import app_client
from tests.apps import make_cape
from tests.crud._expand_models import (
    CALLERS,
    TASKS,
    can_read,
    comments_of,
    headers_of,
    insert_all,
    project_of,
    publish_all,
    served,
)
from tests.models import TestModel

pytestmark = pytest.mark.usefixtures("fast_or_reference")
ADMIN = headers_of(CALLERS["admin"])


class Statements:
    """The statements naming ``exp_`` tables a CapeBase sends, through Core (the reference
    path) and through its driver path, which Core's events never see (its observer does)."""

    def __init__(self, cape: CapeBase) -> None:
        self.seen: list[str] = []
        event.listen(cape.engine.sync_engine, "before_cursor_execute", self._core)
        direct = cape.direct
        if direct is not None:
            previous = direct.observer

            def observe(statement: Any, seconds: float, failed: bool) -> None:
                self.seen.append(str(statement))
                if previous is not None:
                    previous(statement, seconds, failed)

            direct.observer = observe

    def _core(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(statement)

    @contextmanager
    def watching(self) -> Iterator[list[str]]:
        start = len(self.seen)
        found: list[str] = []
        try:
            yield found
        finally:
            found.extend(s for s in self.seen[start:] if "exp_" in s)


@pytest.fixture
async def served_app(db_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Statements]]:
    limits = LimitsConfig(max_expand=3, expand_limit=5, max_expand_limit=5)
    app, cape = make_cape(db_url, limits=limits)
    publish_all(cape)
    async with app_client(app) as client:
        await insert_all(cape)
        yield client, Statements(cape)


@pytest.mark.parametrize(("expand", "statements"), [
    ("", 1), ("project", 1), ("parent,project", 1), ("comments", 2),
    ("project,comments(limit=1)", 2), ("comments,parent,exp_task", 3),
])
async def test_one_statement_per_level_whatever_the_page_size(
    served_app: tuple[httpx.AsyncClient, Statements], expand: str, statements: int
) -> None:
    """Many-to-one relations are joined to the list's statement; each one-to-many relation
    costs one statement for the whole page. A filter on a related field is part of the
    list's statement."""
    client, counter = served_app
    for size in (1, 5, len(TASKS)):
        for filters in ({}, {"project__name__startswith": "A", "comments__public": "true"}):
            params = {"limit": str(size), **filters, **({"expand": expand} if expand else {})}
            with counter.watching() as seen:
                response = await client.get("/exp_task", params=params, headers=ADMIN)
            assert response.status_code == 200, response.text
            if response.json():
                assert len(seen) == statements, (params, seen)
    task = TASKS[5]
    with counter.watching() as seen:
        response = await client.get(f"/exp_task/{task.id}", params={"expand": expand or "project"},
                                    headers=ADMIN)
    assert response.status_code == 200
    assert len(seen) == max(statements, 1), seen


BAD: list[tuple[dict[str, str], str]] = [
    # limits
    ({"expand": "project,comments,parent,exp_task"}, "LimitsConfig.max_expand"),
    ({"expand": "comments(limit=6)"}, "LimitsConfig.max_expand_limit"),
    ({"expand": "comments(limit=0)"}, "LimitsConfig.max_expand_limit"),
    ({"expand": "comments(limit=x)"}, "limit"),
    ({"expand": "project.tasks"}, "one level"),
    # the grammar
    ({"expand": ""}, "names no relation"),
    ({"expand": "project,project"}, "twice"),
    ({"expand": "comments(limit=2"}, "unbalanced"),
    ({"expand": "comments(order=id)"}, "option"),
    ({"expand": "project(limit=2)"}, "many-to-one"),
    # relations that cannot be used
    ({"expand": "nope"}, "'nope'"),
    ({"expand": "title"}, "'title'"),
    ({"expand": "labels"}, "not published"),
    ({"expand": "tags"}, "many-to-many"),
    ({"labels__text": "x"}, "not published"),
    ({"tags__label": "x"}, "many-to-many"),
    # fields of relations
    ({"project__nope": "x"}, "'nope'"),
    ({"project": "1"}, "not a field of it"),
    ({"project__name__nope": "x"}, "'nope'"),
    ({"or": "(project__nope=1)"}, "'nope'"),
    ({"order_by": "project__nope"}, "'nope'"),
    ({"order_by": "comments__body"}, "one-to-many"),
    ({"order_by": "labels__text"}, "not published"),
    # select
    ({"select": "project.name"}, "not expanded"),
    ({"select": "project"}, "not expanded"),
    ({"expand": "project", "select": "project.nope"}, "'nope'"),
    ({"expand": "project", "select": "nope"}, "'nope'"),
]


@pytest.mark.parametrize(("params", "named"), BAD, ids=[str(p) for p, _ in BAD])
async def test_bad_input_is_a_400_naming_it(
    served_app: tuple[httpx.AsyncClient, Statements], params: dict[str, str], named: str
) -> None:
    client, _ = served_app
    for url in ("/exp_task", f"/exp_task/{TASKS[0].id}"):
        if url != "/exp_task" and not set(params) <= {"expand", "select"}:
            continue  # the get route takes expand and select only
        response = await client.get(url, params=params, headers=ADMIN)
        assert response.status_code == 400, (url, params, response.text)
        assert named in response.json()["detail"], (url, params, response.text)


async def test_a_value_of_a_related_field_is_checked_by_its_type(
    served_app: tuple[httpx.AsyncClient, Statements],
) -> None:
    client, _ = served_app
    for params in ({"project__id": "x"}, {"project__public": "maybe"},
                   {"or": "(comments__id__gt=x)"}):
        response = await client.get("/exp_task", params=params, headers=ADMIN)
        assert response.status_code == 422, (params, response.text)


async def test_select_picks_fields_of_the_row_and_of_expanded_rows(
    served_app: tuple[httpx.AsyncClient, Statements],
) -> None:
    """``select=`` names the row's own fields; expanded relations are always included, whole
    unless ``relation.field`` items pick some; a relation alone in select means all of it."""
    client, _ = served_app
    ctx = CALLERS["bob"]
    readable = [t for t in TASKS if can_read(ctx, t)]
    cases: list[tuple[str, Any]] = [
        ("id", lambda t, p, c: {"id": t.id, "project": p, "comments": c}),
        ("id,project.name", lambda t, p, c: {
            "id": t.id, "project": p and {"name": p["name"]}, "comments": c}),
        ("project.name,project.owner,comments.body", lambda t, p, c: {
            "project": p and {"name": p["name"], "owner": p["owner"]},
            "comments": [{"body": x["body"]} for x in c]}),
        ("title,project,comments.id", lambda t, p, c: {
            "title": t.title, "project": p, "comments": [{"id": x["id"]} for x in c]}),
        ("comments", lambda t, p, c: {"project": p, "comments": c}),
    ]
    for select, shape in cases:
        response = await client.get(
            "/exp_task", params={"expand": "project,comments(limit=2)", "select": select},
            headers=headers_of(ctx),
        )
        assert response.status_code == 200, response.text
        want = []
        for task in readable:
            project = project_of(ctx, task)
            comments = [served(c) for c in comments_of(ctx, task)[:2]]
            want.append(shape(task, None if project is None else served(project), comments))
        assert response.json() == want, select
        one = await client.get(f"/exp_task/{readable[3].id}", headers=headers_of(ctx),
                               params={"expand": "project,comments(limit=2)", "select": select})
        assert one.json() == want[3]


async def test_expand_with_envelope_count_and_if_match(
    served_app: tuple[httpx.AsyncClient, Statements],
) -> None:
    client, _ = served_app
    response = await client.get("/exp_task", headers=ADMIN, params={
        "expand": "project", "envelope": "true", "limit": "2", "count": "true"})
    body = response.json()
    assert [r["id"] for r in body["items"]] == [1, 2] and body["next"]
    assert response.headers["X-Total-Count"] == str(len(TASKS))
    item = await client.get("/exp_task/7", headers=ADMIN, params={"expand": "project"})
    etag = item.headers["ETag"]
    again = await client.get("/exp_task/7", params={"expand": "project"},
                             headers={**ADMIN, "If-Match": etag, "If-None-Match": etag})
    assert again.status_code == 200  # no 304 with expand: related rows may have changed
    stale = await client.get("/exp_task/7", params={"expand": "project"},
                             headers={**ADMIN, "If-Match": '"other"'})
    assert stale.status_code == 412


class FkProject(TestModel, table=True):
    __tablename__ = "exp_fk_project"

    id: int | None = Field(default=None, primary_key=True)
    name: str


class FkItem(TestModel, table=True):
    """Foreign keys and no Relationship: ``project`` and ``exp_fk_item`` (its children)."""

    __tablename__ = "exp_fk_item"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int | None = Field(default=None, foreign_key="exp_fk_project.id")
    parent_id: int | None = Field(default=None, foreign_key="exp_fk_item.id")
    hidden: bool = False


async def test_relations_from_foreign_keys_alone(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(FkProject)
    cape.publish(FkItem)
    cape.permission_required(FkProject, actions=["read"])
    cape.permission_required(FkItem, where=lambda ctx: FkItem.hidden.is_(False), actions=["read"])
    async with app_client(app) as client:
        async with cape.get_privileged_session() as session:
            session.add(FkProject(id=1, name="P"))
            await session.flush()
            session.add_all([FkItem(id=1, project_id=1), FkItem(id=2, parent_id=1, hidden=True),
                             FkItem(id=3, parent_id=2), FkItem(id=4, parent_id=1)])
            await session.commit()
        response = await client.get("/exp_fk_item", params={"expand": "project,parent"})
        assert [(r["id"], r["project"], r["parent"] and r["parent"]["id"])
                for r in response.json()] == [(1, {"id": 1, "name": "P"}, None),
                                              (3, None, None), (4, None, 1)]
        response = await client.get("/exp_fk_item", params={"expand": "exp_fk_item"})
        assert [[c["id"] for c in r["exp_fk_item"]] for r in response.json()] == [[4], [], []]
        response = await client.get("/exp_fk_project", params={"expand": "exp_fk_item"})
        assert [[c["id"] for c in r["exp_fk_item"]] for r in response.json()] == [[1]]
        response = await client.get("/exp_fk_item", params={"parent__hidden": "true"})
        assert response.json() == []  # item 3's parent is hidden: no filter reaches it
