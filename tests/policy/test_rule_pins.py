"""``Rule.pins``: the column values a rule pins a caller's rows to (the realtime hub indexes
subscribers by them), with context values coerced to each column's type as the SQL and row
predicates coerce them. Rules are built and asked directly; the last test reads a database.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Column, String, TypeDecorator, select
from sqlalchemy.orm import column_property, registry
from sqlmodel import Field, SQLModel

from capebase import AuthContext
from capebase.errors import ConfigurationError, NotATableError
from capebase.policy.rules import ACTIONS, build_rule
from capebase.testing import app_client

from ._support import make_app, reset
from .models import OrgDoc


class PinBase(SQLModel, registry=registry()):
    __test__ = False


class Opaque(TypeDecorator[str]):
    """A column type with no ``python_type``: values pass through as given."""

    impl = String(20)
    cache_ok = True

    @property
    def python_type(self) -> type[Any]:
        raise NotImplementedError


class Pinned(PinBase, table=True):
    """A column of each type a context value may be coerced to."""

    __tablename__ = "pol_pinned"

    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)
    team: int = 0
    flag: bool = False
    key: uuid.UUID | None = None
    day: date | None = None
    amount: float = 0.0
    tag: str = Field(default="", sa_column=Column(Opaque()))


class Scored(PinBase, table=True):
    """A model with a computed (column_property) attribute, which is no column of its table."""

    __tablename__ = "pol_scored"

    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=40)
    score: int = 0


Scored.__mapper__.add_property("double", column_property(Scored.__table__.c.score * 2))


def rule(**kwargs: Any) -> Any:
    options: dict[str, Any] = {"owner_field": None, "context_fields": None, "where": None}
    return build_rule(Pinned, actions="read", role=None, index=0, **{**options, **kwargs})


KEY = uuid.UUID("12345678-1234-5678-1234-567812345678")


def test_an_owner_rule_pins_the_owner_column_to_the_callers_id() -> None:
    assert rule(owner_field="owner").pins(AuthContext(id="alice")) == [("owner", "alice")]
    assert rule(owner_field="owner").pins(AuthContext(id=None)) == []  # matches no row
    assert rule(owner_field="team").pins(AuthContext(id="7")) == [("team", 7)]
    assert rule(owner_field="team").pins(AuthContext(id="seven")) == []


def test_a_rule_without_owner_or_context_fields_pins_nothing() -> None:
    assert rule().pins(AuthContext(id="alice")) is None
    assert rule(where=lambda _ctx: Pinned.team == 1).pins(AuthContext(id="alice")) is None


def test_a_context_rule_pins_its_field_to_the_context_values() -> None:
    teams = rule(context_fields={"team": "teams"})
    assert teams.pins(AuthContext(context={"teams": ["1", 2, "x", None]})) == [
        ("team", 1),
        ("team", 2),
    ]
    assert teams.pins(AuthContext(context={"teams": "3"})) == [("team", 3)]
    assert teams.pins(AuthContext(context={})) == []  # the key missing: matches no row
    assert teams.pins(AuthContext(context={"teams": []})) == []
    # The first context field decides; the others only narrow what it pins.
    both = rule(context_fields={"team": "teams", "owner": "who"})
    assert both.pins(AuthContext(context={"teams": 4, "who": "bob"})) == [("team", 4)]


@pytest.mark.parametrize(
    ("field", "raw", "pinned"),
    [
        ("team", 5, [5]),
        ("team", 5.0, [5]),
        ("team", 5.5, []),  # no integer row holds it
        ("team", "5", [5]),
        ("team", "five", []),
        ("team", True, []),  # a boolean is not a number here
        ("team", Decimal("5"), []),
        ("owner", 5, ["5"]),
        ("owner", 1.5, ["1.5"]),
        ("owner", KEY, [str(KEY)]),
        ("owner", b"bytes", []),
        ("owner", False, []),
        ("flag", True, [True]),
        ("flag", 1, []),
        ("flag", "true", []),
        ("key", str(KEY), [KEY]),
        ("key", KEY, [KEY]),
        ("key", "not-a-uuid", []),
        ("day", "2024-02-29", [date(2024, 2, 29)]),
        ("day", "2023-02-29", []),
        ("amount", 2, [2.0]),
        ("amount", "2.5", [2.5]),
        ("tag", 7, [7]),  # no python_type: passed on as is
    ],
)
def test_context_values_are_coerced_to_the_columns_type(
    field: str, raw: Any, pinned: list[Any]
) -> None:
    found = rule(context_fields={field: "v"}).pins(AuthContext(context={"v": raw}))
    assert found == [(field, value) for value in pinned]
    assert [type(v) for _f, v in found] == [type(v) for v in pinned]


def test_describe_names_every_part_of_the_rule() -> None:
    def clearance(_ctx: AuthContext) -> Any:
        return Pinned.team <= 1

    described = build_rule(
        Pinned,
        actions=["update", "read"],
        role=["reader", "admin"],
        owner_field="owner",
        context_fields={"team": "teams", "day": "day"},
        where=clearance,
        index=3,
    ).describe()
    assert described == (
        "rule #3 on Pinned actions=read,update role=admin,reader owner_field=owner "
        "context_fields=team<-teams,day<-day where=clearance"
    )
    assert rule().describe() == "rule #0 on Pinned actions=read role=*"

    class Clearance:
        """A callable object: it has no __name__."""

        def __call__(self, _ctx: AuthContext) -> Any:
            return Pinned.team <= 1

    assert rule(where=Clearance()).describe() == (
        "rule #0 on Pinned actions=read role=* where=callable"
    )


def test_coercion_and_columns_work_from_cold_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The type adapters and ORM columns rules use are built once per type and model (a warm
    process never builds them again, so each is checked from empty here)."""
    import capebase.policy.rules as rules

    monkeypatch.setattr(rules, "_ADAPTERS", {})
    monkeypatch.setattr(rules, "_ORM_COLUMNS", {})
    days = rule(context_fields={"day": "v"})
    assert days.pins(AuthContext(context={"v": "2024-02-29"})) == [("day", date(2024, 2, 29))]
    assert days.pins(AuthContext(context={"v": "2024-03-01"})) == [("day", date(2024, 3, 1))]
    assert list(rules._ADAPTERS) == [date]
    assert rules._adapter(date) is rules._adapter(date)
    owned = rule(owner_field="owner", context_fields={"team": "t"})
    sql = owned.sql(AuthContext(id="alice", context={"t": 1}))
    assert str(sql.compile(compile_kwargs={"literal_binds": True})) == (
        "(pol_pinned.owner = 'alice') AND pol_pinned.team = 1"
    )
    assert set(rules._ORM_COLUMNS[Pinned]) == {c.key for c in Pinned.__table__.c}
    assert rules._orm_columns(Pinned) is rules._orm_columns(Pinned)
    scored = build_rule(Scored, actions="read", role=None, owner_field="owner",
                        context_fields=None, where=None, index=0)
    assert str(scored.sql(AuthContext(id="bob"))) == "(pol_scored.owner = :param_1)"
    assert set(rules._ORM_COLUMNS[Scored]) == {"id", "owner", "score"}


ORG_DOCS = [
    {"id": 1, "org_id": "5", "title": "numeric org"},
    {"id": 2, "org_id": "acme", "title": "named org"},
    {"id": 3, "org_id": "0", "title": "zero org"},
]


@pytest.mark.parametrize(
    ("value", "readable"),
    [(5, {1}), (5.0, set()), (0, {3}), ([0, "acme"], {2, 3}), (True, set()), (2.5, set())],
)
async def test_numbers_in_the_context_match_a_str_column_as_text(
    db_url: str, value: Any, readable: set[int]
) -> None:
    """Regression: SQLModel's ``str`` columns (AutoString) name no Python type, so context
    values reached them uncoerced: SQLite matched ``5`` to "5" in SQL but not in Python, and
    MariaDB matched ``0`` to every non-numeric text ("acme" = 0 is true there), PostgreSQL
    failed the query. A number is matched as its text, ``str(5.0)`` being "5.0"."""
    app, cape = make_app(db_url)
    cape.permission_required(OrgDoc, context_fields=["org_id"], actions=["read"])
    ctx = AuthContext(id="u", context={"org_id": value})
    async with app_client(app):
        await reset(cape, OrgDoc, ORG_DOCS)
        async with cape.get_session(ctx) as session:
            in_sql = set((await session.scalars(select(OrgDoc.id))).all())
    in_python = {
        row["id"] for row in ORG_DOCS if cape.policy.check_row(OrgDoc, "read", ctx, row)
    }
    assert in_sql == in_python == readable


def test_a_where_reading_a_missing_context_key_matches_nothing_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def clearance(ctx: AuthContext) -> Any:
        return Pinned.team <= ctx.context["clearance"]

    cleared = rule(where=clearance)
    with caplog.at_level(logging.DEBUG, logger="capebase.policy"):
        assert cleared.where_expression(AuthContext(id="alice")) is None
    assert [r.getMessage() for r in caplog.records] == [
        "rule #0 on Pinned actions=read role=* where=clearance: no match for 'alice', "
        "missing 'clearance'"
    ]


def test_a_where_returning_a_python_bool_matches_all_or_nothing() -> None:
    row = {"id": 1, "owner": "a", "team": 0}
    ctx = AuthContext(id="a")
    assert rule(where=lambda _ctx: True).matches(ctx, row) is True
    assert rule(where=lambda _ctx: False).matches(ctx, row) is False
    assert str(rule(where=lambda _ctx: False).sql(ctx)) == "false"


def test_a_where_returning_something_else_is_a_configuration_error() -> None:
    def title(_ctx: AuthContext) -> Any:
        return "title"

    with pytest.raises(ConfigurationError) as refused:
        rule(where=title).sql(AuthContext(id="a"))
    assert str(refused.value) == (
        "rule #0 on Pinned actions=read role=* where=title: where= returned str; it must "
        "return a SQLAlchemy boolean expression, e.g. Doc.level <= ctx.context['clearance']"
    )


def test_a_where_over_another_models_column_is_left_to_the_database() -> None:
    """Scored.owner is not Pinned's, though the row has an "owner": Python cannot decide."""
    foreign = rule(where=lambda _ctx: Scored.owner == "a")
    assert foreign.matches(AuthContext(id="a"), {"id": 1, "owner": "a", "team": 0}) is None


class Plain:
    """Not a table model."""


@pytest.mark.parametrize(
    ("model", "named"), [(Plain, "'Plain'"), (42, "42")], ids=["class", "not a class"]
)
def test_rules_on_something_else_than_a_table_model_are_refused(model: Any, named: str) -> None:
    with pytest.raises(NotATableError) as refused:
        build_rule(model, actions="read", role=None, owner_field=None, context_fields=None,
                   where=None, index=0)
    assert str(refused.value) == (
        f"{named} is not a table model (declare it with `class X(SQLModel, table=True)`)"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"actions": []}, "permission_required needs at least one action"),
        (
            {"actions": ["read", "fly"]},
            "Unknown action 'fly'; use one of create, read, update, delete or '*'",
        ),
        (
            {"owner_field": "nope"},
            "Pinned has no column 'nope' (columns: id, owner, team, flag, key, day, amount, tag)",
        ),
        (
            {"context_fields": {"team": "t", "nope": "n"}},
            "Pinned has no column 'nope' (columns: id, owner, team, flag, key, day, amount, tag)",
        ),
        (
            {"where": "Pinned.team == 1"},
            "where= must be a callable taking the AuthContext and returning a SQLAlchemy "
            "boolean expression, e.g. where=lambda ctx: Doc.level <= ctx.context['clearance']",
        ),
    ],
    ids=["no action", "unknown action", "unknown owner field", "unknown context field", "where"],
)
def test_a_rule_that_cannot_work_is_refused_saying_why(
    arguments: dict[str, Any], message: str
) -> None:
    options: dict[str, Any] = {
        "actions": "read", "role": None, "owner_field": None, "context_fields": None,
        "where": None, "index": 0,
    }
    with pytest.raises(ConfigurationError) as refused:
        build_rule(Pinned, **{**options, **arguments})
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("role", "roles"),
    [
        (None, None),
        ("*", None),
        (["admin", "*"], None),
        ("admin", frozenset({"admin"})),
        (["admin", "reader"], frozenset({"admin", "reader"})),
    ],
)
def test_roles_star_means_everyone(role: Any, roles: frozenset[str] | None) -> None:
    built = build_rule(Pinned, actions=["*"], role=role, owner_field=None, context_fields=None,
                       where=None, index=0)
    assert (built.roles, built.actions) == (roles, frozenset(ACTIONS))
    assert built.applies_to(AuthContext(role="guest")) is (roles is None)
    assert built.applies_to(AuthContext(role="admin")) is True
