"""The OpenAPI document of the generated routes: operation ids, request and response models,
status codes and path parameter types. It does not depend on the database."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.apps import make_cape
from tests.models import CreateItem, Item, Note, Slug, Tag, UpdateItem


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_schema(part: dict[str, Any]) -> Any:
    return part["content"]["application/json"]["schema"]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app, cape = make_cape("sqlite+aiosqlite://")  # never connected: OpenAPI needs no database
    cape.publish(Item)
    cape.publish(Slug)
    cape.publish(Note)
    cape.publish(Tag, routes=["list", "get", "create"], create_schema=CreateItem,
                 update_schema=UpdateItem)
    return app.openapi()


def test_operation_ids_are_unique_and_named_after_the_table(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    for table in ("crud_item", "crud_slug", "crud_note"):
        for action in ("list", "get", "create", "update", "delete"):
            assert f"{action}_{table}" in ids
    assert {"list_crud_tag", "get_crud_tag", "create_crud_tag"} <= set(ids)
    assert "update_crud_tag" not in ids and "delete_crud_tag" not in ids


def test_request_and_response_models(document: dict[str, Any]) -> None:
    paths, schemas = document["paths"], document["components"]["schemas"]
    collection, item = paths["/crud_item"], paths["/crud_item/{id}"]

    listed = json_schema(collection["get"]["responses"]["200"])
    assert listed["anyOf"] == [{"type": "array", "items": ref("ItemRead")}, ref("ItemPage")]
    page = schemas["ItemPage"]
    assert page["properties"]["items"] == {
        "type": "array", "items": ref("ItemRead"), "title": "Items"
    }
    assert set(page["required"]) == {"items", "next"}
    assert json_schema(item["get"]["responses"]["200"]) == ref("ItemRead")
    # one row, or an array of them (a bulk create)
    assert json_schema(collection["post"]["requestBody"])["oneOf"] == [
        ref("ItemCreate"), {"type": "array", "items": ref("ItemCreate")}]
    assert collection["post"]["requestBody"]["required"] is True
    assert json_schema(collection["post"]["responses"]["201"])["oneOf"] == [
        ref("ItemRead"), {"type": "array", "items": ref("ItemRead")}]
    assert "200" not in collection["post"]["responses"]
    assert json_schema(item["patch"]["requestBody"]) == ref("ItemUpdate")
    assert json_schema(item["patch"]["responses"]["200"]) == ref("ItemRead")
    assert "content" not in item["delete"]["responses"]["204"]
    assert "200" not in item["delete"]["responses"]
    for status in ("401", "403", "404"):
        assert status in item["patch"]["responses"]
        assert status in item["delete"]["responses"]
    assert {"401", "403", "409", "422"} <= set(collection["post"]["responses"])
    assert "404" in item["get"]["responses"]
    assert "400" in collection["get"]["responses"]

    read, create, update = schemas["ItemRead"], schemas["ItemCreate"], schemas["ItemUpdate"]
    columns = {"id", "owner_id", "name", "qty", "active", "note", "created_at"}
    assert set(read["properties"]) == columns
    assert set(read["required"]) == columns
    assert set(create["properties"]) == columns - {"id", "owner_id"}
    assert create["required"] == ["name"]
    assert create["additionalProperties"] is False
    assert set(update["properties"]) == columns - {"id", "owner_id"}
    assert "required" not in update
    assert update["additionalProperties"] is False
    assert update["properties"]["qty"]["type"] == "integer"  # null is refused, as the column is

    tag = paths["/crud_tag"]
    assert json_schema(tag["post"]["requestBody"])["oneOf"][0] == ref("CreateItem")
    assert json_schema(tag["post"]["responses"]["201"])["oneOf"][0] == ref("TagRead")


def test_list_parameters(document: dict[str, Any]) -> None:
    parameters = {
        p["name"]: p for p in document["paths"]["/crud_item"]["get"]["parameters"]
    }
    assert {"limit", "offset", "order_by", "count"} <= set(parameters)
    assert parameters["limit"]["schema"]["anyOf"][0]["maximum"] == 1000
    assert parameters["offset"]["schema"]["minimum"] == 0


def test_conditional_requests_and_cursors_are_declared(document: dict[str, Any]) -> None:
    """ETag on the answers of one row, If-Match / If-None-Match on get, update and delete
    with their 304 and 412; ``after``, ``envelope`` and ``Link`` on the list."""
    paths = document["paths"]
    item, listing = paths["/crud_item/{id}"], paths["/crud_item"]
    for method in ("get", "patch", "delete"):
        headers = {p["name"]: p for p in item[method]["parameters"] if p["in"] == "header"}
        assert set(headers) == {"If-Match", "If-None-Match"}, method
        assert all(h["required"] is False and h["description"] for h in headers.values())
        assert "412" in item[method]["responses"], method
    assert "ETag" in item["get"]["responses"]["200"]["headers"]
    assert "ETag" in item["get"]["responses"]["304"]["headers"]
    assert "ETag" in item["patch"]["responses"]["200"]["headers"]
    assert "ETag" in listing["post"]["responses"]["201"]["headers"]
    # the merged answers keep their body schema
    assert json_schema(item["get"]["responses"]["200"]) == ref("ItemRead")
    listed = {p["name"]: p for p in listing["get"]["parameters"]}
    assert listed["after"]["in"] == "query" and listed["after"]["description"]
    assert listed["envelope"]["schema"]["type"] == "boolean"
    assert "Link" in listing["get"]["responses"]["200"]["headers"]


def test_select_and_filter_groups_are_declared(document: dict[str, Any]) -> None:
    """``select`` and ``expand`` on list and get, and the filter groups on list, are
    optional query parameters with a description (their names, not the Python ones:
    ``not.or``)."""
    paths = document["paths"]
    listed = {p["name"]: p for p in paths["/crud_item"]["get"]["parameters"]}
    got = {p["name"]: p for p in paths["/crud_item/{id}"]["get"]["parameters"]}
    for name in ("select", "expand", "or", "and", "not.or", "not.and"):
        assert listed[name]["in"] == "query", name
        assert listed[name]["required"] is False, name
        assert listed[name]["description"], name
    for name in ("select", "expand"):
        assert got[name]["in"] == "query" and got[name]["description"], name
    assert set(got) == {"id", "select", "expand", "If-Match", "If-None-Match"}
    assert "or=(" in paths["/crud_item"]["get"]["description"]


def test_path_parameters_have_the_key_type(document: dict[str, Any]) -> None:
    paths = document["paths"]

    def key_schema(path: str) -> dict[str, Any]:
        (parameter,) = [p for p in paths[path]["get"]["parameters"] if p["in"] == "path"]
        assert parameter["required"] is True
        schema: dict[str, Any] = parameter["schema"]
        return schema

    assert key_schema("/crud_item/{id}")["type"] == "integer"
    assert key_schema("/crud_slug/{id}")["type"] == "string"
    assert "format" not in key_schema("/crud_slug/{id}")
    assert key_schema("/crud_note/{id}") == {"type": "string", "format": "uuid", "title": "Id"}
