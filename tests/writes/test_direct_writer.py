"""``DirectWriter`` details the route-level tests of tests/writes/test_direct_paths.py leave open:
the fields a narrower create schema leaves out, the 403's wording, which databases and
models it accepts, and that its statements are built once.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import JSON, Column, Integer
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field

from capebase.crud.published import describe_model
from capebase.testing import app_client
from capebase.writes.direct import DirectWriter
from tests.writes._direct_models import (
    FACTORY_LABEL,
    MUTABLE_DEFAULT,
    DirectModel,
    Gadget,
    caller,
    make_app,
)
from tests.writes.test_direct_paths import (
    ALICE,
    ALICE_CTX,
    gadget_app,
    orm_create,
    stored_row,
    without_key,
    writes_directly,
)


class NameOnly(BaseModel):
    """A create schema with one field: the model fills in the rest."""

    name: str


class QtyOnly(BaseModel):
    """A create schema without the required ``name``."""

    qty: int


class Shelf(DirectModel, table=True):
    """Defaults of fields declared with ``sa_column``: the model's only, the column has none."""

    __tablename__ = "direct_shelf"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=40)
    size: int = Field(default=7, sa_column=Column(Integer, nullable=False))
    tags: list[str] = Field(
        default_factory=lambda: ["made"], sa_column=Column(JSON, nullable=False)
    )
    meta: dict[str, Any] = Field(default={"k": ["v"]}, sa_column=Column(JSON, nullable=False))


class Derived(DirectModel, table=True):
    """A pydantic default factory of the validated data: only the model can compute it."""

    __tablename__ = "direct_derived"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=40)
    slug: str = Field(default_factory=lambda data: data["name"].lower(), max_length=40)


async def test_fields_the_create_schema_leaves_out_take_the_models_defaults(db_url: str) -> None:
    app, cape = gadget_app(db_url, create_schema=NameOnly)
    async with app_client(app) as client:
        response = await client.post("/direct_gadget", json={"name": "n"}, headers=ALICE)
        assert response.status_code == 201, response.text
    direct_row = await stored_row(cape, response.json()["id"])
    orm_row = await stored_row(cape, await orm_create(cape, ALICE_CTX, {"name": "n"}))
    assert without_key(direct_row) == without_key(orm_row)
    assert (direct_row["qty"], direct_row["label"], direct_row["tags"]) == (
        7,
        FACTORY_LABEL,
        MUTABLE_DEFAULT,
    )


async def test_defaults_only_the_model_knows_are_stored_too(db_url: str) -> None:
    app, cape = make_app(db_url)
    cape.publish(Shelf, create_schema=NameOnly)
    cape.permission_required(Shelf, role="*", actions=["*"])
    async with app_client(app) as client:
        response = await client.post("/direct_shelf", json={"name": "s"}, headers=ALICE)
        assert response.status_code == 201, response.text
        assert without_key(response.json()) == {
            "name": "s", "size": 7, "tags": ["made"], "meta": {"k": ["v"]}
        }
    async with cape.get_session(ALICE_CTX) as session:
        shelf = Shelf(name="s")
        session.add(shelf)
        await session.commit()
        assert without_key(shelf.model_dump()) == without_key(response.json())


async def test_a_required_field_the_create_schema_leaves_out_is_not_made_up(db_url: str) -> None:
    """The column stays NULL, and its NOT NULL constraint refuses the row, as it refuses the
    session's ``Gadget(qty=1)``: no value is invented for it."""
    app, cape = gadget_app(db_url, create_schema=QtyOnly)
    async with app_client(app) as client:
        response = await client.post("/direct_gadget", json={"qty": 1}, headers=ALICE)
        assert response.status_code == 409, response.text
        assert "name" in response.json()["detail"]
        assert (await client.get("/direct_gadget", headers=ALICE)).json() == []
    with pytest.raises(IntegrityError):
        await orm_create(cape, ALICE_CTX, {"qty": 1})


async def test_a_denied_write_names_the_action_and_the_model(db_url: str) -> None:
    app, cape = gadget_app(db_url)
    async with app_client(app) as client:
        response = await client.post("/direct_gadget", json={"name": "g"}, headers=ALICE)
        url = f"/direct_gadget/{response.json()['id']}"
        bob = caller("bob")
        for method, body, action in (("PATCH", {"qty": 1}, "update"), ("DELETE", None, "delete")):
            response = await client.request(method, url, json=body, headers=bob)
            assert response.status_code == 403, response.text
            assert response.json() == {"detail": f"Permission denied: cannot {action} Gadget"}
        assert writes_directly(cape) or db_url.startswith("mysql")


def dialect(**flags: bool) -> Any:
    """A stand-in for a DirectExecutor: only its dialect's RETURNING support is read."""
    return SimpleNamespace(dialect=SimpleNamespace(**flags))


@pytest.mark.parametrize(
    ("direct", "expected"),
    [
        (lambda: None, False),  # no direct executor for the driver
        (lambda: dialect(insert_returning=True, update_returning=True), True),
        (lambda: dialect(insert_returning=True, update_returning=False), False),  # MariaDB
        (lambda: dialect(insert_returning=False, update_returning=True), False),
    ],
    ids=["no-executor", "returning", "no-update-returning", "no-insert-returning"],
)
def test_supports_needs_an_executor_and_returning_from_insert_and_update(
    direct: Callable[[], Any], expected: bool
) -> None:
    published = describe_model(Gadget, None, None, None, dialect="sqlite")
    assert DirectWriter.supports(published, direct()) is expected


def test_supports_refuses_a_default_factory_of_the_validated_data() -> None:
    executor = dialect(insert_returning=True, update_returning=True)
    published = describe_model(Derived, None, None, None, dialect="sqlite")
    assert DirectWriter.supports(published, executor) is False


async def test_each_statement_is_built_once_per_column_set(db_url: str) -> None:
    """Every statement a direct write runs is prebuilt, and the same column set reuses the same
    statement: the executor's table of prebuilt statements does not grow with requests."""
    app, cape = gadget_app(db_url)
    if not writes_directly(cape):
        pytest.skip("no UPDATE ... RETURNING: writes take the session path")
    direct = cape.direct
    assert direct is not None
    ran: list[Any] = []
    prepare = direct._prepare

    def spy(statement: Any, params: Any = None) -> Any:
        ran.append(statement)
        return prepare(statement, params)

    direct._prepare = spy  # type: ignore[method-assign]
    sizes = []
    async with app_client(app) as client:
        for round_ in range(3):
            response = await client.post("/direct_gadget", json={"name": "g"}, headers=ALICE)
            url = f"/direct_gadget/{response.json()['id']}"
            response = await client.patch(url, json={"qty": round_ + 10}, headers=ALICE)
            assert response.status_code == 200, response.text
            assert (await client.delete(url, headers=ALICE)).status_code == 204
            sizes.append(len(direct._prebuilt))
    assert sizes[0] == sizes[-1]
    assert all(id(statement) in direct._prebuilt for statement in ran)
