"""``policy.evaluate``: SQL's three-valued logic in Python, case by case, and ``NotEvaluable``
for what Python cannot decide as the databases do. test_predicates_agree.py checks random
predicates against real databases; these are the rules it relies on, named one by one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    false,
    func,
    literal,
    literal_column,
    not_,
    null,
    or_,
    select,
    true,
)

from capebase.policy.evaluate import NotEvaluable, evaluate
from capebase.policy.sqlexpr import exact_equals

metadata = MetaData()
doc = Table(
    "doc",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("n", Integer),
    Column("s", String(20)),
    Column("b", Boolean),
)
other = Table("other", metadata, Column("n", Integer), Column("b", Boolean))

ROW = {"id": 1, "n": 2, "s": "ab", "b": True}
NULLS = {"id": 1, "n": None, "s": None, "b": None}

CASES: list[tuple[str, Any, dict[str, Any], Any]] = [
    # name, expression, row, value (None: SQL NULL)
    ("true", true(), ROW, True),
    ("false", false(), ROW, False),
    ("null", null(), ROW, None),
    ("bind", literal(7), ROW, 7),
    ("column", doc.c.n, ROW, 2),
    ("grouping", (doc.c.n == 2).self_group(), ROW, True),
    ("eq", doc.c.n == 2, ROW, True),
    ("ne", doc.c.n != 2, ROW, False),
    ("lt", doc.c.n < 2, ROW, False),
    ("le", doc.c.n <= 2, ROW, True),
    ("gt", doc.c.n > 1, ROW, True),
    ("ge", doc.c.n >= 3, ROW, False),
    ("eq NULL", doc.c.n == 2, NULLS, None),
    ("number kinds compare", doc.c.n == Decimal("2"), ROW, True),
    ("and", and_(doc.c.n == 2, doc.c.s == "ab"), ROW, True),
    ("and false wins over NULL", and_(doc.c.n == 2, doc.c.s == "x"), {**ROW, "n": None}, False),
    ("and NULL", and_(doc.c.n == 2, doc.c.s == "ab"), {**ROW, "n": None}, None),
    ("and of numbers", and_(doc.c.n, doc.c.id), ROW, True),
    ("and of zero", and_(doc.c.n, doc.c.id), {**ROW, "n": 0}, False),
    ("or", or_(doc.c.n == 5, doc.c.s == "ab"), ROW, True),
    ("or true wins over NULL", or_(doc.c.n == 2, doc.c.s == "x"), {**ROW, "s": None}, True),
    ("or NULL", or_(doc.c.n == 5, doc.c.s == "x"), {**ROW, "s": None}, None),
    ("or false", or_(doc.c.n == 5, doc.c.s == "x"), ROW, False),
    ("not", not_(doc.c.n == 2), ROW, False),
    ("not NULL", not_(doc.c.n == 2), NULLS, None),
    ("not of a number", not_(and_(doc.c.n, doc.c.id)), {**ROW, "n": 0}, True),
    ("is_true", doc.c.b.is_(True), ROW, True),
    ("boolean column", and_(doc.c.b, true()), ROW, True),
    ("~boolean column", ~doc.c.b, ROW, False),
    ("~boolean column false", ~doc.c.b, {**ROW, "b": False}, True),
    ("~boolean column NULL", ~doc.c.b, NULLS, None),
    ("exact_equals", exact_equals(doc.c.s, literal("ab")), ROW, True),
    ("exact_equals case", exact_equals(doc.c.s, literal("AB")), ROW, False),
    ("exact_equals NULL", exact_equals(doc.c.s, literal("ab")), NULLS, None),
    ("exact_equals of two columns", exact_equals(doc.c.s, doc.c.s), ROW, True),
    ("NOT of NULL", not_(and_(doc.c.n == 2, doc.c.s == "ab")), {**ROW, "n": None}, None),
    ("is NULL", doc.c.n.is_(None), NULLS, True),
    ("is NULL of a value", doc.c.n.is_(None), ROW, False),
    ("is not NULL", doc.c.n.is_not(None), ROW, True),
    ("is true of NULL", doc.c.b.is_(True), NULLS, False),
    ("is not false", doc.c.b.is_not(False), ROW, True),
    ("in", doc.c.n.in_([1, 2]), ROW, True),
    ("in miss", doc.c.n.in_([1, 3]), ROW, False),
    ("not in", doc.c.n.not_in([1, 3]), ROW, True),
    ("not in hit", doc.c.n.not_in([2]), ROW, False),
    ("in with NULL, hit", doc.c.n.in_([None, 2]), ROW, True),
    ("in with NULL, miss", doc.c.n.in_([None, 3]), ROW, None),
    ("not in with NULL, miss", doc.c.n.not_in([None, 3]), ROW, None),
    ("in of NULL", doc.c.n.in_([2]), NULLS, None),
    ("in ()", doc.c.n.in_([]), NULLS, False),
    ("not in ()", doc.c.n.not_in([]), NULLS, True),
    ("like", doc.c.s.like("a%"), ROW, True),
    ("like miss", doc.c.s.like("b%"), ROW, False),
    ("like _", doc.c.s.like("a_"), ROW, True),
    ("like case", doc.c.s.like("A%"), ROW, False),
    ("not like", doc.c.s.not_like("a%"), ROW, False),
    ("startswith", doc.c.s.startswith("a"), ROW, True),
    ("endswith", doc.c.s.endswith("a"), ROW, False),
    ("contains", doc.c.s.contains("b"), ROW, True),
    ("not contains", ~doc.c.s.contains("b"), ROW, False),
    ("like NULL", doc.c.s.like("a%"), NULLS, None),
    ("like NULL pattern", doc.c.s.like(literal(None, String)), ROW, None),
    ("like escape", doc.c.s.like("a!%", escape="!"), {**ROW, "s": "a%"}, True),
    ("like escape miss", doc.c.s.like("a!%", escape="!"), ROW, False),
    ("like default escape", doc.c.s.like("a\\_"), {**ROW, "s": "a_"}, True),
    ("like default escape miss", doc.c.s.like("a\\_"), ROW, False),
    ("like trailing escape", doc.c.s.like("a\\"), {**ROW, "s": "a\\"}, True),
    ("like pattern of a column", doc.c.s.like(doc.c.s), ROW, True),
]


@pytest.mark.parametrize(
    ("expr", "row", "value"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_value(expr: Any, row: dict[str, Any], value: Any) -> None:
    result = evaluate(expr, row, doc)
    assert (result, type(result)) == (value, type(value))


OTHER_N = "column 'n' is not a column of doc"
BOOLEAN_MIX = "comparison of a boolean with another type"
IS_OTHER = "IS with a value other than NULL, true or false"
NOT_EVALUABLE: list[tuple[str, Any, dict[str, Any], str]] = [
    ("literal SQL", literal_column("x") == 1, ROW, "literal SQL 'x'"),
    ("another table's column", other.c.n == 1, ROW, OTHER_N),
    ("another table's column in AND", and_(doc.c.n == 2, other.c.n == 2), ROW, OTHER_N),
    ("another table's column in OR", or_(doc.c.n == 2, other.c.n == 2), ROW, OTHER_N),
    ("another table's boolean, negated", ~other.c.b, ROW, "column 'b' is not a column of doc"),
    ("another table's column in IN", other.c.n.in_([2]), ROW, OTHER_N),
    ("a column not in the row", doc.c.n == 1, {"id": 1}, "column 'n' is not in the row image"),
    ("a function", func.lower(doc.c.s) == "ab", ROW, "cannot evaluate Function in Python"),
    ("text as a boolean", and_(doc.c.s, doc.c.n == 2), ROW, "str value used as a boolean"),
    ("text compared with a number", doc.c.s == 1, ROW, "comparison between str and int"),
    ("boolean compared with a number", doc.c.b == 1, ROW, BOOLEAN_MIX),
    ("number compared with a boolean", doc.c.n == True, ROW, BOOLEAN_MIX),  # noqa: E712
    ("IS a number", doc.c.n.is_(literal(2)), ROW, IS_OTHER),
    ("IS true of a number", doc.c.n.is_(True), ROW, IS_OTHER),
    ("operator", doc.c.n.op("%")(2) == 0, ROW, "cannot evaluate operator 'custom_op' in Python"),
    ("ilike", doc.c.s.ilike("a%"), ROW, "cannot evaluate operator 'ilike_op' in Python"),
    ("another table's column, grouped", (other.c.n == 2).self_group(), ROW, OTHER_N),
    ("another table's column under NOT", not_(and_(doc.c.n == 2, other.c.n == 2)), ROW, OTHER_N),
    ("another table's column on the right", doc.c.n == other.c.n, ROW, OTHER_N),
    ("exact_equals, another table's column left", exact_equals(other.c.n, literal(2)), ROW,
     OTHER_N),
    ("exact_equals, another table's column right", exact_equals(doc.c.n, other.c.n), ROW,
     OTHER_N),
    ("like over a number", doc.c.s.like("2"), {**ROW, "s": 2},
     "LIKE over something other than text"),
    ("computed pattern ending with its escape", doc.c.s.like(doc.c.s), {**ROW, "s": "a\\"},
     "a computed LIKE pattern ending with its escape character"),
    ("IN of a subquery", doc.c.n.in_(select(other.c.n)), ROW,
     "IN over something other than a list of values"),
    ("IN mixing types", doc.c.n.in_(["2"]), ROW, "comparison between int and str"),
    ("ordering of unorderable values", doc.c.s < literal(("a",)), ROW, "comparison between"),
    ("ordering of values Python cannot order", doc.c.s < literal({"b": 2}), {**ROW, "s": {"a": 1}},
     "'<' not supported between instances of 'dict' and 'dict'"),
    ("another table's column left of IN", other.c.n.in_([2, None]), ROW, OTHER_N),
]


@pytest.mark.parametrize(
    ("expr", "row", "message"), [c[1:] for c in NOT_EVALUABLE], ids=[c[0] for c in NOT_EVALUABLE]
)
def test_not_evaluable(expr: Any, row: dict[str, Any], message: str) -> None:
    with pytest.raises(NotEvaluable) as refused:
        evaluate(expr, row, doc)
    assert str(refused.value).startswith(message)
    if not message.startswith("comparison between"):  # the rest names the types
        assert str(refused.value) == message


def test_without_a_table_any_column_in_the_row_counts() -> None:
    assert evaluate(other.c.n == 2, ROW) is True
    assert evaluate(bindparam("p", value=[1]), ROW) == [1]
