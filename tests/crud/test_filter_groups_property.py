"""Random trees of OR, AND and NOT over every kind of condition: the list route returns exactly
the rows the same tree selects in Python among those the caller may read, and a stream filtered
by the tree matches exactly those rows too; on SQLite, PostgreSQL and MariaDB, on the fast path
and the reference.

The table has an int, a text (case and accent variants, the grammar's own characters), a
nullable text, a bool and a datetime; a ``where`` rule hides the rows with ``qty >= 50``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capebase.filters.query import filter_fields
from capebase.filters.streams import STREAM_OPERATORS, parse_stream_filters
from capebase.realtime.views import ModelView
from capebase.testing import app_client
from capebase.wire.schemas import read_schema_for
from tests._hypothesis import scaled
from tests.apps import make_cape
from tests.crud.test_list_query import insert_rows
from tests.models import Item

pytestmark = pytest.mark.usefixtures("fast_or_reference")

TEXTS = ["Apple", "apple", "APPLE", "Apple ", "Äpple", "äpple", "Café", "Cafe", "cafe", "CAFÉ",
         "école", "École", "a,b", "(x)", 'q"t', "back\\s", "", "z", "b", "B"]
QTYS = [-5, 0, 1, 3, 7, 49, 50, 60]
MOMENTS = [datetime(2024, month, 1, 10, 0, tzinfo=UTC) for month in (1, 3, 5)]
HIDDEN_FROM = 50
"""The read rule: ``qty < 50``."""


def make_rows() -> list[Item]:
    rows = []
    for i in range(16):
        rows.append(Item(
            id=i + 1,
            owner_id="u",
            name=TEXTS[(i * 7) % len(TEXTS)],
            qty=QTYS[i % len(QTYS)],
            active=i % 3 != 0,
            note=None if i % 3 == 1 else TEXTS[(i * 3 + 1) % len(TEXTS)],
            created_at=MOMENTS[i % len(MOMENTS)] + timedelta(seconds=i % 2),
        ))
    return rows


ROWS = make_rows()
TEXT_OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "startswith",
            "isnull"]
VALUE_OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "isnull"]
FIELDS: dict[str, tuple[list[str], st.SearchStrategy[Any]]] = {
    "id": (VALUE_OPS, st.integers(0, 17)),
    "qty": (VALUE_OPS, st.sampled_from(QTYS) | st.integers(-10, 70)),
    "name": (TEXT_OPS, st.sampled_from(TEXTS)),
    "note": (TEXT_OPS, st.sampled_from(TEXTS)),
    "active": (["eq", "ne", "in", "nin", "isnull"], st.booleans()),
    "created_at": (VALUE_OPS, st.sampled_from(MOMENTS).flatmap(
        lambda m: st.sampled_from([m, m + timedelta(seconds=1), m - timedelta(days=1)])
    )),
}
MAX_DEPTH = 4


@dataclass(frozen=True)
class Leaf:
    field: str
    op: str
    value: Any  # a list for in/nin, a bool for isnull


@dataclass(frozen=True)
class Node:
    kind: str
    negated: bool
    items: tuple[Leaf | Node, ...]


@st.composite
def leaves(draw: st.DrawFn) -> Leaf:
    # the nullable field three times as often: NOT over a condition on NULL is where SQL's
    # three-valued logic and the documented two-valued one part
    field = draw(st.sampled_from([*sorted(FIELDS), "note", "note"]))
    ops, values = FIELDS[field]
    op = draw(st.sampled_from(ops))
    if op == "isnull":
        return Leaf(field, op, draw(st.booleans()))
    if op in ("in", "nin"):
        return Leaf(field, op, draw(st.lists(values, min_size=1, max_size=3)))
    return Leaf(field, op, draw(values))


def trees(depth: int) -> st.SearchStrategy[Leaf | Node]:
    """A condition, or a group of depth ``depth`` (1 at the top) with conditions and deeper
    groups in it."""
    if depth > MAX_DEPTH:
        return leaves()
    groups = st.builds(
        Node,
        kind=st.sampled_from(["and", "or"]),
        negated=st.booleans(),
        items=st.lists(trees(depth + 1), min_size=1, max_size=3).map(tuple),
    )
    return st.one_of(leaves(), groups)


def holds(node: Leaf | Node, row: Item) -> bool:
    """The tree on one row, in Python: a condition on NULL is false but ``isnull``'s."""
    if isinstance(node, Node):
        found = (all if node.kind == "and" else any)(holds(i, row) for i in node.items)
        return not found if node.negated else found
    current = getattr(row, node.field)
    if node.op == "isnull":
        return (current is None) is node.value
    if current is None:
        return False
    compare = {
        "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
        "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
        "in": lambda a, b: a in b, "nin": lambda a, b: a not in b,
        "contains": lambda a, b: b in a, "startswith": lambda a, b: a.startswith(b),
    }
    return bool(compare[node.op](current, node.value))


def holds_in_sql(node: Leaf | Node, row: Item) -> bool | None:
    """The tree under SQL's three-valued logic (NULL for unknown), which groups do not
    follow: the test counts the examples where the two differ."""
    if isinstance(node, Node):
        values = [holds_in_sql(i, row) for i in node.items]
        if node.kind == "and":
            found = False if False in values else (None if None in values else True)
        else:
            found = True if True in values else (None if None in values else False)
        return (None if found is None else not found) if node.negated else found
    if node.op != "isnull" and getattr(row, node.field) is None:
        return None
    return holds(node, row)


def text_of(value: Any, shifted: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        # the same instant, written with another offset half the time
        if shifted:
            return value.astimezone(timezone(timedelta(hours=2))).isoformat()
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def quoted(text: str, force: bool) -> str:
    if force or text == "" or any(c in text for c in ',()"'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def in_group(node: Leaf | Node, style: st.DataObject) -> str:
    """``node`` as an item of a group."""
    if isinstance(node, Node):
        return f"{name_of(node)}({','.join(in_group(i, style) for i in node.items)})"
    force = style.draw(st.booleans())
    shifted = style.draw(st.booleans())
    if node.op in ("in", "nin"):
        items = ",".join(quoted(text_of(v, shifted), force) for v in node.value)
        return f"{node.field}__{node.op}=({items})"
    op = "" if node.op == "eq" and style.draw(st.booleans()) else f"__{node.op}"
    return f"{node.field}{op}={quoted(text_of(node.value, shifted), force)}"


def name_of(node: Node) -> str:
    return ("not." if node.negated else "") + node.kind


def parameter(node: Leaf | Node, style: st.DataObject) -> tuple[str, str] | None:
    """``node`` as a query parameter; ``None`` for a condition the plain grammar cannot
    write (a list value holding a comma)."""
    if isinstance(node, Node):
        return name_of(node), "(" + ",".join(in_group(i, style) for i in node.items) + ")"
    if node.op in ("in", "nin"):
        texts = [text_of(v, False) for v in node.value]
        if any("," in t for t in texts) or texts == [""]:
            return None
        return f"{node.field}__{node.op}", ",".join(texts)
    return f"{node.field}__{node.op}", text_of(node.value, False)


def walk(node: Leaf | Node, depth: int = 0) -> list[tuple[Leaf | Node, int]]:
    found: list[tuple[Leaf | Node, int]] = [(node, depth)]
    if isinstance(node, Node):
        for item in node.items:
            found.extend(walk(item, depth + 1))
    return found


def test_group_trees_agree_with_python_and_streams(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Item)
    cape.permission_required(Item, where=lambda _ctx: Item.qty < HIDDEN_FROM, actions=["read"])
    fields = filter_fields(Item.__table__)
    view = ModelView(Item, Item.__table__, read_schema_for(Item))
    seen: Counter[str] = Counter()
    runner = asyncio.Runner()
    client_context = app_client(app)
    client = runner.run(client_context.__aenter__())
    try:
        runner.run(insert_rows(cape, ROWS))
        readable = [row for row in ROWS if row.qty < HIDDEN_FROM]
        visible = runner.run(client.get("/crud_item", params={"order_by": "id"})).json()
        assert [r["id"] for r in visible] == [row.id for row in readable]
        hidden = [row for row in ROWS if row.qty >= HIDDEN_FROM]
        assert hidden

        negated_leaf = st.builds(
            lambda kind, leaf: [Node(kind, True, (leaf,))], st.sampled_from(["and", "or"]),
            leaves(),
        )

        @given(top=st.lists(trees(1), min_size=1, max_size=3) | negated_leaf, style=st.data())
        def agree(top: list[Leaf | Node], style: st.DataObject) -> None:
            written = [(node, parameter(node, style)) for node in top]
            params = [p for _, p in written if p is not None]
            kept = [node for node, p in written if p is not None]
            if not params:
                return
            response = runner.run(client.get("/crud_item", params=params))
            assert response.status_code == 200, (params, response.text)
            got = [row["id"] for row in response.json()]
            expected = [row.id for row in readable if all(holds(n, row) for n in kept)]
            assert got == expected, params
            in_sql = [row.id for row in readable
                      if all(holds_in_sql(n, row) is True for n in kept)]
            seen["NOT over NULL"] += in_sql != expected
            # what the tree would reveal without the rule stays hidden
            if any(all(holds(n, row) for n in kept) for row in hidden):
                seen["hidden rows matched"] += 1
            nodes = [found for node in kept for found in walk(node)]
            groups = [(n, d) for n, d in nodes if isinstance(n, Node)]
            seen["groups"] += bool(groups)
            seen["OR"] += any(n.kind == "or" for n, _ in groups)
            seen["NOT"] += any(n.negated for n, _ in groups)
            seen["nested OR"] += any(n.kind == "or" for n, d in groups if d > 0)
            seen["nested NOT"] += any(n.negated for n, d in groups if d > 0)
            seen["depth 4"] += any(d == MAX_DEPTH - 1 for _, d in groups)
            seen["some rows"] += bool(got)
            seen["no rows"] += not got
            leaves_used = [n for n, _ in nodes if isinstance(n, Leaf)]
            if all(leaf.op in STREAM_OPERATORS for leaf in leaves_used):
                filters = parse_stream_filters(params, fields, max_in=500)
                streamed = [
                    row["id"] for row in visible
                    if all(f.matches(view.decode(row) or {}) for f in filters)
                ]
                assert streamed == got, params
                seen["streams"] += 1
                seen["stream groups"] += bool(groups)

        agree()
    finally:
        runner.run(client_context.__aexit__(None, None, None))
        runner.close()
    examples = scaled(100)
    # the generator made what the test's name promises, not only flat conditions
    for case, share in [("groups", 0.5), ("OR", 0.3), ("NOT", 0.3), ("nested OR", 0.1),
                        ("nested NOT", 0.1), ("depth 4", 0.03), ("NOT over NULL", 0.05),
                        ("hidden rows matched", 0.1),
                        ("some rows", 0.1), ("no rows", 0.1), ("streams", 0.2),
                        ("stream groups", 0.1)]:
        assert seen[case] >= share * examples, (case, seen)


FUZZ_TOKENS = [*'(),="\\._', "or(", "and(", "not.or(", "id", "__in", "__gt", "é", "x",
               "id=1", "name=a", 'name="a,b"', "qty__in=(1,2)", "note__isnull=true", "qty=x"]


def test_any_group_text_is_an_answer_not_an_error(db_url: str) -> None:
    """Whatever text a group parameter holds, the answer is 200, 400 or 422: never a 500."""
    app, cape = make_cape(db_url)
    cape.publish(Item)
    cape.permission_required(Item, actions=["read"])
    statuses: Counter[int] = Counter()
    runner = asyncio.Runner()
    client_context = app_client(app)
    client = runner.run(client_context.__aenter__())
    try:
        @given(
            key=st.sampled_from(["or", "and", "not.or", "not.and"]),
            parts=st.lists(st.sampled_from(FUZZ_TOKENS), max_size=12),
            closed=st.booleans(),
        )
        def answer(key: str, parts: list[str], closed: bool) -> None:
            text = "(" + "".join(parts) + (")" if closed else "")
            response = runner.run(client.get("/crud_item", params={key: text}))
            assert response.status_code in (200, 400, 422), (parts, response.text)
            statuses[response.status_code] += 1

        answer()
    finally:
        runner.run(client_context.__aexit__(None, None, None))
        runner.close()
    assert statuses[400] > 0 and statuses[200] + statuses[422] > 0, statuses
