"""capebase's SQLAlchemy hooks are installed as ``capebase.hooks.HOOKS`` lists them: each
event's listeners in that order, once, however many CapeBases a process builds.

The order itself is tested by behaviour: with capture's statement hook before the policy's,
tests/policy/test_sessions.py fails (capture runs the statement before the policy refuses it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from capebase import CapeBase
from capebase.hooks import HOOKS, install


def _listener(wrapped: Callable[..., Any]) -> Callable[..., Any]:
    """The function SQLAlchemy calls: mapper and engine events wrap the listener given."""
    for cell in wrapped.__closure__ or ():
        if any(cell.cell_contents is listener for _, _, listener in HOOKS):
            return cell.cell_contents  # type: ignore[no-any-return]
    return wrapped


def installed(target: Any, name: str) -> list[Callable[..., Any]]:
    listeners = getattr(target.dispatch, name)._clslevel.get(target, [])
    mine = {id(listener) for _, _, listener in HOOKS}
    return [f for f in map(_listener, listeners) if id(f) in mine]


def test_each_event_runs_the_hooks_in_the_listed_order_once() -> None:
    CapeBase(FastAPI(), "sqlite+aiosqlite:///:memory:")
    CapeBase(FastAPI(), "sqlite+aiosqlite:///:memory:")
    install()
    events = dict.fromkeys((target, name) for target, name, _ in HOOKS)
    assert len(events) == 10  # do_orm_execute, 3 flush events, 2 transaction events, ...
    for target, name in events:
        expected = [f for t, n, f in HOOKS if (t, n) == (target, name)]
        assert installed(target, name) == expected, (target.__name__, name)
