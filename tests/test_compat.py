"""What code written for capebase 0.1.0a3 relies on (its own tests, run by ``make compat``, use
each of these): ``timeout=``, ``db_session``, ``PermissionDeniedError`` as an ``HTTPException``,
``UnfilterableStatementError`` as a ``NotImplementedError``, a ``TypeError`` for a model that is
not a table, ``db_path=``."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from sqlalchemy import insert, text
from sqlmodel import SQLModel

from capebase import (
    AuthContext,
    CapeBase,
    ConfigurationError,
    PermissionDeniedError,
    RealtimeConfig,
    UnfilterableStatementError,
)
from capebase.testing import app_client
from tests.realtime._app import Task, make_app

MEMORY = "sqlite+aiosqlite:///:memory:"


def test_timeout_is_the_shutdown_grace() -> None:
    cape = CapeBase(FastAPI(), MEMORY, timeout=0.25)
    assert cape.realtime_config.shutdown_grace == 0.25
    same = CapeBase(FastAPI(), MEMORY, timeout=0.25, realtime=RealtimeConfig(shutdown_grace=0.25))
    assert same.realtime_config.shutdown_grace == 0.25
    kept = CapeBase(FastAPI(), MEMORY, timeout=2, realtime=RealtimeConfig(heartbeat=3))
    assert (kept.realtime_config.shutdown_grace, kept.realtime_config.heartbeat) == (2, 3)
    with pytest.raises(ConfigurationError, match=r"timeout= is RealtimeConfig\.shutdown_grace"):
        CapeBase(FastAPI(), MEMORY, timeout=1, realtime=RealtimeConfig(shutdown_grace=9))
    with pytest.raises(ConfigurationError, match="shutdown_grace must be positive"):
        CapeBase(FastAPI(), MEMORY, timeout=0)


def test_db_path_is_another_name_of_db_url(tmp_path: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'named.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert CapeBase(FastAPI(), db_url=url).engine.url.database == str(tmp_path / "named.db")
        assert CapeBase(FastAPI(), url).engine.url.database == str(tmp_path / "named.db")
        assert CapeBase(FastAPI()).engine.url.database == "capebase.db"
        # the seed README's name: no warning
        cape = CapeBase(FastAPI(), db_path=url)
    assert cape.engine.url.database == str(tmp_path / "named.db")
    with pytest.raises(TypeError, match=r"db_url or db_path \(another name for it\), not both"):
        CapeBase(FastAPI(), db_url=url, db_path=url)
    with pytest.raises(TypeError, match="db_url or db_path"):
        CapeBase(FastAPI(), url, db_path=url)


def test_db_session_is_a_deprecated_name_of_the_engine() -> None:
    cape = CapeBase(FastAPI(), MEMORY)
    with pytest.warns(DeprecationWarning, match="use cape.engine"):
        assert cape.db_session is cape.engine


@pytest.mark.parametrize(
    ("ctx", "status"), [(AuthContext(id="alice"), 403), (AuthContext(), 401)],
    ids=["identified", "anonymous"],
)
async def test_permission_denied_is_an_http_exception(ctx: AuthContext, status: int) -> None:
    """Raised in a user session, it is caught as FastAPI's HTTPException with the status the
    HTTP layer answers; its message is capebase's."""
    app, cape = make_app(MEMORY)
    async with app_client(app), cape.get_session(ctx) as session:
        with pytest.raises(HTTPException) as caught:
            await session.execute(insert(Task).values(title="x", owner_id="bob"))
    error = caught.value
    assert isinstance(error, PermissionDeniedError)
    assert error.status_code == status
    assert str(error) == error.detail
    assert str(error).startswith("Permission denied: cannot ")


async def test_a_permission_denied_raised_in_a_route_is_answered_by_capebase() -> None:
    """Being an HTTPException changes nothing for HTTP: capebase's handler still answers it
    (401 with WWW-Authenticate for an anonymous caller)."""
    app, _cape = make_app(MEMORY)

    @app.get("/denied")
    async def denied(anonymous: bool = False) -> None:
        raise PermissionDeniedError("read", "Task", is_anonymous=anonymous)

    async with app_client(app) as client:
        forbidden = await client.get("/denied")
        assert forbidden.status_code == 403
        assert forbidden.json() == {"detail": "Permission denied: cannot read Task"}
        anonymous = await client.get("/denied", params={"anonymous": True})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"


async def test_unfilterable_statements_are_not_implemented_errors() -> None:
    app, cape = make_app(MEMORY)
    async with app_client(app), cape.get_session(AuthContext(id="alice")) as session:
        with pytest.raises(NotImplementedError) as caught:
            await session.execute(text("SELECT * FROM rt_task"))
    assert isinstance(caught.value, UnfilterableStatementError)


class NotATable:
    pass


class PlainModel(SQLModel):
    value: int = 0


@pytest.mark.parametrize("model", [NotATable, PlainModel], ids=["class", "SQLModel, no table"])
@pytest.mark.parametrize("call", ["subscribe", "publish", "permission_required"])
def test_a_model_that_is_not_a_table_is_a_type_error(model: type[Any], call: str) -> None:
    cape = CapeBase(FastAPI(), MEMORY)
    with pytest.raises(TypeError) as caught:
        if call == "subscribe":
            cape.subscribe(model)
        elif call == "publish":
            cape.publish(model)
        else:
            cape.permission_required(model, actions=["read"])
    assert isinstance(caught.value, ConfigurationError)
    assert model.__name__ in str(caught.value)
    if call == "subscribe":
        assert str(caught.value).startswith(f"Model {model.__name__} is not a SQLModel")


def test_no_warning_without_the_old_names() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cape = CapeBase(FastAPI(), MEMORY)
        assert cape.engine is not None
