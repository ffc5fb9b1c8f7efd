"""Every SQLAlchemy event hook of capebase, in the order they run, installed by ``install()``.

SQLAlchemy calls the listeners of one event in the order they were added, and here that order
is part of the policy: a user session's statement is filtered (or refused) before the
referential actions it causes are checked, and both before capture logs what it changes; a
flush is checked before its rows are remembered for the change log. Listing them in one place
makes that order something a reader sees and a test pins, rather than a consequence of which
module happened to be imported first.

The session hooks act only on capebase's sessions (``CapeSyncSession``). The mapper and engine
hooks see every flush and statement of the process, and return at once unless a capebase
user session is flushing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapper

from .changes import capture
from .db.sessions import CapeSyncSession
from .policy import cascades, enforcement, flush_rows, statements

HOOKS: tuple[tuple[Any, str, Callable[..., Any]], ...] = (
    # A statement run in a session: the policy first, then what it makes the database do.
    (CapeSyncSession, "do_orm_execute", statements.filter_statement),
    (CapeSyncSession, "do_orm_execute", cascades.bulk_referential_actions),
    (CapeSyncSession, "do_orm_execute", capture.capture_bulk),
    # A flush: the caller's rights over every object, then the bookkeeping of the checks
    # made row by row below, then the stored images capture compares against.
    (CapeSyncSession, "before_flush", enforcement.check_flush),
    (CapeSyncSession, "before_flush", cascades.start_flush),
    (CapeSyncSession, "before_flush", flush_rows.refuse_post_updates),
    (CapeSyncSession, "before_flush", capture.remember_stored_rows),
    # Each row as the flush writes it: the database's own cascades, then the row itself.
    (Mapper, "before_insert", flush_rows.check_insert),
    (Mapper, "before_update", cascades.before_key_change),
    (Mapper, "before_update", flush_rows.check_update),
    (Mapper, "before_delete", cascades.before_delete),
    (Mapper, "before_delete", flush_rows.check_delete),
    (Engine, "before_execute", flush_rows.refuse_association_writes),
    (CapeSyncSession, "after_flush", capture.capture_unit_of_work),
    (CapeSyncSession, "after_commit", capture.wake_sink),
    (CapeSyncSession, "after_rollback", capture.forget_changes),
    # Classes mapped since the last statement: what a statement can load is looked at again.
    (Mapper, "after_configured", statements.forget_reachable),
)
"""(target, event, listener), in the order each event's listeners run."""


def install() -> None:
    """Add every hook of ``HOOKS`` that is not there yet, in order (``CapeBase`` calls it
    before it opens a session; calling it again adds nothing)."""
    for target, name, listener in HOOKS:
        if not event.contains(target, name, listener):
            event.listen(target, name, listener)
