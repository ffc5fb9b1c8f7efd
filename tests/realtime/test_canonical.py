"""The canonical text resume tokens are bound to (``realtime.canonical``).

A token resumes only when the caller's claims and read rule are what they were: equal values
must give equal text in every process (key order, set order and hash seeds aside), and values
a rule could tell apart must give different text.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import bindparam, func
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase.realtime.canonical import NotCanonical, canonical_text, rule_fingerprint


class Tier(Enum):
    GOLD = "gold"
    SILVER = "silver"


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
    st.sampled_from([0.0, -0.0, 1.0]), st.text(max_size=3), st.binary(max_size=2),
    st.decimals(places=1, min_value=-2, max_value=2), st.sampled_from([uuid.UUID(int=1)]),
    st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 1, 3)),
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 1, 1, 0, 0, 2),
                 timezones=st.sampled_from([None, UTC])),
    st.sampled_from([time(1), time(1, tzinfo=UTC), timedelta(seconds=1), timedelta(0)]),
    st.sampled_from(list(Tier)),
)
keys = st.one_of(st.text(max_size=2), st.integers(0, 2))
claims = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.frozensets(st.one_of(st.integers(0, 3), st.text(max_size=2)), max_size=3),
        st.dictionaries(keys, inner, max_size=3),
    ),
    max_leaves=8,
)


def same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same value of the same types, all the way down (the
    reference ``canonical_text`` must agree with)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        both_nan = math.isnan(a) and math.isnan(b)
        return both_nan or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(
            any(same(k, j) and same(a[k], b[j]) for j in b) for k in a
        )
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, datetime | time):
        return a == b and a.isoformat() == b.isoformat()
    return bool(a == b)


def reordered(value: Any) -> Any:
    """``value`` with every dict's keys, and every set built, in reverse order."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    if isinstance(value, tuple):
        return tuple(reordered(v) for v in value)
    if isinstance(value, frozenset):
        return frozenset(reversed(list(value)))
    return value


def kinds(value: Any) -> set[str]:
    if isinstance(value, dict):
        return {"mapping"}.union(*(kinds(v) for v in value.values()))
    if isinstance(value, list | tuple | frozenset):
        return {type(value).__name__}.union(*(kinds(v) for v in value))
    return {type(value).__name__}


def test_equal_text_exactly_for_the_same_value() -> None:
    covered: Counter[str] = Counter()
    equal_pairs = 0

    @given(a=claims, b=claims)
    def agree(a: Any, b: Any) -> None:
        nonlocal equal_pairs
        covered.update(kinds(a))
        assert canonical_text(a) == canonical_text(reordered(a))
        assert (canonical_text(a) == canonical_text(b)) == same(a, b), (a, b)
        equal_pairs += canonical_text(a) == canonical_text(b)

    agree()
    assert equal_pairs > 0
    for kind in ("bool", "int", "float", "str", "datetime", "date", "list", "tuple",
                 "frozenset", "mapping", "Tier"):
        assert covered[kind], (kind, covered)


@pytest.mark.parametrize(
    ("a", "b"),
    [(1, 1.0), (1, True), (0, False), ("1", 1), ([1], (1,)), ([1, 2], frozenset({1, 2})),
     ({1: "x"}, {"1": "x"}), (None, "null"), (Tier.GOLD, "gold"), (Decimal("1.0"), 1.0),
     (datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC)), (date(2026, 1, 1), "2026-01-01")],
)
def test_values_python_calls_equal_but_a_rule_may_not(a: Any, b: Any) -> None:
    assert canonical_text(a) != canonical_text(b)


CYCLE: list[Any] = []
CYCLE.append(CYCLE)


class Text(str):
    """A subclass may compare its own way."""


@pytest.mark.parametrize("value", [object(), {"k": object()}, [b"", bytearray()], CYCLE, Text()])
def test_values_without_a_canonical_text(value: Any) -> None:
    with pytest.raises(NotCanonical):
        canonical_text(value)


class Base(SQLModel, registry=registry()):
    pass


class Doc(Base, table=True):
    __tablename__ = "cn_doc"
    id: int | None = Field(default=None, primary_key=True)
    org: str
    level: int


def test_a_rule_fingerprint_is_its_shape_and_values() -> None:
    base = rule_fingerprint(Doc.level <= 3)
    assert base == rule_fingerprint(Doc.level <= 3)
    assert base != rule_fingerprint(Doc.level <= 4)  # a value
    assert base != rule_fingerprint(Doc.level < 3)  # an operator
    assert base != rule_fingerprint(Doc.id <= 3)  # a column
    assert base != rule_fingerprint(func.abs(Doc.level) <= 3)  # a function
    assert rule_fingerprint(Doc.org.in_(["a", "b"])) == rule_fingerprint(Doc.org.in_(["b", "a"]))
    with pytest.raises(NotCanonical):
        rule_fingerprint(Doc.level <= bindparam("opaque", object()))
    with pytest.raises(NotCanonical):  # a value computed when the statement runs
        rule_fingerprint(Doc.level <= bindparam("clock", callable_=lambda: 3))


FINGERPRINT = """
import json, sys
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from capebase.realtime.canonical import canonical_text, rule_fingerprint
class Base(SQLModel, registry=registry()):
    pass
class Doc(Base, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org: str
orgs = {"acme", "initech", "globex", "umbrella", "hooli"}
claims = {"orgs": frozenset(orgs), "meta": {o: len(o) for o in orgs}}
print(json.dumps([rule_fingerprint(Doc.org.in_(list(orgs))).hex(), canonical_text(claims)]))
"""


def test_the_same_in_every_process() -> None:
    """Another process of the app (another hash seed: another set order) writes the same."""
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", FINGERPRINT], env=env, check=True,
                              capture_output=True, text=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert json.loads(outputs.pop())[0]
