"""List filters on random values of every column type agree with Python, and with the stream
filters, on SQLite, PostgreSQL and MariaDB.

Each Hypothesis example draws, for every column and every comparison operator that applies to
it, a value (often one of the stored ones, so that equality and the bounds are exercised) and
asks the list route; the rows it returns must be those Python's comparison selects, and those a
stream filtered the same way would deliver.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capebase.filters.streams import STREAM_OPERATORS
from capebase.testing import app_client
from capebase.wire.values import INTERVAL_RANGE
from tests.types._models import MODELS, Colour
from tests.types.test_matrix import (
    DIRECT,
    SPECS,
    Checks,
    Spec,
    as_json,
    expected_matches,
    make_app,
    query_value,
    row_values,
)

MODEL = MODELS["int"]
_TEXT = st.text(
    st.characters(codec="utf-8", exclude_characters=",\x00", exclude_categories=["Cs"]),
    max_size=6,
)
STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "name": _TEXT,
    "body": _TEXT,
    "small": st.integers(-(2**31), 2**31 - 1),
    "big": st.integers(-(2**63), 2**63 - 1),
    "ratio": st.floats(allow_nan=False, allow_infinity=False),
    "price": st.decimals(Decimal("-999999999.999"), Decimal("999999999.999"), places=3),
    "flag": st.booleans(),
    "day": st.dates(),
    "clock": st.times(),
    "moment": st.datetimes(timezones=st.just(UTC)),
    "naive": st.datetimes(),
    "span": st.timedeltas(*INTERVAL_RANGE),
    "ref": st.uuids(),
    "colour": st.sampled_from(Colour),
}
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "startswith", "contains")


def strategy(spec: Spec) -> st.SearchStrategy[Any]:
    """Values of ``spec``'s column: drawn freely, or one of the stored ones."""
    base = STRATEGIES[spec.name.removeprefix("o_")]
    return st.one_of(base, st.sampled_from(spec.values))


def operators(spec: Spec) -> list[str]:
    return [op for op in OPERATORS if op in spec.operators]


def test_filters_agree_with_python_on_random_values(db_url: str) -> None:
    app, cape = make_app(db_url, MODEL)
    runner = asyncio.Runner()
    client_context = app_client(app)
    client = runner.run(client_context.__aenter__())
    checked: Counter[str] = Counter()
    try:
        checks = Checks(cape, MODEL, client)
        python = [row_values(i) for i in range(3)]
        rows = [
            runner.run(checks.create(values, DIRECT)) for values in python
        ]
        specs = [spec for spec in SPECS.values() if spec.kind != "json"]

        @given(data=st.data())
        @settings(max_examples=8, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def agree(data: st.DataObject) -> None:
            for spec in specs:
                for op in operators(spec):
                    if op in ("in", "nin"):
                        # (``name__in=`` is an empty list: the grammar has no [""])
                        items = strategy(spec).filter(lambda v: v != "")
                        values = data.draw(st.lists(items, min_size=1, max_size=3))
                        wanted: Any = set(values)
                        raw = ",".join(query_value(MODEL, spec.name, v) for v in values)
                    else:
                        wanted = data.draw(strategy(spec))
                        raw = query_value(MODEL, spec.name, wanted)
                    got = runner.run(checks.list_(**{f"{spec.name}__{op}": raw,
                                                     "order_by": "id"}))
                    expected = [
                        row for row, values in zip(rows, python, strict=True)
                        if expected_matches(op, values[spec.name], wanted)
                    ]
                    assert got == expected, (spec.name, op, raw)
                    if op in STREAM_OPERATORS:
                        assert checks.streamed(spec.name, op, raw, rows) == expected
                    checked[spec.kind] += 1
                    checked[op] += 1

        agree()
    finally:
        runner.run(client_context.__aexit__(None, None, None))
        runner.close()
    # every kind of column met every operator that applies to it
    assert {"value", "text", "equality"} <= set(checked)
    assert set(OPERATORS) <= set(checked)
    assert as_json(MODEL, python[0])["name"] == rows[0]["name"]
