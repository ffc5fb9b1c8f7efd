"""Boolean filter groups (``or=(...)``, ``and=(...)``, ``not.or=(...)``, ``not.and=(...)``,
nested) and field selection (``select=``) on the list and get routes, on each database, on the
fast path and the reference (the property test is test_filter_groups_property.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import Field

from capebase import CrudConfig, LimitsConfig, secret_field
from capebase.testing import app_client
from tests.apps import as_user, make_cape
from tests.crud.test_list_query import ALL, ROWS, Cases, check, ids, insert_rows, q
from tests.models import Item, TestModel

pytestmark = pytest.mark.usefixtures("fast_or_reference")


class Account(TestModel, table=True):
    """A model with a secret field, which no filter, group or selection may name."""

    __tablename__ = "grp_account"

    id: int | None = Field(default=None, primary_key=True)
    name: str
    password_hash: str = secret_field(default="")


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """test_list_query's six ROWS, published with public read access."""
    app, cape = make_cape(db_url, crud=CrudConfig(max_in_values=3))
    cape.publish(Item)
    cape.permission_required(Item, role="*", actions=["read"])
    async with app_client(app) as client:
        await insert_rows(cape, ROWS)
        yield client


GROUPS: Cases = [
    ("or=(name=Apple,qty__gte=7)", [1, 3, 5]),
    ("or=(owner_id=alice,owner_id=bob)", [1, 2, 3, 4]),
    ("and=(active=true,qty__gt=3)", [3, 5]),
    ("not.or=(owner_id=alice,owner_id=bob)", [5, 6]),
    ("not.and=(active=true,qty__gt=3)", [1, 2, 4, 6]),
    ("or=(name=Apple)", [1]),
    ("not.and=(id=1)", [2, 3, 4, 5, 6]),
    # nesting
    ("or=(name=Apple,and(owner_id=bob,qty__lt=5))", [1, 4]),
    ("or=(and(owner_id=alice,active=false),not.and(qty__lte=7))", [2, 3]),
    ("or=(id=1,or(id=2,or(id=3,and(id=4))))", [1, 2, 3, 4]),
    ("not.or=(id=1,not.and(qty__gt=3))", [2, 3, 5]),
    ("and=(not.or(owner_id=alice),not.or(owner_id=bob))", [5, 6]),
    # AND-ed with plain conditions and with each other
    ("active=true&or=(owner_id=alice,owner_id=carol)", [1, 5, 6]),
    ("or=(id=1,id=2,id=3)&or=(id=3,id=4)", [3]),
    ("or=(id=1,id=2)&not.or=(id=2)", [1]),
    # lists
    ("or=(qty__in=(1,10),name__in=(\"Café\",Cherry_1))", [1, 3, 5, 6]),
    ("or=(owner_id__nin=(alice,bob))", [5, 6]),
    ("or=(id__in=(2))", [2]),
    # the text operators, the LIKE escape, datetimes, booleans
    ("or=(name__startswith=B,name__icontains=PIE)", [2, 3]),
    ("or=(note__like=a\\_b)", [3]),
    ("or=(note__contains=\"%\")", [2, 4]),
    ("or=(created_at__lt=2024-01-15T00:00:00Z,created_at=2024-06-01T12:00:00+02:00)", [1, 6]),
    ("or=(active=false,qty=7)", [2, 4, 5]),
    # quoted values: as sent, backslash-escaped quote and backslash
    ("or=(note=\"50% off \\\\\")", [2]),
    ("or=(note=50% off \\)", [2]),
    ("or=(note=\"Apple \")", [6]),
    ("or=(note=\"\")", []),
    # a condition on NULL is false; NOT makes it true (note is NULL on row 1)
    ("not.and=(note=a_b)", [1, 2, 4, 5, 6]),
    ("note__ne=a_b", [2, 4, 5, 6]),
    ("not.or=(note__contains=\"%\")", [1, 3, 5, 6]),
    ("or=(note__isnull=true,note=a_b)", [1, 3]),
    ("not.and=(not.and(note__gt=a))", [3, 5]),
    # a negated text condition under NOT (SQLAlchemy renders ``NOT (a) IS NOT 1`` unparenthesized)
    ("not.and=(note__ne=a_b)", [1, 3]),
    ("not.or=(name__ne=Apple)", [1]),
    ("not.and=(name__nin=(Apple,Banana))", [1, 3]),
    ("not.and=(not.and(name=Apple))", [1]),
    # exact text, on MariaDB too
    ("or=(name=apple,name=cafe)", []),
    ("or=(name=APPLE,name=Café)", [6]),
    ("not.or=(name=apple)", ALL),
    ("or=(name__in=(apple,banana))", []),
    ("or=(note=Apple)", []),
    ("or=(name__gt=b,name__lt=B)", [1, 4]),
]


async def test_groups_combine_conditions(client: httpx.AsyncClient) -> None:
    await check(client, [(query, sorted(expected)) for query, expected in GROUPS])


async def test_groups_with_order_paging_and_count(client: httpx.AsyncClient) -> None:
    query = "or=(owner_id=alice,qty__gte=7)&order_by=-qty&limit=2&count=true"
    response = await client.get("/crud_item", params=q(query))
    assert [row["id"] for row in response.json()] == [3, 5]
    assert response.headers["X-Total-Count"] == "4"


async def test_values_holding_the_grammar_are_quoted(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Item)
    cape.permission_required(Item, actions=["read"])
    names = ["a,b", "(x)", 'say "hi"', "back\\slash", "or(", "c)"]
    async with app_client(app) as client:
        await insert_rows(cape, [
            Item(id=i, owner_id="u", name=name) for i, name in enumerate(names, start=1)
        ])
        await check(client, [
            ('or=(name="a,b")', [1]),
            ('or=(name="(x)")', [2]),
            ('or=(name="say \\"hi\\"")', [3]),
            ('or=(name="back\\\\slash")', [4]),
            ('or=(name="back\\slash")', [4]),  # a backslash before another character is kept
            ("or=(name=back\\slash)", [4]),
            ('or=(name="or(",name="c)")', [5, 6]),
            ('or=(name__in=("a,b","(x)",c\\))', [1, 2]),
            ('not.or=(name__in=("a,b","(x)"),name__contains=")")', [3, 4, 5]),
            ('or=(name__startswith="say \\"")', [3]),
        ])


BAD_GROUPS = [
    # malformed: 400, saying what
    ("or=name=Apple", 400, "or=(condition"),
    ("or=(name=Apple", 400, "unbalanced"),
    ("or=(name=Apple))", 400, "after the group"),
    ("or=()", 400, "empty"),
    ("or=(id=1,and())", 400, "and() is empty"),
    ("or=(id=1,)", 400, "expected field__op=value"),
    ("or=(id)", 400, "expected field__op=value"),
    ("or=(,id=1)", 400, "expected field__op=value"),
    ("or=(xor(id=1))", 400, "no group"),
    ("or=(or=(id=1))", 400, "nest a group as or(...)"),
    ("or=(name=a(b))", 400, "quote it"),
    ("or=(name=a\"b)", 400, "quote it"),
    ("or=(name=\"abc)", 400, "no closing"),
    ("or=(name=\"a\"b)", 400, "after the quoted value"),
    ("or=(id__in=1)", 400, "parenthesized list"),
    ("or=(id=(1))", 400, "in and nin only"),
    ("or=(id__in=(1,2)", 400, "unbalanced"),
    ("or=(id__in=(1,2),id=3", 400, "unbalanced"),
    ("or=(id=1)(id=2)", 400, "after the group"),
    # reserved names: not filters
    ("or=(limit=5)", 400, "'limit' is not a filter"),
    ("or=(order_by=id)", 400, "'order_by' is not a filter"),
    ("or=(select=id)", 400, "'select' is not a filter"),
    ("or=(count=true)", 400, "'count' is not a filter"),
    # unknown fields and operators, as for plain conditions
    ("or=(nope=1)", 400, "Unknown filter field 'nope'"),
    ("or=(id=1,and(nope__gt=1))", 400, "Unknown filter field 'nope'"),
    ("or=(qty__between=1)", 400, "between"),
    ("or=(qty__=1)", 400, "Unknown filter operator ''"),
    ("or=(qty__like=1)", 400, "like"),
    ("not=(id=1)", 400, "Unknown filter field 'not'"),
    ("not.xor=(id=1)", 400, "Unknown filter field 'not.xor'"),
    # values that do not parse, as for plain conditions: 422
    ("or=(qty=abc)", 422, "qty"),
    ("or=(qty__in=())", 422, "at least one value"),
    ("or=(id__in=(1,2,3,4))", 422, "at most 3"),
    ("or=(note__isnull=perhaps)", 422, "note"),
    ("or=(name__like=a\\)", 422, "escape"),
    ("or=(qty=99999999999999999999)", 422, "qty"),
    # the limits: 400, naming them
    ("or=(id=1,and(id=2,or(id=3,and(id=4,or(id=5)))))", 400, "max_filter_depth"),
    ("or=(" + "or(id=1," * 4 + "id=2" + ")" * 5, 400, "max_filter_depth"),
    ("or=(" + ",".join(f"id={i}" for i in range(51)) + ")", 400, "max_filter_terms"),
    ("id=1&or=(" + ",".join(f"id={i}" for i in range(50)) + ")", 400, "51 given"),
]


async def test_bad_groups_are_client_errors(client: httpx.AsyncClient) -> None:
    wrong = []
    for query, status, named in BAD_GROUPS:
        response = await client.get("/crud_item", params=q(query))
        detail = str(response.json().get("detail"))
        if response.status_code != status or named not in detail:
            wrong.append(f"{query!r}: expected {status} naming {named!r}, "
                         f"got {response.status_code} {detail}")
    assert wrong == []


async def test_the_limits_are_settings(db_url: str) -> None:
    app, cape = make_cape(db_url, limits=LimitsConfig(max_filter_terms=3, max_filter_depth=2))
    cape.publish(Item)
    cape.permission_required(Item, actions=["read"])
    async with app_client(app) as client:
        await insert_rows(cape, ROWS)
        await check(client, [
            ("or=(id=1,and(id=1,qty=1))", [1]),
            ("id=1&or=(id=1,id=2)", [1]),
        ])
        for query, named in [
            ("or=(id=1,and(id=1,or(qty=1)))", "at most 2 levels (LimitsConfig.max_filter_depth)"),
            ("or=(id=1,id=2,id=3,id=4)", "4 given, at most 3 (LimitsConfig.max_filter_terms)"),
            ("id=1&id=2&or=(id=1,id=2)", "4 given, at most 3"),
            ("id=1&id=2&qty=1&active=true", "4 given, at most 3"),
        ]:
            response = await client.get("/crud_item", params=q(query))
            assert response.status_code == 400, (query, response.text)
            assert named in response.json()["detail"], (query, response.text)


async def test_groups_never_widen_what_a_caller_reads(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Item)
    cape.permission_required(Item, owner_field="owner_id", actions=["read"])
    async with app_client(app) as client:
        await insert_rows(cape, ROWS)
        alice = as_user("alice")
        for query, expected in [
            ("or=(owner_id=bob,id__gt=0)", [1, 2]),
            ("or=(owner_id=bob,owner_id=carol)", []),
            ("not.or=(owner_id=alice)", []),
            ("not.and=(owner_id=alice,id=1)", [2]),
            ("or=(id=3,not.and(id=1))", [2]),
        ]:
            response = await client.get(
                "/crud_item", params=[*q(query), ("count", "true")], headers=alice
            )
            assert [row["id"] for row in response.json()] == expected, query
            assert response.headers["X-Total-Count"] == str(len(expected)), query
        assert await ids(client, q("or=(id__gt=0)")) == []  # anonymous: nothing


async def test_select_returns_the_fields_asked_for(client: httpx.AsyncClient) -> None:
    response = await client.get("/crud_item", params=q("select=name,id&qty__gte=7"))
    assert response.json() == [{"id": 3, "name": "Banana"}, {"id": 5, "name": "Cherry_1"}]
    response = await client.get("/crud_item", params=q("select=note&or=(id=1,id=4)"))
    assert response.json() == [{"note": None}, {"note": "100%"}]
    response = await client.get("/crud_item", params=q("select=id, qty,&order_by=-qty&limit=2"))
    assert response.json() == [{"id": 3, "qty": 10}, {"id": 5, "qty": 7}]
    response = await client.get("/crud_item/2", params=q("select=name,created_at"))
    assert response.json() == {"name": "apple pie", "created_at": "2024-02-01T10:00:00Z"}
    response = await client.get("/crud_item/2")
    assert set(response.json()) == {"id", "owner_id", "name", "qty", "active", "note",
                                    "created_at"}
    for path, query, status, named in [
        ("/crud_item", "select=nope", 400, "Unknown select field 'nope'"),
        ("/crud_item", "select=id,nope", 400, "nope"),
        ("/crud_item", "select=", 400, "select names no field"),
        ("/crud_item", "select=,", 400, "select names no field"),
        ("/crud_item/2", "select=nope", 400, "nope"),
        ("/crud_item/99", "select=name", 404, "not found"),
    ]:
        response = await client.get(path, params=q(query))
        assert response.status_code == status, (path, query, response.text)
        assert named in str(response.json()["detail"]).lower() or named in response.text


async def test_select_does_not_change_what_a_caller_reads(db_url: str) -> None:
    """The read rule sees whole rows: selecting away the owner field hides nothing more and
    reveals nothing more."""
    app, cape = make_cape(db_url)
    cape.publish(Item)
    cape.permission_required(Item, owner_field="owner_id", actions=["read"])
    async with app_client(app) as client:
        await insert_rows(cape, ROWS)
        alice = as_user("alice")
        response = await client.get("/crud_item", params=q("select=name"), headers=alice)
        assert response.json() == [{"name": "Apple"}, {"name": "apple pie"}]
        response = await client.get("/crud_item/2", params=q("select=name"), headers=alice)
        assert response.json() == {"name": "apple pie"}
        response = await client.get("/crud_item/3", params=q("select=name"), headers=alice)
        assert response.status_code == 404


async def test_secret_fields_stay_out_of_groups_and_selections(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Account)
    cape.permission_required(Account, actions=["read"])
    async with app_client(app) as client:
        async with cape.get_privileged_session() as session:
            session.add(Account(id=1, name="a", password_hash="h"))
            await session.commit()
        plain = await client.get("/grp_account", params={"password_hash": "h"})
        assert plain.status_code == 400
        refusal = plain.json()["detail"]
        assert "Unknown filter field 'password_hash'" in refusal
        for query in ["or=(password_hash=h)", "or=(id=2,and(password_hash__isnull=false))",
                      "not.or=(password_hash__gt=a)", "and=(password_hash__in=(h))"]:
            response = await client.get("/grp_account", params=q(query))
            assert (response.status_code, response.json()["detail"]) == (400, refusal), query
        for path in ["/grp_account", "/grp_account/1"]:
            for query in ["select=password_hash", "select=id,password_hash"]:
                response = await client.get(path, params=q(query))
                assert response.status_code == 400, (path, query)
                assert "Unknown select field 'password_hash'" in response.json()["detail"]
                assert response.json()["detail"].endswith("fields: id, name")
        assert (await client.get("/grp_account/1")).json() == {"id": 1, "name": "a"}
