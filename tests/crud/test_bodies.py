"""crud.bodies: a row taken out of a bulk or batch body is validated from JSON text that reads
exactly as the row was sent, so each row is judged as the single route would judge it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from capebase.crud.bodies import exact_json, parsed_json, validated_item
from capebase.crud.lean import validated_body
from capebase.wire.grammar import ExactDecimals


class Priced(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    amount: Decimal = Field(max_digits=30, decimal_places=2)
    ratio: float = 0.0


NUMBERS = ["12345678901234567890.25", "0.10", "1e1", "-0.0", "1E+2", "12", "1.005", "1e400",
           "123456789012345678901234567890.5"]


@pytest.mark.parametrize("number", NUMBERS)
def test_a_row_is_judged_as_its_single_body(number: str) -> None:
    """A Decimal read through a float would keep ~16 digits; the row keeps every one."""
    single = f'{{"amount": {number}, "ratio": {number}}}'.encode()
    exact = ExactDecimals.of(Priced)
    try:
        expected: Any = validated_body(Priced, exact, single)
    except RequestValidationError as exc:
        expected = [(e["type"], e["loc"][1:]) for e in exc.errors()]
    item = parsed_json(b"[" + single + b"]")[0]
    try:
        got: Any = validated_item(Priced, exact, item, (0,))
    except RequestValidationError as exc:
        got = [(e["type"], e["loc"][2:]) for e in exc.errors()]
    assert got == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: str(d)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_exact_json_reads_as_the_text_it_came_from(value: Any) -> None:
    text = json.dumps(value)
    again = exact_json(parsed_json(text.encode()))
    assert json.loads(again, parse_float=Decimal) == json.loads(text, parse_float=Decimal)


def test_a_decimal_number_keeps_its_digits() -> None:
    text = b'{"a": 12345678901234567890.5, "b": [1.10, 1e400]}'
    assert exact_json(parsed_json(text)) == b'{"a":12345678901234567890.5,"b":[1.10,1E+400]}'
