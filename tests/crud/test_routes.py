"""The generated routes: create, get, update, delete, their status codes and error bodies, route
subsets, custom schemas, primary-key types, both forms of publish, and user routes that must
never be shadowed. Every test runs on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import CapeBase, ConfigurationError
from capebase.testing import app_client
from tests._databases import DbKind
from tests.apps import as_user, make_cape
from tests.models import CreateItem, Item, Note, Slug, Tag, UpdateItem

# Every test twice: on the fast path, and on the reference (CrudConfig(fast_path=False)).
pytestmark = pytest.mark.usefixtures("fast_or_reference")

ALICE = as_user("alice")
BOB = as_user("bob")


def owned_items(db_url: str, **options: Any) -> tuple[FastAPI, CapeBase]:
    """Items anyone may read; signed-in users create them and change only their own."""
    app, cape = make_cape(db_url, **options)
    cape.publish(Item)
    cape.permission_required(Item, role="*", actions=["read"])
    cape.permission_required(Item, owner_field="owner_id", actions=["create", "update", "delete"])
    return app, cape


async def test_create_get_update_delete(db_url: str) -> None:
    app, _cape = owned_items(db_url)
    async with app_client(app) as client:
        response = await client.post("/crud_item", json={"name": "pen", "qty": 2}, headers=ALICE)
        assert response.status_code == 201, response.text
        created = response.json()
        assert isinstance(created["id"], int)
        assert created["owner_id"] == "alice"  # FROM_AUTH_ID, filled from the auth context
        assert created["name"] == "pen"
        assert created["qty"] == 2
        assert created["active"] is True  # model defaults apply
        assert created["note"] is None
        assert created["created_at"].endswith("Z")
        url = f"/crud_item/{created['id']}"

        stored = (await client.get(url)).json()
        assert {k: v for k, v in stored.items() if k != "created_at"} == {
            k: v for k, v in created.items() if k != "created_at"
        }

        # PATCH changes only the fields sent
        response = await client.patch(url, json={"qty": 3, "note": "blue"}, headers=ALICE)
        assert response.status_code == 200, response.text
        updated = response.json()
        assert updated["qty"] == 3
        assert updated["note"] == "blue"
        assert updated["name"] == "pen"
        assert updated["active"] is True
        assert updated["owner_id"] == "alice"
        # ... and a field can be set back to null when its column allows it
        response = await client.patch(url, json={"note": None}, headers=ALICE)
        assert response.json()["note"] is None
        response = await client.patch(url, json={}, headers=ALICE)
        assert response.status_code == 200
        assert response.json()["qty"] == 3
        assert (await client.get(url)).json()["qty"] == 3

        response = await client.delete(url, headers=ALICE)
        assert response.status_code == 204
        assert response.content == b""
        assert (await client.get(url)).status_code == 404
        assert (await client.delete(url, headers=ALICE)).status_code == 404
        assert (await client.patch(url, json={"qty": 1}, headers=ALICE)).status_code == 404
        assert (await client.get("/crud_item")).json() == []


async def test_input_schemas_reject_auth_fields_primary_key_and_unknown_fields(
    db_url: str,
) -> None:
    app, _cape = owned_items(db_url)
    async with app_client(app) as client:
        for body, field in [
            ({"name": "pen", "owner_id": "bob"}, "owner_id"),
            ({"name": "pen", "id": 7}, "id"),
            ({"name": "pen", "colour": "red"}, "colour"),
        ]:
            response = await client.post("/crud_item", json=body, headers=ALICE)
            assert response.status_code == 422, body
            assert field in response.text
        assert (await client.get("/crud_item")).json() == []

        item = (await client.post("/crud_item", json={"name": "pen"}, headers=ALICE)).json()
        url = f"/crud_item/{item['id']}"
        for body, field in [
            ({"owner_id": "bob"}, "owner_id"),
            ({"id": 99}, "id"),
            ({"colour": "red"}, "colour"),
        ]:
            response = await client.patch(url, json=body, headers=ALICE)
            assert response.status_code == 422, body
            assert field in response.text
        assert (await client.get(url)).json() == item


async def test_bad_bodies_are_422(db_url: str) -> None:
    app, _cape = owned_items(db_url)
    async with app_client(app) as client:
        item = (await client.post("/crud_item", json={"name": "pen"}, headers=ALICE)).json()
        url = f"/crud_item/{item['id']}"
        json_headers = {**ALICE, "Content-Type": "application/json"}
        cases: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/crud_item", {"content": b'{"name": "pen"', "headers": json_headers}),
            ("POST", "/crud_item", {"content": b"not json", "headers": json_headers}),
            ("POST", "/crud_item", {"content": b"", "headers": json_headers}),
            ("POST", "/crud_item", {"json": {}}),
            ("POST", "/crud_item", {"json": {"qty": 1}}),
            ("POST", "/crud_item", {"json": {"name": None}}),
            ("POST", "/crud_item", {"json": {"name": "pen", "qty": "many"}}),
            ("POST", "/crud_item", {"json": {"name": "pen", "qty": 1.5}}),
            ("POST", "/crud_item", {"json": {"name": "pen", "active": "perhaps"}}),
            ("POST", "/crud_item", {"json": {"name": "pen", "created_at": "yesterday"}}),
            ("POST", "/crud_item", {"json": {"name": ["pen"]}}),
            # an array is a bulk create (test_bulk_create.py): its invalid rows are 422s
            ("POST", "/crud_item", {"json": [{"name": "pen"}, {"name": "pen", "qty": "2"}]}),
            ("POST", "/crud_item", {"json": [["pen"]]}),
            ("POST", "/crud_item", {"json": "pen"}),
            ("PATCH", url, {"content": b'{"qty": ', "headers": json_headers}),
            ("PATCH", url, {"json": {"qty": "many"}}),
            ("PATCH", url, {"json": {"qty": None}}),
            ("PATCH", url, {"json": {"name": None}}),
            ("PATCH", url, {"json": [1, 2]}),
        ]
        wrong = []
        for method, path, options in cases:
            options.setdefault("headers", ALICE)
            response = await client.request(method, path, **options)
            if response.status_code != 422 or "detail" not in response.json():
                wrong.append(f"{method} {options}: {response.status_code} {response.text}")
        assert wrong == []
        assert (await client.get("/crud_item")).json() == [item]


async def test_values_the_database_cannot_store_are_422_not_500(
    db_url: str, db_kind: DbKind
) -> None:
    """Regression: PostgreSQL's driver rejects out-of-range integers and NUL characters with
    errors that surfaced as 500s, in bodies, filters and paths alike."""
    app, cape = owned_items(db_url)
    cape.publish(Tag)
    cape.permission_required(Tag, actions=["*"])
    async with app_client(app) as client:
        item = (await client.post("/crud_item", json={"name": "pen"}, headers=ALICE)).json()
        url = f"/crud_item/{item['id']}"
        for method, path, body in [
            ("POST", "/crud_item", {"name": "pen", "qty": 2**31}),
            ("POST", "/crud_item", {"name": "pen", "qty": -(2**31) - 1}),
            ("POST", "/crud_item", {"name": "pen", "qty": 10**30}),
            ("POST", "/crud_item", {"name": "a\x00b"}),
            ("POST", "/crud_tag", {"label": "x" * 51}),
            ("PATCH", url, {"qty": 2**40}),
            ("PATCH", url, {"note": "\x00"}),
        ]:
            response = await client.request(method, path, json=body, headers=ALICE)
            assert response.status_code == 422, (method, body, response.text)
        # the largest values a 32-bit column holds are fine
        for qty in (2**31 - 1, -(2**31)):
            response = await client.patch(url, json={"qty": qty}, headers=ALICE)
            assert response.status_code == 200, response.text
            assert (await client.get(url)).json()["qty"] == qty
        assert (await client.post("/crud_tag", json={"label": "x" * 50})).status_code == 201
        # A plain str is VARCHAR(255) on MySQL only: refused there (422), stored whole elsewhere,
        # never truncated.
        long_name = "n" * 300
        response = await client.post("/crud_item", json={"name": long_name}, headers=ALICE)
        assert response.status_code == (422 if db_kind == "mariadb" else 201), response.text
        if db_kind != "mariadb":
            stored = await client.get(f"/crud_item/{response.json()['id']}")
            assert stored.json()["name"] == long_name
        # a key no row can have is simply not found
        for method in ("GET", "PATCH", "DELETE"):
            response = await client.request(
                method, "/crud_item/99999999999999", json={}, headers=ALICE
            )
            assert response.status_code == 404, (method, response.text)


async def test_missing_and_unreadable_rows_look_the_same(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Item)
    cape.permission_required(Item, owner_field="owner_id", actions=["*"])
    cape.permission_required(Item, role="reviewer", actions=["read"])
    async with app_client(app) as client:
        item = (await client.post("/crud_item", json={"name": "pen"}, headers=ALICE)).json()
        url = f"/crud_item/{item['id']}"
        missing = f"/crud_item/{item['id'] + 1000}"
        for method in ("GET", "PATCH", "DELETE"):
            not_found = await client.request(method, missing, json={}, headers=ALICE)
            assert not_found.status_code == 404
            for headers in (BOB, as_user("ALICE"), {}):
                hidden = await client.request(method, url, json={"qty": 9}, headers=headers)
                assert hidden.status_code == 404, (method, headers)
                assert hidden.json() == not_found.json()
        # readable but not writable: 403
        reviewer = as_user("rita", role="reviewer")
        assert (await client.get(url, headers=reviewer)).status_code == 200
        for method in ("PATCH", "DELETE"):
            response = await client.request(method, url, json={"qty": 9}, headers=reviewer)
            assert response.status_code == 403, method
            assert "detail" in response.json()
        assert (await client.get(url, headers=ALICE)).json() == item


async def test_anonymous_writes_are_401_and_forbidden_ones_403(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Item)
    cape.publish(Tag)
    cape.permission_required(Item, role="*", actions=["read"])
    cape.permission_required(Item, owner_field="owner_id", actions=["create", "update", "delete"])
    cape.permission_required(Tag, role="*", actions=["read"])
    cape.permission_required(Tag, role="editor", actions=["create", "update", "delete"])
    async with app_client(app) as client:
        item = (await client.post("/crud_item", json={"name": "pen"}, headers=ALICE)).json()
        url = f"/crud_item/{item['id']}"
        for method, path in [("POST", "/crud_item"), ("PATCH", url), ("DELETE", url)]:
            response = await client.request(method, path, json={"name": "x"})
            assert response.status_code == 401, (method, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert "detail" in response.json()
        for method in ("PATCH", "DELETE"):
            response = await client.request(method, url, json={"name": "x"}, headers=BOB)
            assert response.status_code == 403, method
        # a role with no create rule: 403 when signed in, 401 when anonymous
        assert (await client.post("/crud_tag", json={"label": "a"}, headers=BOB)).status_code == 403
        assert (await client.post("/crud_tag", json={"label": "a"})).status_code == 401
        editor = as_user("ed", role="editor")
        tag = await client.post("/crud_tag", json={"label": "a"}, headers=editor)
        assert tag.status_code == 201
        tag_url = f"/crud_tag/{tag.json()['id']}"
        assert (await client.patch(tag_url, json={"label": "b"}, headers=BOB)).status_code == 403
        assert (await client.delete(tag_url)).status_code == 401
        # nothing was changed by the refused requests
        assert (await client.get(url)).json() == item
        assert (await client.get(tag_url)).json()["label"] == "a"
        assert len((await client.get("/crud_item")).json()) == 1


async def test_constraint_conflicts_are_409(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Tag)
    cape.permission_required(Tag, actions=["*"])
    async with app_client(app) as client:
        first = await client.post("/crud_tag", json={"label": "red"})
        assert first.status_code == 201
        response = await client.post("/crud_tag", json={"label": "red"})
        assert response.status_code == 409, response.text
        assert "Tag" in response.json()["detail"]
        second = (await client.post("/crud_tag", json={"label": "blue"})).json()
        response = await client.patch(f"/crud_tag/{second['id']}", json={"label": "red"})
        assert response.status_code == 409, response.text
        # the refused writes left nothing behind, and the app carries on
        labels = [tag["label"] for tag in (await client.get("/crud_tag")).json()]
        assert labels == ["red", "blue"]
        assert (await client.post("/crud_tag", json={"label": "green"})).status_code == 201


async def test_route_subsets(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Item, routes=["list", "get", "create"])
    cape.publish(Tag, routes=["list"])
    cape.publish(Slug, routes=["get", "delete"])
    cape.permission_required(Item, owner_field="owner_id", actions=["*"])
    cape.permission_required(Tag, actions=["*"])
    cape.permission_required(Slug, actions=["*"])
    async with app_client(app) as client:
        item = await client.post("/crud_item", json={"name": "pen"}, headers=ALICE)
        assert item.status_code == 201
        url = f"/crud_item/{item.json()['id']}"
        assert (await client.get(url, headers=ALICE)).status_code == 200
        assert (await client.get("/crud_item", headers=ALICE)).status_code == 200
        assert (await client.patch(url, json={"qty": 1}, headers=ALICE)).status_code == 405
        assert (await client.delete(url, headers=ALICE)).status_code == 405
        assert (await client.get(url, headers=ALICE)).json()["qty"] == 0

        assert (await client.get("/crud_tag")).status_code == 200
        assert (await client.post("/crud_tag", json={"label": "a"})).status_code == 405
        assert (await client.get("/crud_tag/1")).status_code == 404

        assert (await client.get("/crud_slug")).status_code == 404
        assert (await client.get("/crud_slug/x")).status_code == 404
        assert (await client.post("/crud_slug", json={"title": "a"})).status_code == 404
    paths = app.openapi()["paths"]
    assert set(paths["/crud_item"]) == {"get", "post"}
    assert set(paths["/crud_item/{id}"]) == {"get"}
    assert set(paths["/crud_tag"]) == {"get"}
    assert "/crud_tag/{id}" not in paths
    assert set(paths["/crud_slug/{id}"]) == {"get", "delete"}


def test_publish_refuses_bad_arguments(sqlite_url: str) -> None:
    _app, cape = make_cape(sqlite_url)
    with pytest.raises(ConfigurationError, match="'patch'"):
        cape.publish(Item, routes=["list", "patch"])
    with pytest.raises(ConfigurationError):
        cape.publish(SQLModel)  # not a table


async def test_publishing_again_replaces_the_routes(sqlite_url: str) -> None:
    """The seed README publishes Todo plainly, then again with custom schemas."""
    app, cape = make_cape(sqlite_url)
    cape.publish(Item)
    cape.publish(Item, routes=["list"])
    paths = app.openapi()["paths"]
    assert list(paths["/crud_item"]) == ["get"]
    assert "/crud_item/{id}" not in paths
    async with app_client(app) as client:
        assert (await client.get("/crud_item")).status_code == 200
        assert (await client.get("/crud_item/1")).status_code == 404  # no route any more


async def test_custom_schemas(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Item, create_schema=CreateItem, update_schema=UpdateItem)
    cape.permission_required(Item, owner_field="owner_id", actions=["*"])
    async with app_client(app) as client:
        response = await client.post("/crud_item", json={"name": "pen", "qty": 5}, headers=ALICE)
        assert response.status_code == 422
        assert "qty" in response.text
        response = await client.post("/crud_item", json={"name": "pen", "note": "n"}, headers=ALICE)
        assert response.status_code == 201, response.text
        item = response.json()
        assert (item["owner_id"], item["name"], item["note"], item["qty"]) == (
            "alice", "pen", "n", 0,
        )
        url = f"/crud_item/{item['id']}"
        response = await client.patch(url, json={"name": "ink"}, headers=ALICE)
        assert response.status_code == 422
        assert "name" in response.text
        response = await client.patch(url, json={"active": False}, headers=ALICE)
        assert response.status_code == 200
        assert response.json() == {**item, "active": False}
        # only the fields sent are applied, even when the schema has defaults
        await client.patch(url, json={"active": True}, headers=ALICE)
        response = await client.patch(url, json={}, headers=ALICE)
        assert response.json()["active"] is True
    # the user's own classes are left as they were
    assert CreateItem(name="pen", qty=5).name == "pen"  # type: ignore[call-arg]
    schemas = app.openapi()["components"]["schemas"]
    assert schemas["CreateItem"]["additionalProperties"] is False
    assert set(schemas["CreateItem"]["properties"]) == {"name", "note"}
    assert set(schemas["UpdateItem"]["properties"]) == {"active"}


async def test_str_and_uuid_primary_keys(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Slug)
    cape.publish(Note)
    cape.permission_required(Slug, actions=["*"])
    cape.permission_required(Note, actions=["*"])
    async with app_client(app) as client:
        for path, field, values in [
            ("/crud_slug", "title", ("first", "second")),
            ("/crud_note", "body", ("hello", "bye")),
        ]:
            response = await client.post(path, json={field: values[0]})
            assert response.status_code == 201, response.text
            row = response.json()
            key = row["id"]
            assert isinstance(key, str) and key
            if path == "/crud_note":
                assert str(uuid.UUID(key)) == key
            assert (await client.get(f"{path}/{key}")).json() == row
            response = await client.patch(f"{path}/{key}", json={field: values[1]})
            assert response.status_code == 200
            assert response.json() == {"id": key, field: values[1]}
            assert (await client.get(path)).json() == [{"id": key, field: values[1]}]
            filtered = await client.get(path, params={"id": key})
            assert filtered.json() == [{"id": key, field: values[1]}]
            assert (await client.get(f"{path}/{key}x")).status_code == 404
            assert (await client.delete(f"{path}/{key}")).status_code == 204
            assert (await client.get(f"{path}/{key}")).status_code == 404
        # a UUID is a UUID whatever its letter case; a str key is exact
        note = (await client.post("/crud_note", json={"body": "b"})).json()
        response = await client.get(f"/crud_note/{note['id'].upper()}")
        assert response.status_code == 200
        assert response.json() == note
        slug = (await client.post("/crud_slug", json={"title": "t"})).json()
        shouting = slug["id"].upper()
        assert shouting != slug["id"]
        for method in ("GET", "PATCH", "DELETE"):
            response = await client.request(method, f"/crud_slug/{shouting}", json={"title": "x"})
            assert response.status_code == 404, (method, response.text)
        assert (await client.get(f"/crud_slug/{slug['id']}")).json() == slug
        nobody = "/crud_note/00000000-0000-0000-0000-000000000000"
        assert (await client.get(nobody)).status_code == 404


async def test_publish_as_a_decorator(db_url: str) -> None:
    app, cape = make_cape(db_url)

    class Base(SQLModel, registry=registry()):  # a fresh registry: one class per test run
        pass

    @cape.publish
    class Plain(Base, table=True):
        __tablename__ = "crud_decorated"
        id: int | None = Field(default=None, primary_key=True)
        text: str

    @cape.publish(routes=["list", "create"])
    class Limited(Base, table=True):
        __tablename__ = "crud_decorated_limited"
        id: int | None = Field(default=None, primary_key=True)
        text: str

    assert Plain.__name__ == "Plain" and hasattr(Plain, "__table__")  # the class itself
    assert Limited.__name__ == "Limited"
    cape.permission_required(Plain, actions=["*"])
    cape.permission_required(Limited, actions=["*"])
    async with app_client(app) as client:
        created = await client.post("/crud_decorated", json={"text": "a"})
        assert created.status_code == 201
        assert (await client.delete(f"/crud_decorated/{created.json()['id']}")).status_code == 204
        created = await client.post("/crud_decorated_limited", json={"text": "a"})
        assert created.status_code == 201
        assert (await client.get("/crud_decorated_limited")).json() == [created.json()]
        response = await client.get(f"/crud_decorated_limited/{created.json()['id']}")
        assert response.status_code == 404


async def test_user_routes_are_never_shadowed(db_url: str) -> None:
    """``/{table}/filter`` and ``/{table}/{key}`` declared by the user, before or after
    ``publish``, always reach the user's function, whatever the primary key's type."""
    for model, missing_key in [(Item, "12345"), (Slug, "nothing"), (Note, str(uuid.uuid4()))]:
        table = model.__tablename__
        for declare_first in (True, False):
            app, cape = make_cape(db_url)
            if declare_first:
                declare_user_routes(app, table)
            cape.publish(model)
            if not declare_first:
                declare_user_routes(app, table)
            cape.permission_required(model, actions=["*"])
            case = (table, "declared first" if declare_first else "declared last")
            async with app_client(app) as client:
                response = await client.get(f"/{table}/filter")
                assert response.json() == {"from": "user filter"}, case
                response = await client.delete(f"/{table}/abc")
                assert response.json() == {"from": "user delete", "key": "abc"}, case
                # the generated routes still answer everything else
                assert (await client.get(f"/{table}")).status_code == 200, case
                assert (await client.get(f"/{table}/{missing_key}")).status_code == 404, case


def declare_user_routes(app: FastAPI, table: str) -> None:
    @app.get(f"/{table}/filter")
    async def user_filter() -> dict[str, str]:
        return {"from": "user filter"}

    @app.delete(f"/{table}/{{key}}")
    async def user_delete(key: str) -> dict[str, str]:
        return {"from": "user delete", "key": key}
