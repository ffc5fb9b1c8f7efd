"""Sessions: the per-request user session, the privileged session, and what they carry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from ..errors import UnfilterableStatementError
from ..identity.context import AuthContext
from ..observer import SESSION_KEY, ObserverSlot

if TYPE_CHECKING:
    from ..policy.registry import Policy

SCOPE_KEY = "capebase.scope"
_INTERNAL_KEY = "capebase_internal"


class _InternalToken:
    """The value of the execution option that marks capebase's own statements."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<capebase internal statement>"


_INTERNAL = _InternalToken()
INTERNAL: Mapping[str, Any] = MappingProxyType({_INTERNAL_KEY: _INTERNAL})
"""Execution options marking capebase's own statements, which the policy does not filter.
Only this object's value counts (compared by identity): app code setting
``capebase_internal=True`` on a statement gets it filtered like any other."""


def is_internal(options: Mapping[str, Any]) -> bool:
    """Whether execution ``options`` mark one of capebase's own statements."""
    return options.get(_INTERNAL_KEY) is _INTERNAL


class ChangeSink(Protocol):
    """Where a session reports the changes it captured (the realtime hub)."""

    @property
    def capture(self) -> bool:
        """Whether changes are written to the change log at all."""

    def has_handlers(self, table: str) -> bool:
        """Whether server-side handlers want changes to ``table``."""

    def notify(self) -> None:
        """Wake the dispatcher: a transaction with changes committed."""


@dataclass(frozen=True, slots=True)
class SessionScope:
    """Who a session acts as. ``ctx is None`` means privileged: the policy does not apply."""

    policy: Policy
    ctx: AuthContext | None
    sink: ChangeSink | None = None

    @property
    def is_privileged(self) -> bool:
        """True for sessions from ``get_privileged_session``."""
        return self.ctx is None


_FLUSHING: ContextVar[SessionScope | None] = ContextVar("capebase_flushing", default=None)


class CapeSyncSession(Session):
    """The sync Session behind every capebase AsyncSession; policy and capture hook in here."""

    def flush(self, objects: Sequence[Any] | None = None) -> None:
        """Flush, with ``flushing_scope()`` telling connection-level hooks who writes."""
        token = _FLUSHING.set(scope_of(self))
        try:
            super().flush(objects)
        finally:
            _FLUSHING.reset(token)

    # The legacy bulk methods write rows without a flush and without a statement the session
    # sees: nothing could check them for a user.
    def bulk_save_objects(self, *args: Any, **kwargs: Any) -> None:
        """As ``Session.bulk_save_objects``; refused in a user session."""
        self._refuse_bulk("bulk_save_objects")
        super().bulk_save_objects(*args, **kwargs)

    def bulk_insert_mappings(self, *args: Any, **kwargs: Any) -> None:
        """As ``Session.bulk_insert_mappings``; refused in a user session."""
        self._refuse_bulk("bulk_insert_mappings")
        super().bulk_insert_mappings(*args, **kwargs)

    def bulk_update_mappings(self, *args: Any, **kwargs: Any) -> None:
        """As ``Session.bulk_update_mappings``; refused in a user session."""
        self._refuse_bulk("bulk_update_mappings")
        super().bulk_update_mappings(*args, **kwargs)

    def _refuse_bulk(self, name: str) -> None:
        scope = scope_of(self)
        if scope is not None and scope.ctx is not None:
            raise UnfilterableStatementError(
                f"Session.{name}() writes rows no permission check sees; in a user session "
                "add objects, or run session.execute(insert(Model), [...]) / "
                "update(Model).where(...).values(...)."
            )


def flushing_scope() -> SessionScope | None:
    """The scope of the capebase session whose flush is running here, if any.

    Statements a flush runs go straight to its connection, where no session event sees
    them; this is how a connection event tells they come from a user session's flush.
    """
    return _FLUSHING.get()


def scope_of(session: Session) -> SessionScope | None:
    """The scope a session was opened with, or ``None`` for sessions capebase did not open."""
    scope = session.info.get(SCOPE_KEY)
    return scope if isinstance(scope, SessionScope) else None


def make_sessionmaker(
    engine: AsyncEngine, observers: ObserverSlot
) -> async_sessionmaker[AsyncSession]:
    """The factory of capebase sessions on ``engine``, reporting denials to ``observers``.

    ``expire_on_commit=False`` because async code cannot lazy-load attributes after a commit.
    """
    return async_sessionmaker(
        engine,
        sync_session_class=CapeSyncSession,
        expire_on_commit=False,
        info={SESSION_KEY: observers},
    )


def open_session(
    factory: async_sessionmaker[AsyncSession],
    policy: Policy,
    ctx: AuthContext | None,
    sink: ChangeSink | None = None,
) -> AsyncSession:
    """A new session acting as ``ctx`` (``None``: privileged), reporting changes to ``sink``."""
    info: dict[str, Any] = {SCOPE_KEY: SessionScope(policy=policy, ctx=ctx, sink=sink)}
    return factory(info=info)
