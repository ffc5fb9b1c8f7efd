"""capebase.http.errors: every capebase exception has one HTTP answer and one close code."""

from __future__ import annotations

import json
import warnings

import pytest
from fastapi import FastAPI, HTTPException, WebSocket
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

import capebase.auth.builtin  # noqa: F401  its errors are in the tree
from capebase import CapeBase
from capebase.errors import (
    AccountExistsError,
    AuthenticationRequiredError,
    AuthError,
    BatchError,
    CapeBaseError,
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidCredentialsError,
    InvalidTokenError,
    LockedOutError,
    NotATableError,
    NotFoundError,
    NotStartedError,
    PermissionDeniedError,
    PreconditionFailedError,
    QueryError,
    TooManySubscriptionsError,
    UnfilterableStatementError,
)
from capebase.http.errors import answer_for, http_status
from capebase.realtime.signing import InvalidResumeToken

BEARER = {"WWW-Authenticate": "Bearer"}
ANSWERED = [
    (PermissionDeniedError("update", "Task"), 403, {}, 1008),
    (PermissionDeniedError("update", "Task", is_anonymous=True), 401, BEARER, 1008),
    (NotFoundError("Task", 1), 404, {}, 1008),
    (PreconditionFailedError("Task", 1), 412, {}, 1008),
    (QueryError("Unknown filter field"), 400, {}, 1008),
    (QueryError("Invalid value", is_invalid_value=True), 422, {}, 1008),
    (BatchError("Operation 2: GET /x is not a route", index=2), 400, {}, 1008),
    (BatchError("Too many operations", is_too_large=True), 413, {}, 1008),
    (TooManySubscriptionsError("Too many open subscriptions"), 429, {}, 1013),
    (DatabaseUnavailableError("refused"), 503, {"Retry-After": "5"}, 1013),
    (AuthError("x"), 401, BEARER, 1008),
    (InvalidCredentialsError(), 401, BEARER, 1008),
    (InvalidTokenError(), 401, BEARER, 1008),
    (AuthenticationRequiredError(), 401, BEARER, 1008),
    (AccountExistsError(), 409, {}, 1008),
    (LockedOutError(2.5), 429, {"Retry-After": "3"}, 1013),
    (LockedOutError(0.1), 429, {"Retry-After": "1"}, 1013),
]
BUGS = [
    CapeBaseError("x"),
    ConfigurationError("x"),
    NotATableError("x"),
    NotStartedError("x"),
    UnfilterableStatementError("x"),
    InvalidResumeToken("x"),
]


def _all_subclasses(cls: type) -> set[type]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _all_subclasses(sub)
    return found


def test_every_capebase_exception_is_answered_or_a_bug() -> None:
    """A new exception class must be placed in the map (or knowingly left a 500)."""
    placed = {type(exc) for exc, *_ in ANSWERED} | {type(exc) for exc in BUGS}
    internal = {cls for cls in _all_subclasses(CapeBaseError) if cls.__module__.startswith("tests")}
    from capebase.auth.builtin.store import TokenReuseError

    assert _all_subclasses(CapeBaseError) - internal - {TokenReuseError} == placed
    assert answer_for(TokenReuseError("user")) == answer_for(InvalidTokenError())


@pytest.mark.parametrize(
    ("exc", "status", "headers", "close_code"), ANSWERED, ids=lambda v: repr(v)[:40]
)
def test_the_answer_of_each_exception(
    exc: CapeBaseError, status: int, headers: dict[str, str], close_code: int
) -> None:
    answer = answer_for(exc)
    assert answer is not None
    assert (answer.status, dict(answer.headers), answer.close_code) == (
        status, headers, close_code
    )
    detail = str(exc)
    if getattr(exc, "is_anonymous", False):
        detail = "Authentication required"
    elif isinstance(exc, DatabaseUnavailableError):
        detail = "The database is unavailable; retry later"
    assert answer.detail == detail
    assert http_status(exc) == status


@pytest.mark.parametrize("exc", BUGS, ids=lambda v: type(v).__name__)
def test_bugs_have_no_answer(exc: CapeBaseError) -> None:
    assert answer_for(exc) is None
    with pytest.raises(LookupError, match="it is a 500"):
        http_status(exc)


@pytest.mark.parametrize(("cause", "status", "detail", "headers"), [
    (PermissionDeniedError("create", "Task"), 403, "Permission denied: cannot create Task", {}),
    (PermissionDeniedError("create", "Task", is_anonymous=True), 401,
     "Authentication required", BEARER),
    (NotFoundError("Task", 3), 404, "Task not found", {}),
    (HTTPException(409, "Task conflicts with stored data: x"), 409,
     "Task conflicts with stored data: x", {}),
    (DatabaseUnavailableError("refused"), 503, "The database is unavailable; retry later",
     {"Retry-After": "5"}),
])
def test_a_failed_batch_operation_is_answered_as_its_own_route_with_its_index(
    cause: BaseException, status: int, detail: str, headers: dict[str, str]
) -> None:
    answer = answer_for(BatchError("x", index=4, cause=cause))
    assert answer is not None
    assert (answer.status, answer.detail, dict(answer.headers)) == (status, detail, headers)
    assert json.loads(answer.response().body) == {"detail": detail, "index": 4}


def test_a_failed_batch_operation_that_is_a_bug_stays_a_500() -> None:
    assert answer_for(BatchError("x", index=0, cause=ConfigurationError("bug"))) is None
    assert answer_for(BatchError("x", index=0, cause=RuntimeError("bug"))) is None


def test_status_code_of_0_1_classes_is_read_from_the_map() -> None:
    """PermissionDeniedError and QueryError keep their public ``status_code``, derived from
    the map; QueryError's ``status_code=`` argument is deprecated for ``is_invalid_value``."""
    assert PermissionDeniedError("read", "Task").status_code == 403
    assert PermissionDeniedError("read", "Task", is_anonymous=True).status_code == 401
    assert QueryError("x").status_code == 400
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert QueryError("x", is_invalid_value=True).status_code == 422
    with pytest.warns(DeprecationWarning, match="is_invalid_value=True"):
        old = QueryError("x", status_code=422)
    assert (old.is_invalid_value, old.status_code) == (True, 422)
    with pytest.warns(DeprecationWarning):
        assert not QueryError("x", status_code=400).is_invalid_value
    with pytest.raises(ValueError, match="400 or 422"):
        QueryError("x", status_code=418)


def _ws_app() -> FastAPI:
    app = FastAPI()
    CapeBase(app, "sqlite+aiosqlite:///:memory:")

    @app.websocket("/after-accept")
    async def after_accept(websocket: WebSocket) -> None:
        await websocket.accept()
        raise NotFoundError("Task", 7)

    @app.websocket("/before-accept")
    async def before_accept(websocket: WebSocket) -> None:
        raise PermissionDeniedError("read", "Task")

    @app.websocket("/unavailable")
    async def unavailable(websocket: WebSocket) -> None:
        raise DatabaseUnavailableError("refused")

    return app


def test_an_error_after_accept_closes_the_websocket_with_its_code() -> None:
    """Was: the handler's JSON response sent on an accepted WebSocket (a RuntimeError)."""
    with (
        TestClient(_ws_app()) as client,
        client.websocket_connect("/after-accept") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (1008, "Task not found")


def test_an_error_before_accept_refuses_the_handshake_with_its_http_answer() -> None:
    with TestClient(_ws_app()) as client, pytest.raises(WebSocketDenialResponse) as refused:
        client.websocket_connect("/before-accept").__enter__()
    assert refused.value.status_code == 403
    assert refused.value.json() == {"detail": "Permission denied: cannot read Task"}


def test_a_retryable_error_is_accepted_then_closed_with_1013() -> None:
    with (
        TestClient(_ws_app()) as client,
        client.websocket_connect("/unavailable") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (
        1013, "The database is unavailable; retry later"
    )
