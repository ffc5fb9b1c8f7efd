"""Each rule compiles to a SQL predicate and to a Python predicate; the two must agree.

Hypothesis generates rows, callers and rule sets (owner, role, context_fields in list, dict and
IN form, and ``where`` trees of comparisons, and/or/not, IN/NOT IN and IS NULL over nullable
columns). The rows are stored in a real database and selected with ``Policy.sql_filter``; for
every row ``Policy.check_row`` must give the same answer, or ``None`` when the rules use
something Python cannot evaluate exactly (never a guess). The database's own evaluation of an
unstored row image (``with_row_values``, used for writes and realtime checks) must agree too.

Text values are look-alikes: they differ only by case, accents, leading or trailing spaces, or
hold LIKE's wildcards ``%`` and ``_`` and backslashes (its escape character). MariaDB compares
text case- and accent-insensitively and ignoring trailing spaces unless told otherwise, and the
databases disagree on LIKE's escape character; ``where`` trees compare text with ``==``, ordering,
``like``, ``startswith``, ``endswith``, ``contains`` and their negations (issue 16, item 6:
``startswith("pub")`` admitted "PUB upper" on MariaDB). The test asserts it generated each kind of
look-alike against each pattern operator.
"""

from __future__ import annotations

import asyncio
import operator
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import ColumnElement, and_, delete, func, insert, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from capebase import AuthContext
from capebase.db.engine import create_engine
from capebase.policy import Policy
from capebase.policy.sqlexpr import with_row_values
from tests._hypothesis import scaled

from .models import Prop

EXAMPLES = int(os.environ.get("CAPEBASE_POLICY_EXAMPLES", "120"))
PROPERTY_SETTINGS = settings(
    max_examples=scaled(EXAMPLES),
    # derandomize (under `make test`), the database and the deadline come from the profile
    # (tests/_hypothesis.py)
    suppress_health_check=[HealthCheck.too_slow],
)

TEXTS = [
    "a", "A", "a ", " a", "b", "ab", "",
    "pub", "PUB", "Pub", "püb", "pub ", "pu", "éa", "Éa", "ea",  # case, accents, trailing space
    "a%", "%", "_", "a_", "ab%", "a_b",  # LIKE's wildcards inside values
    "a\\", "\\", "a\\%", "\\_", "a\\b",  # backslashes: LIKE's escape character
]
text = st.sampled_from(TEXTS)
small_int = st.integers(-1, 3)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def owner_look_alikes(value: str) -> list[str]:
    """Texts a lax comparison would take for ``value``: other case, trailing or leading space."""
    similar = {value + " ", " " + value, value.rstrip(), value.upper(), value.lower()}
    return sorted(similar - {value})


def rows_strategy(ids: list[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Rows (at least one), whose owners are often the callers' ``ids`` or look-alikes of them."""
    owner = maybe(text)
    if ids:
        owner = owner | st.sampled_from(ids) | st.sampled_from(ids).map(owner_look_alikes).flatmap(
            st.sampled_from
        )
    return st.lists(
        st.fixed_dictionaries(
            {
                "owner": owner,
                "org": maybe(text),
                "name": maybe(text),
                "team": maybe(small_int),
                "level": maybe(small_int),
                "flag": maybe(st.booleans()),
            }
        ),
        min_size=1,
        max_size=8,
    )


contexts = st.builds(
    AuthContext,
    id=text,  # callers with ids; ``cases`` adds anonymous ones
    role=st.sampled_from([None, "admin", "user"]),
    context=st.fixed_dictionaries(
        {},
        optional={
            "org": text | st.lists(maybe(text), max_size=3),
            # Context values arrive as text, ints, floats, booleans...: only values the column
            # can hold may match.
            "team": small_int
            | st.sampled_from(["1", "x", "2.0", 2.5, 2.0, True])
            | st.lists(small_int, max_size=3),
            "clearance": small_int,
            "names": st.lists(maybe(text), max_size=3),
        },
    ),
)

# -- where trees ------------------------------------------------------------------------------
# A tree is data; ``build`` turns it into the SQLAlchemy expression a where= callable returns.

NUMERIC = ("team", "level")
TEXTUAL = ("owner", "org", "name")
OPS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}

numeric_leaf = st.tuples(
    st.just("num"),
    st.sampled_from(NUMERIC),
    st.sampled_from(list(OPS)),
    st.one_of(
        # SQLAlchemy only accepts None with = and != (as IS NULL / IS NOT NULL).
        st.tuples(st.just("const"), small_int),
        st.just(("ctx", "clearance")),
        st.tuples(st.just("col"), st.sampled_from(NUMERIC)),
    ),
) | st.tuples(
    st.just("num"),
    st.sampled_from(NUMERIC),
    st.sampled_from(["eq", "ne"]),
    st.just(("const", None)),
)
text_leaf = st.tuples(
    st.just("text"),
    st.sampled_from(TEXTUAL),
    st.sampled_from(["eq", "ne"]),
    st.one_of(
        st.tuples(st.just("const"), maybe(text)),
        st.just(("id",)),
        st.tuples(st.just("col"), st.sampled_from(TEXTUAL)),
    ),
)
null_leaf = st.tuples(
    st.just("null"), st.sampled_from(NUMERIC + TEXTUAL + ("flag",)), st.booleans()
)
in_leaf = st.one_of(
    st.tuples(
        st.just("in"),
        st.sampled_from(NUMERIC),
        st.booleans(),
        st.tuples(st.just("const"), st.lists(maybe(small_int), max_size=3)),
    ),
    st.tuples(
        st.just("in"),
        st.sampled_from(TEXTUAL),
        st.booleans(),
        st.tuples(st.just("const"), st.lists(maybe(text), max_size=3)) | st.just(("ctx", "names")),
    ),
)
flag_leaf = st.tuples(
    st.just("flag"), st.sampled_from(["bare", "not", "eq_true", "is_true", "is_not_false"])
)
PATTERN_OPS = (
    "like", "not_like", "startswith", "not_startswith", "endswith", "not_endswith",
    "contains", "not_contains", "lt", "le", "gt", "ge",
)
# Text patterns and ordering, which Python evaluates as every database must: exactly.
pattern_leaf = st.tuples(
    st.just("pattern"),
    st.sampled_from(TEXTUAL),
    st.sampled_from(PATTERN_OPS),
    st.one_of(st.tuples(st.just("const"), text), st.just(("id",))),
    st.booleans(),  # autoescape, for startswith/endswith/contains
)
# Python must not evaluate these: SQL functions, case-insensitive matching.
opaque_leaf = st.tuples(
    st.just("opaque"),
    st.sampled_from(["lower", "ilike", "icontains"]),
    st.sampled_from(TEXTUAL),
    text,
)

leaves = numeric_leaf | text_leaf | null_leaf | in_leaf | flag_leaf | pattern_leaf | opaque_leaf
where_trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.tuples(st.just("and"), st.lists(children, min_size=1, max_size=3)),
        st.tuples(st.just("or"), st.lists(children, min_size=1, max_size=3)),
        st.tuples(st.just("not"), children),
    ),
    max_leaves=6,
)


def operand(spec: tuple[Any, ...], ctx: AuthContext) -> Any:
    if spec[0] == "const":
        return spec[1]
    if spec[0] == "ctx":
        return ctx.context[spec[1]]  # a missing key: the rule matches nothing
    if spec[0] == "id":
        return ctx.id
    return getattr(Prop, spec[1])


def build(tree: tuple[Any, ...], ctx: AuthContext) -> ColumnElement[bool]:
    kind = tree[0]
    if kind in ("num", "text"):
        _, column, op, right = tree
        result: ColumnElement[bool] = OPS[op](getattr(Prop, column), operand(right, ctx))
        return result
    if kind == "null":
        column = getattr(Prop, tree[1])
        return column.is_(None) if tree[2] else column.is_not(None)
    if kind == "in":
        _, name, negate, values = tree
        column = getattr(Prop, name)
        listed = list(operand(values, ctx))
        return column.not_in(listed) if negate else column.in_(listed)
    if kind == "flag":
        flag: Any = Prop.flag
        return {
            "bare": lambda: flag,
            "not": lambda: not_(flag),
            "eq_true": lambda: flag == True,  # noqa: E712 - an SQL comparison
            "is_true": lambda: flag.is_(True),
            "is_not_false": lambda: flag.is_not(False),
        }[tree[1]]()
    if kind == "pattern":
        _, name, op, right, autoescape = tree
        column = getattr(Prop, name)
        value = operand(right, ctx)
        if value is None:
            raise LookupError("no caller id to match")  # the rule then matches nothing
        if op in ("lt", "le", "gt", "ge"):
            return OPS[op](column, value)  # type: ignore[no-any-return]
        negate = op.startswith("not_")
        base = op.removeprefix("not_")
        if base == "like":
            matched = column.like(value)
        else:
            matched = getattr(column, base)(value, autoescape=autoescape)
        return ~matched if negate else matched  # type: ignore[no-any-return]
    if kind == "opaque":
        _, how, name, value = tree
        column = getattr(Prop, name)
        if how == "lower":
            return func.lower(column) == value  # type: ignore[no-any-return]
        if how == "ilike":
            return column.ilike(f"{value}%")  # type: ignore[no-any-return]
        return column.icontains(value)  # type: ignore[no-any-return]
    if kind == "not":
        return not_(build(tree[1], ctx))
    combine = and_ if kind == "and" else or_
    return combine(*(build(child, ctx) for child in tree[1]))


def is_opaque(tree: tuple[Any, ...]) -> bool:
    if tree[0] == "opaque":
        return True
    if tree[0] == "not":
        return is_opaque(tree[1])
    if tree[0] in ("and", "or"):
        return any(is_opaque(child) for child in tree[1])
    return False


def lookalike_kinds(row_owner: Any, caller_id: str | None) -> set[str]:
    """How ``row_owner`` only looks like ``caller_id``: "case", "trailing space" (or both)."""
    if not isinstance(row_owner, str) or caller_id is None or row_owner == caller_id:
        return set()
    kinds = set()
    if row_owner.lower() == caller_id.lower():
        kinds.add("case")
    if row_owner.rstrip() == caller_id.rstrip():
        kinds.add("trailing space")
    return kinds


rule_specs = st.fixed_dictionaries(
    {
        "role": st.sampled_from([None, "*", "admin", ("admin", "user")]),
        "owner_field": st.sampled_from([None, "owner"]),
        "context_fields": st.sampled_from(
            [None, ["org"], {"team": "team"}, {"name": "names"}, ["org", "team"]]
        ),
        "where": maybe(where_trees),
    }
)


def make_policy(specs: list[dict[str, Any]]) -> Policy:
    policy = Policy()
    for spec in specs:
        tree = spec["where"]
        policy.add(
            Prop,
            actions=["read"],
            role=spec["role"],
            owner_field=spec["owner_field"],
            context_fields=spec["context_fields"],
            where=None if tree is None else (lambda ctx, tree=tree: build(tree, ctx)),
        )
    return policy


async def check_agreement(
    engine: AsyncEngine,
    specs: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    callers: list[AuthContext],
) -> None:
    policy = make_policy(specs)
    images = [{"id": i, **row} for i, row in enumerate(rows, start=1)]
    table = Prop.__table__
    async with engine.begin() as connection:
        await connection.execute(delete(Prop))
        if images:
            await connection.execute(insert(Prop), images)
    async with engine.connect() as connection:
        for ctx in callers:
            predicate = policy.sql_filter(Prop, "read", ctx)
            selected = set((await connection.scalars(select(Prop.id).where(predicate))).all())
            unstored: list[Any] = []
            if images:
                probe = select(
                    *(
                        with_row_values(predicate, table, image).label(f"r{image['id']}")
                        for image in images
                    )
                )
                unstored = list((await connection.execute(probe)).one())
            decidable = not any(
                spec["where"] is not None and is_opaque(spec["where"]) for spec in specs
            )
            for image, by_image in zip(images, unstored or [None] * len(images), strict=True):
                in_sql = image["id"] in selected
                verdict = policy.check_row(Prop, "read", ctx, image)
                context = f"row={image} ctx={ctx} rules={specs}"
                assert bool(by_image) == in_sql, f"with_row_values disagrees: {context}"
                if verdict is None:
                    assert not decidable, f"check_row undecided on plain rules: {context}"
                else:
                    assert verdict == in_sql, f"SQL says {in_sql}, Python {verdict}: {context}"


@st.composite
def cases(
    draw: st.DrawFn,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[AuthContext]]:
    """Rules, rows and callers: callers with ids (plus, half the time, an anonymous one with
    the first caller's context), rows owned by them or by look-alikes of their ids (the first
    row always by one)."""
    specs = draw(st.lists(rule_specs, min_size=1, max_size=3))
    callers = draw(st.lists(contexts, min_size=1, max_size=3))
    if draw(st.booleans()):
        callers.append(AuthContext(role=callers[0].role, context=callers[0].context))
    ids = [c.id for c in callers if c.id is not None]
    rows = draw(rows_strategy(ids))
    # One row always looks like a caller's id, by case or by a trailing space.
    mimicked = draw(st.sampled_from(ids))
    rows[0]["owner"] = draw(st.sampled_from([mimicked.swapcase(), mimicked + " "]))
    return specs, rows, callers


def classify(
    specs: list[dict[str, Any]], rows: list[dict[str, Any]], callers: list[AuthContext]
) -> set[str]:
    """The case classes one example covers (see ``PROMISED``)."""
    found = {"rows"} if rows else set()
    if any(c.id is not None for c in callers):
        found.add("caller with id")
    if any(spec["owner_field"] for spec in specs):
        for row in rows:
            for caller in callers:
                if row["owner"] == caller.id:
                    found.add("owner rule, own row")
                found |= {f"owner rule, look-alike owner ({kind})"
                          for kind in lookalike_kinds(row["owner"], caller.id)}
    return found


PROMISED = {
    # class: the least share of examples that must cover it (one in ten: the share Hypothesis
    # draws varies between its releases, 13% to 57% from the oldest allowed to the locked one)
    "rows": 1.0,
    "caller with id": 1.0,
    "owner rule, own row": 0.1,
    "owner rule, look-alike owner (case)": 0.1,
    "owner rule, look-alike owner (trailing space)": 0.1,
}


@pytest.mark.timeout(600)
def test_sql_and_python_predicates_agree(db_url: str) -> None:
    covered: Counter[str] = Counter()
    runs = 0
    with asyncio.Runner() as runner:
        engine = create_engine(db_url)  # capebase's: SQLite's LIKE is case-sensitive there
        try:
            runner.run(_create(engine))

            @PROPERTY_SETTINGS
            @given(case=cases())
            def agree(
                case: tuple[list[dict[str, Any]], list[dict[str, Any]], list[AuthContext]],
            ) -> None:
                nonlocal runs
                specs, rows, callers = case
                runs += 1
                covered.update(classify(specs, rows, callers))
                runner.run(check_agreement(engine, specs, rows, callers))

            agree()
        finally:
            runner.run(engine.dispose())
    # Counted over every run, shrinking and replays included: a lower bound on what was checked.
    short = {
        name: f"{covered[name]}/{runs}"
        for name, share in PROMISED.items()
        if covered[name] < share * runs
    }
    assert not short, f"too few examples of {short}; covered {dict(covered)} of {runs}"


async def _create(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(Prop.metadata.create_all, tables=[Prop.__table__])


# -- text patterns against their look-alikes -------------------------------------------------
# The general test mixes pattern leaves into random trees; this one aims every pattern operator
# at one value and rows that look like it, so each kind of look-alike meets each operator.

PATTERN_VALUES = ["pub", "Pub", "ea", "é", "a%", "a_b", "%", "_", "a\\", "\\%", "a\\_", "x y"]
ACCENTED = str.maketrans("aeiouAEIOU", "áéîõüÁÉÎÕÜ")
LOOK_ALIKES = ("case", "accent", "trailing space", "wildcard", "backslash")


def look_alikes(value: str) -> dict[str, list[str]]:
    """Stored values that a collation, a padding or a wildcard could confuse with ``value``."""
    made = {
        "case": [value.upper(), value.lower(), value.swapcase()],
        "accent": [value.translate(ACCENTED), value.translate(ACCENTED).upper()],
        "trailing space": [value + " ", value.rstrip() + "  ", " " + value],
        # what a wildcard or an escape would admit if it were not taken literally
        "wildcard": [value.replace("%", "zz").replace("_", "z"), value.replace("%", "")],
        "backslash": [value.replace("\\", ""), value.replace("\\", "\\\\")],
    }
    return {kind: [v for v in values if v != value] for kind, values in made.items()}


def kinds_of(value: str) -> set[str]:
    """The look-alike kinds an example with pattern value ``value`` exercises."""
    kinds = {"trailing space"}
    if value.upper() != value.lower():
        kinds.add("case")
    if value.translate(ACCENTED) != value:
        kinds.add("accent")
    if set(value) & set("%_"):
        kinds.add("wildcard")
    if "\\" in value:
        kinds.add("backslash")
    return kinds


@st.composite
def pattern_examples(draw: st.DrawFn) -> tuple[str, bool, list[dict[str, Any]]]:
    value = draw(st.sampled_from(PATTERN_VALUES))
    names = [value, *(v for vs in look_alikes(value).values() for v in vs)]
    names += draw(st.lists(text, max_size=3))
    names = list(dict.fromkeys(n for n in names if len(n) <= 20))
    rows = [{"owner": None, "org": None, "name": n, "team": None, "level": None, "flag": None}
            for n in names]
    rows.append({"owner": None, "org": None, "name": None, "team": None, "level": None,
                 "flag": None})
    return value, draw(st.booleans()), rows


@pytest.mark.timeout(600)
def test_text_patterns_agree_on_look_alikes(db_url: str) -> None:
    generated: set[tuple[str, str]] = set()
    with asyncio.Runner() as runner:
        engine = create_engine(db_url)
        try:
            runner.run(_create(engine))

            @PROPERTY_SETTINGS
            @given(example=pattern_examples())
            def agree(example: tuple[str, bool, list[dict[str, Any]]]) -> None:
                value, autoescape, rows = example
                for op in PATTERN_OPS:
                    leaf = ("pattern", "name", op, ("const", value), autoescape)
                    spec = {"role": None, "owner_field": None, "context_fields": None,
                            "where": leaf}
                    runner.run(check_agreement(engine, [spec], rows, [AuthContext()]))
                    generated.update((op, kind) for kind in kinds_of(value))

            agree()
        finally:
            runner.run(engine.dispose())
    wanted = {(op, kind) for op in PATTERN_OPS for kind in LOOK_ALIKES}
    assert wanted <= generated, f"never generated: {sorted(wanted - generated)}"
