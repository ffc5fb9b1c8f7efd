"""Create and update accept exactly the bodies their published schema allows: a value of the
wrong JSON type or a string outside its published format is a 422 naming the field, never
coerced (``0`` is no boolean, ``false`` no integer, ``0`` no datetime).

The matrix is generated: every field of a model with a column of each type, against a pool of
JSON values of every kind; the OpenAPI document itself (through a JSON Schema validator, with
formats) says which bodies are valid. Every database, since a value the schema allows must also
be one the database stores.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, datetime
from typing import Any

import jsonschema_rs
import pytest
from fastapi import FastAPI
from sqlmodel import SQLModel

from capebase import CapeBase
from capebase.testing import app_client
from tests.apps import make_cape
from tests.crud._every_type import FIELDS, EveryType

KEY = uuid.UUID("0b7ef8a4-3b1c-4d2e-9f50-6a7b8c9d0e1f")
POOL: list[Any] = [
    None, True, False, 0, 1, -7, 7.0, 1.5, 2**31, 2**63,
    "", "x", "0", "1", "-7", "1.5", "true", "null", " 1", "1_0", "NaN", "1e3",
    "2024-05-01", "20240501", "0000-01-01", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00",
    "2024-05-01T12:30:00Z", "2024-05-01T12:30:00.123456+02:00",
    "2024-05-01T12:30:00", "2024-05-01T12:30:00.5", "2024-05-01 12:30:00Z",
    "2024-05-01T12:30:00.1234567Z", "2024-05-01T12:30Z", "1700000000",
    "12:30:00", "12:30:00.5", "12:30:00Z", "12:30", "43200",
    "P1D", "-PT0.5S", "P1Y2W3DT4H5M6.123456S", "PT0S", "P", "PT", "P1DT", "1 day", "1:02:03",
    "P1M", "P0.5D", "PT1.1234567S", "p1d",
    str(KEY), KEY.hex, f"{{{KEY}}}", f"urn:uuid:{KEY}",
    "red", "GREEN", "purple",
    [], ["a"], [1], {}, {"a": 1}, {"a": [None, 2.5]},
]
# Valid JSON for the schema that the column still cannot hold (documented value limits).
CANNOT_HOLD = {
    (field, repr(value))
    for field, value in [
        ("price", 2**63),  # more digits than Field(max_digits=12)
        ("big", 2**63),  # past the published maximum, which the validator reads as a double
        ("moment", "2024-05-01T12:30:00.1234567Z"),  # finer than microseconds
        # year 0: RFC 3339 allows it, Python's dates start at year 1
        ("day", "0000-01-01"), ("moment", "0000-01-01T00:00:00Z"),
    ]
}


def every_type_app(db_url: str) -> tuple[FastAPI, CapeBase]:
    app, cape = make_cape(db_url)
    cape.publish(EveryType)
    cape.permission_required(EveryType, actions=["*"])
    return app, cape


def validator(app: FastAPI, schema_name: str) -> Any:
    """A validator of bodies against the schema ``schema_name`` as OpenAPI publishes it."""
    document = app.openapi()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


def names_field(response: Any, field: str) -> bool:
    """Whether a 422 names ``field`` (or a place inside it) as a problem."""
    return any(error["loc"][:2] == ["body", field] for error in response.json()["detail"])


async def test_bodies_are_accepted_exactly_as_the_schema_says(db_url: str) -> None:
    app, _cape = every_type_app(db_url)
    create, update = validator(app, "EveryTypeCreate"), validator(app, "EveryTypeUpdate")
    wrong: list[str] = []
    seen: Counter[str] = Counter()
    async with app_client(app) as client:
        row = (await client.post("/typed_every", json={})).json()
        url = f"/typed_every/{row['id']}"
        for field in FIELDS:
            for value in POOL:
                body = {field: value}
                for method, path, schema, ok in (
                    ("POST", "/typed_every", create, 201), ("PATCH", url, update, 200)
                ):
                    response = await client.request(method, path, json=body)
                    valid = schema.is_valid(body)
                    expected = 422 if not valid or (field, repr(value)) in CANNOT_HOLD else ok
                    if response.status_code != expected or (
                        not valid and not names_field(response, field)
                    ):
                        wrong.append(f"{method} {body}: {response.status_code} {response.text}")
                    seen[f"{method} {'valid' if valid else 'invalid'}"] += 1
                    seen[f"{field} {'valid' if valid else 'invalid'}"] += 1
        assert (await client.get(url)).status_code == 200
    print("\n".join(wrong))
    assert wrong == []
    # The pool has values of both kinds for every field, on both routes.
    for field in FIELDS:
        assert seen[f"{field} valid"] >= 2 and seen[f"{field} invalid"] >= 2, (field, seen)
    assert seen["POST invalid"] > 500 and seen["POST valid"] > 100, seen


def test_integer_fields_publish_the_narrower_of_their_own_and_the_columns_bounds(
    sqlite_url: str,
) -> None:
    """Regression: the column's range replaced a field's own ``ge``/``le`` (0 to 5 became
    the int32 range), in the published schema and in validation."""
    app, _cape = every_type_app(sqlite_url)
    schemas = app.openapi()["components"]["schemas"]
    for name in ("EveryTypeCreate", "EveryTypeUpdate"):
        properties = schemas[name]["properties"]
        assert (properties["stars"]["minimum"], properties["stars"]["maximum"]) == (0, 5)
        assert (properties["tally"]["minimum"], properties["tally"]["maximum"]) == (
            -(2**31), 2**31 - 1
        )
        checked = validator(app, name)
        assert not checked.is_valid({"stars": 6}) and not checked.is_valid({"stars": -1})


@pytest.mark.parametrize(
    ("field", "value"),
    [("done", 0), ("tally", False), ("ratio", False), ("moment", 0), ("day", "0"),
     ("moment", "1700000000"), ("moment", "2024-05-01T12:30:00"), ("at", "12:30:00Z"),
     ("token", KEY.hex), ("price", True), ("price", "1_0"), ("colour", "GREEN"), ("id", False)],
)
async def test_the_issues_coercions_are_422_naming_the_field(
    sqlite_url: str, field: str, value: Any
) -> None:
    """Regression: these bodies answered 201 and stored a value the client never meant."""
    app, _cape = every_type_app(sqlite_url)
    async with app_client(app) as client:
        row = (await client.post("/typed_every", json={})).json()
        for method, path in (("POST", "/typed_every"), ("PATCH", f"/typed_every/{row['id']}")):
            response = await client.request(method, path, json={field: value})
            assert response.status_code == 422, (method, response.text)
            assert names_field(response, field), response.text
        assert (await client.get("/typed_every")).json() == [row]


async def test_bodies_that_are_no_json_object_are_422_not_500(sqlite_url: str) -> None:
    app, _cape = every_type_app(sqlite_url)
    json_type = {"Content-Type": "application/json"}
    cases: list[tuple[bytes, dict[str, str], str]] = [
        (b"\x80\xff", json_type, "json_invalid"),  # not even UTF-8
        (b'{"name": "\\ud800"}', json_type, "json_invalid"),  # a lone surrogate
        (b'{"ratio": NaN}', json_type, "finite_number"),
        (b'{"ratio": Infinity}', json_type, "finite_number"),
        (b'{"ratio": 1e400}', json_type, "finite_number"),
        (b"", json_type, "missing"),
        (b'{"name": "a"}', {}, "content_type"),
        (b'{"name": "a"}', {"Content-Type": "text/plain"}, "content_type"),
        (b"[null]", json_type, "model_type"),  # an array is a bulk create, row by row
        (b'[{"name": "\\ud800"}]', json_type, "json_invalid"),
        (b"null", json_type, "model_type"),
    ]
    async with app_client(app) as client:
        for body, headers, error in cases:
            response = await client.post("/typed_every", content=body, headers=headers)
            assert response.status_code == 422, (body, response.text)
            assert [e["type"] for e in response.json()["detail"]] == [error], (body, response.text)
        response = await client.post(
            "/typed_every", content=b'{"name": "a"}',
            headers={"Content-Type": "application/merge-patch+json; charset=utf-8"},
        )
        assert response.status_code == 201, response.text




class Dated(SQLModel):
    """A user's create schema: columns of two types, and a field that is no column."""

    name: str
    day: date | None = None
    moment: datetime | None = None
    extra: int = 0


async def test_user_schemas_are_validated_as_strictly(sqlite_url: str) -> None:
    app, cape = make_cape(sqlite_url)
    cape.publish(EveryType, create_schema=Dated)
    cape.permission_required(EveryType, actions=["*"])
    async with app_client(app) as client:
        for body, field in [
            ({"name": "a", "day": "0"}, "day"),
            ({"name": "a", "moment": 0}, "moment"),
            ({"name": "a", "moment": "1700000000"}, "moment"),
            ({"name": "a", "extra": False}, "extra"),
            ({"name": 1}, "name"),
        ]:
            response = await client.post("/typed_every", json=body)
            assert response.status_code == 422, (body, response.text)
            assert names_field(response, field), response.text
        response = await client.post("/typed_every", json={
            "name": "a", "day": "2024-05-01", "moment": "2024-05-01T12:30:00+02:00"
        })
        assert response.status_code == 201, response.text
        assert (response.json()["day"], response.json()["moment"]) == (
            "2024-05-01", "2024-05-01T10:30:00Z"
        )
