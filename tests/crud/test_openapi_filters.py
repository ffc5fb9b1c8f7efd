"""OpenAPI declares every filter the list and stream routes take, one query parameter per field
and operator, typed by the field; and every declared filter works against the list route.

The expected set is generated from the models' column types (every type SQLModel users write,
tests/types/_models.py), never listed by hand: a column's kind says which operators apply, its
published read schema what a value looks like. The list is then asked with each field and
each operator, declared or not: a declared one answers 200 for a value its declared schema
allows (and 422 for one it does not), an undeclared one 400.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import ARRAY, JSON, Boolean, Enum, String
from sqlmodel import SQLModel

from capebase import CapeBase
from capebase.filters.query import OPERATORS
from capebase.filters.streams import STREAM_OPERATORS
from capebase.identity.secret_fields import secret_keys
from capebase.testing import app_client
from capebase.wire.values import storage_type
from tests.models import Item, Note, Slug
from tests.observability._app import Account
from tests.types._models import MODELS
from tests.types.test_matrix import make_app

TEXT = {"type": "string"}
NOT_OF_A_VALUE = ("title", "description", "default")
BOOLEAN = {"type": "boolean"}
EQUALITY = {"eq", "ne", "in", "nin", "isnull"}
ORDERED = EQUALITY | {"gt", "gte", "lt", "lte"}
TEXT_SEARCH = {"like", "ilike", "contains", "icontains", "startswith"}
MODELS_DECLARED: list[type[SQLModel]] = [*MODELS.values(), Item, Slug, Note, Account]


def applicable(model: type[SQLModel], field: str) -> set[str]:
    """The operators a column of this type takes: JSON and arrays only whether they are null;
    booleans and enums equality; text everything; any other type equality and order."""
    stored = storage_type(model.__table__.c[field].type)  # type: ignore[attr-defined]
    if isinstance(stored, JSON | ARRAY):
        return {"isnull"}
    if isinstance(stored, Boolean | Enum):
        return EQUALITY
    if isinstance(stored, String):
        return ORDERED | TEXT_SEARCH
    return ORDERED


def published_fields(model: type[SQLModel]) -> list[str]:
    table = model.__table__  # type: ignore[attr-defined]
    return [c.key for c in table.c if c.key not in secret_keys(table)]


def resolved(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    reference = schema.get("$ref")
    if reference is None:
        return schema
    target = document["components"]["schemas"][reference.rsplit("/", 1)[1]]
    return resolved({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, document)


def value_schema(document: dict[str, Any], model: type[SQLModel], field: str) -> dict[str, Any]:
    """The field's schema in ``{Model}Read`` as a client sends a value (``document`` is in
    validation mode: a decimal is a number or a string of one), as a filter value: never
    null, no title."""
    read = document["components"]["schemas"][f"{model.__name__}Read"]
    schema = resolved(read["properties"][field], document)
    outer = {k: v for k, v in schema.items() if k not in ("anyOf", *NOT_OF_A_VALUE)}
    members = [{k: v for k, v in resolved(m, document).items() if k not in NOT_OF_A_VALUE}
               for m in schema.get("anyOf", [schema]) if m != {"type": "null"}]
    return {**outer, **members[0]} if len(members) == 1 else {**outer, "anyOf": members}


def numbers_as_floats(schema: Any) -> Any:
    """``schema`` with its numbers as floats: FastAPI writes an integer column's 64-bit
    bounds into components as floats (9.223372036854776e+18)."""
    if isinstance(schema, dict):
        return {key: numbers_as_floats(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [numbers_as_floats(value) for value in schema]
    if isinstance(schema, int) and not isinstance(schema, bool):
        return float(schema)
    return schema


def parameters(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = Counter(p["name"] for p in operation["parameters"])
    assert [n for n, count in names.items() if count > 1] == [], "a parameter declared twice"
    return {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}


def document_of(model: type[SQLModel], *, validation_mode: bool = False) -> dict[str, Any]:
    """The OpenAPI document of an app publishing ``model``; with ``validation_mode``, its
    components in the form a client sends them (FastAPI writes one form of each model)."""
    app = FastAPI(separate_input_output_schemas=not validation_mode)
    cape = CapeBase(app=app, db_url="sqlite+aiosqlite://")  # never connected
    cape.publish(model)
    return app.openapi()


@pytest.mark.parametrize("model", MODELS_DECLARED, ids=lambda m: m.__name__)
def test_every_field_and_operator_is_declared_with_its_type(model: type[SQLModel]) -> None:
    document = document_of(model, validation_mode=True)
    path = f"/{model.__tablename__}"
    listed = parameters(document["paths"][path]["get"])
    streamed = parameters(document["paths"][f"{path}/subscribe"]["get"])
    fields = published_fields(model)
    # a list refuses ?field__in= (no value), a stream reads it as the one value ""
    for routed, operators, in_list in ((listed, set(OPERATORS), {**TEXT, "minLength": 1}),
                                       (streamed, set(STREAM_OPERATORS), TEXT)):
        declared = {name for name in routed if name.partition("__")[0] in fields}
        expected: set[str] = set()
        for field in fields:
            ops = applicable(model, field) & operators
            expected |= {f"{field}__{op}" for op in ops}
            if "eq" in ops:
                expected.add(field)
        assert declared == expected
        for name in sorted(expected):
            field, _, op = name.partition("__")
            parameter = routed[name]
            assert parameter["required"] is False and parameter["description"], name
            assert f"`{field}`" in parameter["description"], name
            if op == "isnull":
                assert parameter["schema"] == BOOLEAN, name
            elif op in ("in", "nin"):
                assert parameter["schema"] == in_list, name
            elif op in TEXT_SEARCH:
                assert parameter["schema"] == TEXT, name
            else:  # a value of the field, as a read answer carries it
                assert numbers_as_floats(parameter["schema"]) == numbers_as_floats(
                    value_schema(document, model, field)), name
    secrets = set(secret_keys(model.__table__))  # type: ignore[attr-defined]
    for routed in (listed, streamed):
        assert not {n for n in routed if n.partition("__")[0] in secrets}


def test_groups_and_stream_parameters_are_declared() -> None:
    document = document_of(Item)
    listed = parameters(document["paths"]["/crud_item"]["get"])
    streamed = parameters(document["paths"]["/crud_item/subscribe"]["get"])
    for name in ("or", "and", "not.or", "not.and"):
        assert listed[name]["description"] and streamed[name]["description"], name
    for name in ("select", "last_event_id", "ticket", "access_token"):
        assert streamed[name]["schema"] == TEXT and streamed[name]["description"], name
    for name in ("limit", "offset", "order_by", "count", "select", "after", "envelope"):
        assert listed[name]["description"], name


def test_list_headers_are_declared() -> None:
    document = document_of(Item)
    headers = document["paths"]["/crud_item"]["get"]["responses"]["200"]["headers"]
    assert headers["X-Total-Count"]["schema"] == {"type": "integer", "minimum": 0}
    assert "count=true" in headers["X-Total-Count"]["description"]
    assert headers["Link"]["schema"] == TEXT


def test_primary_keys_are_never_null_in_read_schemas() -> None:
    """``id: int | None = Field(default=None, primary_key=True)``: a stored row has its key."""
    for model in MODELS_DECLARED:
        read = document_of(model)["components"]["schemas"][f"{model.__name__}Read"]
        key = model.__table__.primary_key.columns.keys()[0]  # type: ignore[attr-defined]
        assert key in read["required"], model
        assert "anyOf" not in read["properties"][key], (model, read["properties"][key])
        assert read["properties"][key].get("type") != "null", model


# -- what the declarations promise, asked of the list route -----------------------------------

FORMATS = {
    "date-time": "2026-01-02T03:04:05Z", "date": "2026-01-02", "time": "03:04:05",
    "duration": "P1DT2H", "uuid": "7f000000-0000-4000-8000-00000000abcd",
}
CANDIDATES = ["1", "0.5", "ab", *FORMATS.values(), "2026-01-02T03:04:05", "PT1S"]


def allowed_value(schema: dict[str, Any]) -> str:
    """A query-string value ``schema`` allows, found by reading it."""
    if "anyOf" in schema:
        return allowed_value(schema["anyOf"][0])
    if "enum" in schema:
        return str(schema["enum"][0])
    kind = schema.get("type")
    if kind == "boolean":
        return "true"
    if kind in ("integer", "number"):
        low, high = schema.get("minimum", -(2**70)), schema.get("maximum", 2**70)
        return str(min(max(1, low), high))
    assert kind == "string", schema
    if "format" in schema:
        return FORMATS[schema["format"]]
    pattern = schema.get("pattern")
    if pattern is None:
        return "ab"
    fitting = [c for c in CANDIDATES if re.search(pattern, c)]
    assert fitting, f"no candidate value fits {pattern!r}"
    return fitting[0]


def example(name: str, declared: dict[str, dict[str, Any]]) -> str:
    """A value the declared parameter ``name`` allows; ``in`` and ``nin`` take a list of
    the field's values (one here)."""
    field, _, op = name.partition("__")
    if op in ("in", "nin"):
        return allowed_value(declared[f"{field}__eq"]["schema"])
    return allowed_value(declared[name]["schema"])


def names_it(detail: str, name: str) -> bool:
    """Whether a 400's ``detail`` names the parameter ``name``'s field or operator."""
    field, _, op = name.partition("__")
    return f"{field!r}" in detail or f"{op or 'eq'!r}" in detail


def refuses(schema: dict[str, Any], text: str) -> bool:
    """Whether no alternative of ``schema`` allows the query-string value ``text``."""
    for member in schema.get("anyOf", [schema]):
        if "enum" in member:
            if text in map(str, member["enum"]):
                return False
        elif member.get("type") == "string" and "format" not in member and not (
            "pattern" in member and re.search(member["pattern"], text) is None
        ):
            return False
    return True


@pytest.mark.parametrize("kind", list(MODELS))
async def test_each_declared_filter_works_and_no_other_does(db_url: str, kind: str) -> None:
    model = MODELS[kind]
    app, _cape = make_app(db_url, model)
    await check_list_filters(app, model)


async def check_list_filters(app: FastAPI, model: type[SQLModel]) -> None:
    path = f"/{model.__tablename__}"
    listed = parameters(app.openapi()["paths"][path]["get"])
    tried: Counter[str] = Counter()
    async with app_client(app) as client:
        for field in published_fields(model):
            for name in [field, *(f"{field}__{op}" for op in OPERATORS)]:
                declared = listed.get(name)
                value = example(name, listed) if declared else "1"
                response = await client.get(path, params={name: value})
                if declared is None:
                    assert response.status_code == 400, (name, response.text)
                    assert names_it(response.json()["detail"], name), (name, response.text)
                    tried["refused"] += 1
                    continue
                assert response.status_code == 200, (name, value, response.text)
                tried["accepted"] += 1
                if refuses(declared["schema"], "x?"):
                    response = await client.get(path, params={name: "x?"})
                    assert response.status_code == 422, (name, response.text)
                    tried["bad value"] += 1
    assert tried["accepted"] == len([n for n in listed if n.partition("__")[0] in
                                     published_fields(model)])
    assert tried["refused"] > 0 and tried["bad value"] > 0, tried
