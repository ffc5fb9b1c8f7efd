"""Related rows on each database, on the fast path and the reference: a generated matrix of
callers x filters (on related fields too) x expands (many-to-one, one-to-many with and without
a per-row limit, a foreign key to the same table), compared with the answer computed in Python
from the rows and the rules (tests/crud/_expand_models.py); sorts on related fields followed
page by page; the get route with expand for every caller and row."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from capebase import AuthContext, LimitsConfig
from capebase.testing import app_client
from tests.apps import make_cape
from tests.crud._expand_models import (
    CALLERS,
    COMMENTS,
    PROJECTS,
    SECRET,
    TASKS,
    ExpProject,
    ExpTask,
    can_read,
    comments_of,
    headers_of,
    insert_all,
    parent_of,
    project_of,
    publish_all,
    served,
)

pytestmark = pytest.mark.usefixtures("fast_or_reference")

EXPAND_LIMIT = 3
"""LimitsConfig.expand_limit of these tests: below the 4 comments some tasks have."""


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app, cape = make_cape(db_url, limits=LimitsConfig(expand_limit=EXPAND_LIMIT))
    publish_all(cape)
    async with app_client(app) as client:
        await insert_all(cape)
        yield client


Predicate = Callable[[AuthContext, ExpTask], bool]


def in_project(test: Callable[[ExpProject], bool]) -> Predicate:
    """A task whose project the caller may read passes ``test``."""

    def check(ctx: AuthContext, task: ExpTask) -> bool:
        project = project_of(ctx, task)
        return project is not None and test(project)

    return check


def any_comment(test: Callable[[Any], bool]) -> Predicate:
    return lambda ctx, task: any(test(c) for c in comments_of(ctx, task))


FILTERS: list[tuple[str, Predicate]] = [
    ("", lambda ctx, task: True),
    ("project__name=Alpha", in_project(lambda p: p.name == "Alpha")),
    ("project__name__startswith=A", in_project(lambda p: p.name.startswith("A"))),
    ("project__name__ne=Alpha", in_project(lambda p: p.name != "Alpha")),
    ("project__name__contains=é", in_project(lambda p: "é" in p.name)),
    ("project__owner__in=bob,carol", in_project(lambda p: p.owner in ("bob", "carol"))),
    ("project__public=false", in_project(lambda p: not p.public)),
    ("project__id__gte=4", in_project(lambda p: p.id >= 4)),
    ("or=(project__name=Delta,title=t1)",
     lambda ctx, t: in_project(lambda p: p.name == "Delta")(ctx, t) or t.title == "t1"),
    ("not.and=(project__name=Beta)",
     lambda ctx, t: not in_project(lambda p: p.name == "Beta")(ctx, t)),
    ("not.or=(project__name__in=(Alpha,Gamma),hidden=true)",
     lambda ctx, t: not (in_project(lambda p: p.name in ("Alpha", "Gamma"))(ctx, t) or t.hidden)),
    ("comments__body=hello", any_comment(lambda c: c.body == "hello")),
    ("comments__author=carol&project__public=true",
     lambda ctx, t: any_comment(lambda c: c.author == "carol")(ctx, t)
     and in_project(lambda p: p.public)(ctx, t)),
    ("and=(comments__public=false,comments__author=alice)",
     lambda ctx, t: any_comment(lambda c: not c.public)(ctx, t)
     and any_comment(lambda c: c.author == "alice")(ctx, t)),
    ("parent__title=t1", lambda ctx, t: (p := parent_of(ctx, t)) is not None and p.title == "t1"),
    ("parent__owner=bob&owner=alice",
     lambda ctx, t: (p := parent_of(ctx, t)) is not None and p.owner == "bob"
     and t.owner == "alice"),
]

EXPANDS = ["", "project", "comments", "comments(limit=1)", "project,comments(limit=2)",
           "parent", "parent,project", "comments(limit=4)"]


def expanded(ctx: AuthContext, task: ExpTask, expand: str) -> dict[str, Any]:
    """The task as the list serves it to ``ctx`` with ``expand``."""
    row = served(task)
    for item in filter(None, expand.split(",")):
        match = re.fullmatch(r"(\w+)(?:\(limit=(\d+)\))?", item)
        assert match is not None
        name, limit = match[1], int(match[2] or EXPAND_LIMIT)
        if name == "project":
            project = project_of(ctx, task)
            row[name] = None if project is None else served(project)
        elif name == "parent":
            parent = parent_of(ctx, task)
            row[name] = None if parent is None else served(parent)
        else:
            row[name] = [served(c) for c in comments_of(ctx, task)[:limit]]
    return row


def query(*parts: str) -> dict[str, str]:
    joined = "&".join(p for p in parts if p)
    return dict(part.split("=", 1) for part in joined.split("&")) if joined else {}


async def test_filters_and_expands_match_the_rules(client: httpx.AsyncClient) -> None:
    mismatches = []
    for caller, ctx in CALLERS.items():
        readable = [t for t in TASKS if can_read(ctx, t)]
        for filters, predicate in FILTERS:
            ids = [t.id for t in readable if predicate(ctx, t)]
            for expand in EXPANDS:
                params = query(filters, f"expand={expand}" if expand else "")
                response = await client.get("/exp_task", params=params, headers=headers_of(ctx))
                assert response.status_code == 200, (caller, params, response.text)
                got = response.json()
                want = [expanded(ctx, t, expand) for t in readable if t.id in ids]
                if got != want:
                    mismatches.append((caller, params, [r["id"] for r in got], ids))
    assert not mismatches, mismatches[:5]


def sort_key(ctx: AuthContext, task: ExpTask, field: str) -> tuple[int, Any]:
    """NULL (no project the caller may read) after every value, as the routes sort it."""
    project = project_of(ctx, task)
    value = None if project is None else getattr(project, field)
    return (1, "") if value is None else (0, value)


@pytest.mark.parametrize("order_by", ["project__name", "-project__name", "project__owner,-id",
                                      "-project__public,title"])
@pytest.mark.parametrize("expand", ["", "project,comments(limit=1)"])
async def test_sorting_on_related_fields_pages_by_cursor(
    client: httpx.AsyncClient, order_by: str, expand: str
) -> None:
    """Every page followed through ``Link``, as rows are sorted on a related field: the same
    rows in the order Python computes, a project the caller cannot read sorting as null."""
    for ctx in CALLERS.values():
        rows = sorted((t for t in TASKS if can_read(ctx, t)), key=lambda t: t.id)  # pk breaks ties
        for key in reversed(order_by.split(",")):
            descending, name = key.startswith("-"), key.lstrip("-")
            if "__" in name:
                field = name.split("__")[1]
                rows.sort(key=lambda t, f=field: sort_key(ctx, t, f), reverse=descending)
            else:
                rows.sort(key=lambda t, n=name: getattr(t, n), reverse=descending)
        seen: list[dict[str, Any]] = []
        params: dict[str, str] | None = query(f"order_by={order_by}", "limit=4", "count=true",
                                              f"expand={expand}" if expand else "")
        url = "/exp_task"
        while True:
            response = await client.get(url, params=params, headers=headers_of(ctx))
            assert response.status_code == 200, response.text
            assert response.headers["X-Total-Count"] == str(len(rows))
            seen.extend(response.json())
            link = response.headers.get("Link")
            if link is None:
                break
            url, params = link[1:link.index(">")], None
        assert [r["id"] for r in seen] == [t.id for t in rows], (ctx, order_by)
        if expand:
            assert seen == [expanded(ctx, t, expand) for t in rows]


async def test_get_expands_the_row_for_every_caller(client: httpx.AsyncClient) -> None:
    expand = "project,comments(limit=2),parent"
    for ctx in CALLERS.values():
        for task in TASKS:
            response = await client.get(f"/exp_task/{task.id}", params={"expand": expand},
                                        headers=headers_of(ctx))
            if not can_read(ctx, task):
                assert response.status_code == 404, response.text
                continue
            assert response.status_code == 200, response.text
            assert response.json() == expanded(ctx, task, expand)
            plain = await client.get(f"/exp_task/{task.id}", headers=headers_of(ctx))
            assert response.headers["ETag"] == plain.headers["ETag"]  # the row's own version


async def test_expand_from_the_other_side(client: httpx.AsyncClient) -> None:
    """Comments expand their task (many-to-one), projects their tasks (one-to-many): the
    task's read rule applies to each."""
    for ctx in CALLERS.values():
        response = await client.get("/exp_comment", params={"expand": "task"},
                                    headers=headers_of(ctx))
        tasks = {t.id: t for t in TASKS}
        assert response.json() == [
            {**served(c), "task": served(tasks[c.task_id])
             if can_read(ctx, tasks[c.task_id]) else None}
            for c in COMMENTS if can_read(ctx, c)
        ]
        response = await client.get("/exp_project", params={"expand": "tasks(limit=20)"},
                                    headers=headers_of(ctx))
        assert response.json() == [
            {**served(p), "tasks": [served(t) for t in TASKS
                                    if t.project_id == p.id and can_read(ctx, t)]}
            for p in PROJECTS if can_read(ctx, p)
        ]


async def test_secret_fields_of_related_rows_are_never_served(client: httpx.AsyncClient) -> None:
    admin = headers_of(CALLERS["admin"])
    for params in ({"expand": "project"}, {"expand": "project", "select": "id,project"}):
        response = await client.get("/exp_task", params=params, headers=admin)
        assert SECRET not in response.text and "secret_note" not in response.text
    for params in ({"project__secret_note": SECRET}, {"order_by": "project__secret_note"},
                   {"expand": "project", "select": "project.secret_note"},
                   {"or": f"(project__secret_note={SECRET})"}):
        response = await client.get("/exp_task", params=params, headers=admin)
        assert response.status_code == 400, (params, response.text)
        assert "secret_note" in response.json()["detail"]  # unknown, as a missing field is
