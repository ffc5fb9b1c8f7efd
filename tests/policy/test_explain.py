"""``cape.explain``: which rule allowed, or why everything was denied."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from sqlalchemy import ColumnElement, func

from capebase import AuthContext, CapeBase
from capebase.errors import ConfigurationError

from .models import Bare, LevelDoc, OrgDoc, Todo

ALICE = AuthContext(id="alice", role="user")
ADMIN = AuthContext(id="root", role="admin")


@pytest.fixture
def cape(sqlite_url: str) -> CapeBase:
    cape = CapeBase(app=FastAPI(), db_url=sqlite_url)
    cape.permission_required(Todo, role="*", actions=["read"])
    cape.permission_required(Todo, owner_field="user_id", actions=["create", "update", "delete"])
    cape.permission_required(Todo, role="admin", actions=["*"])
    return cape


def test_default_deny_is_explained(cape: CapeBase) -> None:
    explanation = cape.explain(ADMIN, "read", Bare)
    assert not explanation.allowed
    assert explanation.rule is None and explanation.considered == ()
    assert "default deny" in explanation.reason
    assert str(explanation).startswith("DENY read Bare")


def test_allowing_rule_is_named(cape: CapeBase) -> None:
    mine = Todo(id=1, user_id="alice", task="t")
    explanation = cape.explain(ALICE, "update", Todo, mine)
    assert explanation.allowed
    assert explanation.rule is not None and "owner_field=user_id" in explanation.rule
    assert str(explanation).startswith("ALLOW update Todo")
    # A mapping of column values works as well as an instance.
    assert cape.explain(ALICE, "update", Todo, {"id": 1, "user_id": "alice"}).allowed


def test_denial_lists_the_rules_considered(cape: CapeBase) -> None:
    theirs = {"id": 2, "user_id": "bob", "task": "t"}
    explanation = cape.explain(ALICE, "delete", Todo, theirs)
    assert not explanation.allowed
    assert explanation.rule is None
    assert len(explanation.considered) == 2  # the owner rule and the admin rule
    assert "matches no applicable rule" in explanation.reason
    lookalike = AuthContext(id="Alice")
    assert not cape.explain(lookalike, "delete", Todo, {"id": 1, "user_id": "alice"}).allowed


def test_role_that_no_rule_names(cape: CapeBase) -> None:
    cape.permission_required(OrgDoc, role="admin", actions=["read"])
    explanation = cape.explain(ALICE, "read", OrgDoc)
    assert not explanation.allowed
    assert "role 'user'" in explanation.reason


def test_without_a_row(cape: CapeBase) -> None:
    public = cape.explain(AuthContext(), "read", Todo)
    assert public.allowed and "every row" in public.reason
    owned = cape.explain(ALICE, "create", Todo)
    assert owned.allowed and "filtered" in owned.reason
    anonymous = cape.explain(AuthContext(), "create", Todo)
    assert not anonymous.allowed
    assert "match no row" in anonymous.reason


def test_admin_rule_is_the_one_that_allows(cape: CapeBase) -> None:
    explanation = cape.explain(ADMIN, "delete", Todo, {"id": 2, "user_id": "bob"})
    assert explanation.allowed
    assert explanation.rule is not None and "role=admin" in explanation.rule


def lower_title(_ctx: AuthContext) -> ColumnElement[bool]:
    return func.lower(LevelDoc.title) == "secret"


def test_where_python_cannot_evaluate_is_undecided_and_warned(
    cape: CapeBase, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="capebase.policy"):
        cape.permission_required(LevelDoc, where=lower_title, actions=["read"])
    assert "cannot be evaluated in Python" in caplog.text
    row = {"id": 1, "level": 1, "title": "SECRET"}
    explanation = cape.explain(ALICE, "read", LevelDoc, row)
    assert not explanation.allowed
    assert "needs the database" in explanation.reason
    assert cape.policy.check_row(LevelDoc, "read", ALICE, row) is None


def clearance(ctx: AuthContext) -> ColumnElement[bool]:
    return LevelDoc.level <= ctx.context["clearance"]


def test_where_with_a_missing_context_key_denies(cape: CapeBase) -> None:
    cape.permission_required(LevelDoc, where=clearance, actions=["read"])
    row = {"id": 1, "level": 1, "title": "t"}
    cleared = AuthContext(id="x", context={"clearance": 2})
    assert cape.explain(cleared, "read", LevelDoc, row).allowed
    assert not cape.explain(AuthContext(id="x"), "read", LevelDoc, row).allowed
    assert not cape.explain(AuthContext(id="x"), "read", LevelDoc).allowed


def test_explain_agrees_with_check_row(cape: CapeBase) -> None:
    cape.permission_required(OrgDoc, context_fields=["org_id"], actions=["read"])
    callers = [
        AuthContext(),
        ALICE,
        AuthContext(id="c", context={"org_id": ["o1", "o2"]}),
        AuthContext(id="d", context={"org_id": "O1"}),
    ]
    for ctx in callers:
        for org in ("o1", "O1", "o1 ", "o3"):
            row = {"id": 1, "org_id": org, "title": "t"}
            verdict = cape.policy.check_row(OrgDoc, "read", ctx, row)
            assert cape.explain(ctx, "read", OrgDoc, row).allowed is verdict


def test_bad_rules_fail_at_registration(cape: CapeBase) -> None:
    with pytest.raises(ConfigurationError, match="Unknown action"):
        cape.permission_required(Todo, actions=["write"])
    with pytest.raises(ConfigurationError, match="no column"):
        cape.permission_required(Todo, owner_field="owner", actions=["read"])
    with pytest.raises(ConfigurationError, match="callable"):
        cape.permission_required(Todo, where=Todo.task == "x", actions=["read"])  # type: ignore[arg-type]
