"""CapeBase: the facade that wires models, policy, sessions and routes into a FastAPI app."""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import SQLModel

from .auth.provider import (
    AuthProvider,
    check_provider,
    context_dependency,
)
from .changes.changelog import add_missing_columns
from .changes.changelog import metadata as changelog_metadata
from .crud.batch import install_batch_route
from .crud.config import CrudConfig
from .crud.published import PublishedModel, describe_model
from .crud.router import build_router
from .db.direct import DirectExecutor
from .db.engine import create_engine, release_abandoned_statements
from .db.schema import create_all
from .db.sessions import make_sessionmaker, open_session
from .errors import ConfigurationError
from .hooks import install as install_hooks
from .http.body_limit import BodySizeLimit
from .http.errors import install_error_handlers
from .http.lifespan import install_lifespan, move_routes_last
from .http.services import RouteServices, session_dependency
from .identity.context import AuthContext
from .limits import LimitsConfig
from .observability import wiring as observability
from .observability.access_log import install_redaction
from .observability.audit import Audit, retained_config
from .observability.config import AuditConfig, MetricsConfig
from .observer import ObserverSlot
from .policy import Explanation, Policy
from .policy.rules import WhereClause
from .realtime.backends import BrokerBackend, broker_from_url
from .realtime.config import RealtimeConfig
from .realtime.handlers import ChangeHandler, HandlerRegistry
from .realtime.hub import Hub
from .realtime.views import ModelView
from .safety import check_resume_secret, unsafe_settings
from .startup import chosen_provider, database_url, require_schema, with_shutdown_grace

if TYPE_CHECKING:
    from .auth.builtin import PasswordAuth

logger = logging.getLogger("capebase")

ModelT = TypeVar("ModelT", bound=type[Any])


class CapeBase:
    """Turns a FastAPI app and SQLModel table models into a permission-checked backend.

    Args:
        app: the FastAPI app to add routes and lifespan hooks to.
        db_url: the database's SQLAlchemy URL; ``sqlite:///x.db``, ``postgresql://…`` and
            ``mysql://…`` get the default async driver (aiosqlite, asyncpg, asyncmy).
            ``sqlite+aiosqlite:///capebase.db`` when not given.
        get_auth_context: a FastAPI dependency returning the caller's ``AuthContext``
            (``auth_provider`` is an alias). Without one every caller is anonymous.
        auth: the built-in auth, e.g. ``PasswordAuth(secret=...)``: it becomes the provider
            and its routes (``/auth/token``…) are mounted. Not together with get_auth_context.
        create_tables: create missing tables at startup; turn off when Alembic owns the schema.
        crud: paging and filter limits of the generated routes.
        limits: filter-count, body-size and database timeout limits (``LimitsConfig``).
        realtime: change capture, stream and retention settings.
        broker: how app processes wake each other: ``memory://`` (one process, default),
            ``postgresql://…`` (LISTEN/NOTIFY) or ``redis://…``, or a BrokerBackend instance.
        engine_options: extra keyword arguments for SQLAlchemy's ``create_async_engine``.
        metrics: ``True`` or a ``MetricsConfig`` to record Prometheus metrics and serve them
            at ``/metrics``; off by default.
        audit: ``True`` or an ``AuditConfig`` to serve the audit trail at
            ``/_capebase/audit`` (role "admin" by default) and keep changes for its
            retention. ``cape.audit`` reads the trail in Python either way.
        timeout: capebase 0.1's name of ``RealtimeConfig.shutdown_grace``: seconds shutdown
            waits for handlers of already-committed changes.
        db_path: another name of ``db_url``, kept for code written against 0.1.

    Raises:
        TypeError: both ``db_url`` and ``db_path`` are given.
        ConfigurationError: a setting cannot work; the message says how to fix it.
    """

    def __init__(
        self,
        app: FastAPI,
        db_url: str | None = None,
        get_auth_context: AuthProvider | None = None,
        *,
        db_path: str | None = None,
        auth_provider: AuthProvider | None = None,
        create_tables: bool = True,
        crud: CrudConfig | None = None,
        limits: LimitsConfig | None = None,
        realtime: RealtimeConfig | None = None,
        broker: str | BrokerBackend = "memory://",
        engine_options: Mapping[str, Any] | None = None,
        auth: PasswordAuth | None = None,
        metrics: MetricsConfig | bool = False,
        audit: AuditConfig | bool = False,
        timeout: float | None = None,
    ) -> None:
        db_url = database_url(db_url, db_path)
        if not isinstance(app, FastAPI):
            raise ConfigurationError("CapeBase(app=...) needs a FastAPI application")
        provider = chosen_provider(get_auth_context, auth_provider, auth)
        self.app = app
        self.policy = Policy()
        self.crud_config = crud or CrudConfig()
        self.limits = limits or LimitsConfig()
        self.create_tables = create_tables
        self.engine: AsyncEngine = create_engine(
            db_url, limits=self.limits, **dict(engine_options or {})
        )
        # The generated routes' statements run on the driver connection when capebase knows
        # the driver (asyncpg, aiosqlite, asyncmy), through Core otherwise.
        self.direct = DirectExecutor.for_engine(self.engine)
        install_hooks()
        self._observers = ObserverSlot()
        self._sessions = make_sessionmaker(self.engine, self._observers)
        self._provider = check_provider(provider)
        self.auth_provider: AuthProvider = self._provider
        """The provider in use (the user's, the built-in auth's, or ``anonymous``)."""
        self.auth_dependency = context_dependency(self._provider)
        self._db_dependency = session_dependency(self.auth_dependency, self.get_session)
        self._published: dict[type[Any], PublishedModel] = {}
        self._generated_routes: dict[type[Any], list[Any]] = {}
        self.handlers = HandlerRegistry()
        self.realtime_config = with_shutdown_grace(realtime or RealtimeConfig(), timeout)
        audit_settings = observability.audit_config(audit)
        self.audit = Audit(self.engine, audit_settings)
        self.hub = Hub(self.engine, self.policy, self.handlers,
                       retained_config(self.realtime_config, audit_settings),
                       broker_from_url(broker), self._observers, direct=self.direct)
        self._started = False
        install_error_handlers(app, retry_after=self.limits.retry_after)
        install_redaction()
        if self.limits.max_body_size is not None:
            app.add_middleware(BodySizeLimit, max_body_size=self.limits.max_body_size)
        self._metrics_config = observability.metrics_config(metrics)
        self.metrics = observability.install(
            app, self.engine, self.direct, self._observers, metrics=self._metrics_config,
            audit=None if audit_settings is None else (self.audit, audit_settings),
            auth_dependency=self.auth_dependency,
        )
        self._warned: set[str] = set()
        self.auth = auth
        if auth is not None:
            auth.install(app, self.engine, create_tables=create_tables,
                          end_streams=self.hub.disconnect_user)
            self.hub.revalidate = auth.stale_sign_ins
        self._route_services = RouteServices(
            policy=self.policy, engine=self.engine, hub=self.hub,
            direct=self.direct if self.crud_config.fast_path else None,
            user_session=self.get_session, auth_dependency=self.auth_dependency,
            auth_provider=self.auth_provider, crud=self.crud_config,
            realtime=self.realtime_config, limits=self.limits, published=self._published,
        )
        self._batch_routes = install_batch_route(app, self._route_services, self._published)
        install_lifespan(self.app, self.startup, self.shutdown)

    @property
    def db_session(self) -> AsyncEngine:
        """capebase 0.1's name of :attr:`engine` (deprecated: use ``cape.engine``)."""
        warnings.warn(
            "CapeBase.db_session is the engine; use cape.engine", DeprecationWarning, stacklevel=2
        )
        return self.engine

    # -- models and rules ------------------------------------------------------------------

    @overload
    def publish(self, model: ModelT) -> ModelT: ...

    @overload
    def publish(
        self,
        model: None = None,
        *,
        routes: Sequence[str] | None = None,
        create_schema: type[BaseModel] | None = None,
        update_schema: type[BaseModel] | None = None,
    ) -> Callable[[ModelT], ModelT]: ...

    @overload
    def publish(
        self,
        model: ModelT,
        *,
        routes: Sequence[str] | None = None,
        create_schema: type[BaseModel] | None = None,
        update_schema: type[BaseModel] | None = None,
    ) -> ModelT: ...

    def publish(
        self,
        model: ModelT | None = None,
        *,
        routes: Sequence[str] | None = None,
        create_schema: type[BaseModel] | None = None,
        update_schema: type[BaseModel] | None = None,
    ) -> ModelT | Callable[[ModelT], ModelT]:
        """Generate REST routes for ``model`` at ``/{tablename}``.

        Publishing a model again replaces its routes.

        Usable as ``cape.publish(Todo)``, ``@cape.publish`` or ``@cape.publish(routes=[...])``.

        Args:
            model: a SQLModel table model with a single-column primary key.
            routes: a subset of "list", "get", "create", "update", "delete", "subscribe"
                (default: all).
            create_schema: the body of ``POST`` (default: every column but auth-filled fields
                and a primary key the model or database assigns). Unknown fields are rejected;
                such fields and the auth fields are refused (422) even when declared, with a
                warning logged here.
            update_schema: the body of ``PATCH`` (default: the create fields but the primary
                key, all optional). The primary key and auth fields are refused likewise.

        Raises:
            ConfigurationError: not a table model, composite key, unknown route.
        """
        if model is None:

            def decorate(target: ModelT) -> ModelT:
                return self.publish(
                    target, routes=routes, create_schema=create_schema, update_schema=update_schema
                )

            return decorate
        published = describe_model(
            model, routes, create_schema, update_schema, dialect=self.engine.dialect.name
        )
        if model in self._published:
            # Publishing again replaces the earlier routes (the seed README publishes Todo
            # plainly, then again with custom schemas).
            logger.info("capebase: %s published again; its routes are replaced", model.__name__)
            self._unpublish(model)
        self._published[model] = published
        if "subscribe" in published.routes:
            self.hub.add_view(ModelView(model, published.table, published.read_schema))
        router = build_router(self._route_services, published)
        before = len(self.app.router.routes)
        self.app.include_router(router)
        self._generated_routes[model] = list(self.app.router.routes[before:])
        move_routes_last(self.app, self._own_routes())
        self.app.openapi_schema = None
        return model

    def _unpublish(self, model: type[Any]) -> None:
        stale = set(map(id, self._generated_routes.pop(model, [])))
        self.app.router.routes[:] = [r for r in self.app.router.routes if id(r) not in stale]
        self._published.pop(model, None)
        self.hub.remove_view(model.__table__.name)

    def permission_required(
        self,
        model: type[Any],
        *,
        actions: Sequence[str] | str,
        role: str | Sequence[str] | None = None,
        owner_field: str | None = None,
        context_fields: Sequence[str] | Mapping[str, str] | None = None,
        where: WhereClause | None = None,
    ) -> None:
        """Allow ``actions`` on ``model`` to callers matching this rule. Rules are OR-ed.

        Args:
            model: any table model, published or not.
            actions: "create", "read", "update", "delete", or "*" for all.
            role: "*" or ``None`` for everyone (anonymous included), a role name, or a list.
            owner_field: only rows whose field equals the caller's id (never for anonymous).
            context_fields: a list of fields that must equal ``ctx.context[field]`` (a list value
                means IN), or a dict from row field to context key. A missing key denies.
            where: ``lambda ctx: <SQLAlchemy boolean expression on the model>``.

        Raises:
            ConfigurationError: unknown action or field, or ``model`` is not a table.
        """
        self.policy.add(model, actions=actions, role=role, owner_field=owner_field,
                        context_fields=context_fields, where=where)

    def explain(
        self,
        ctx: AuthContext,
        action: str,
        model: type[Any],
        row: Mapping[str, Any] | Any | None = None,
    ) -> Explanation:
        """Which rule allows ``ctx`` to ``action`` ``model`` (or one ``row``), or why none does.

        ``row`` may be a model instance or a mapping of column values.
        """
        if row is not None and not isinstance(row, Mapping):
            from .policy.enforcement import row_image

            row = row_image(row)
        return self.policy.explain(ctx, action, model, row)

    def subscribe(self, model: type[Any]) -> Callable[[ChangeHandler], ChangeHandler]:
        """Register a handler called after each committed change to ``model``.

        The handler (async or plain) gets a change with ``event`` ("INSERT", "UPDATE",
        "DELETE"), ``payload`` (a model instance) and ``old`` (the previous values or None).
        """
        return self.handlers.register(model)

    # -- sessions ---------------------------------------------------------------------------

    def get_db_dependency(self) -> Callable[..., AsyncIterator[AsyncSession]]:
        """A FastAPI dependency yielding an AsyncSession that acts as the request's user."""
        return self._db_dependency

    def get_session(self, ctx: AuthContext) -> AsyncSession:
        """A session acting as ``ctx``: reads are filtered and writes checked by the policy.

        Use as ``async with cape.get_session(AuthContext(id="u1")) as session: ...``.
        """
        if not isinstance(ctx, AuthContext):
            raise ConfigurationError("get_session needs an AuthContext, e.g. AuthContext(id='u1')")
        return open_session(self._sessions, self.policy, ctx, self.hub)

    def get_privileged_session(self) -> AsyncSession:
        """A session that bypasses the policy (changes are still captured).

        Use as ``async with cape.get_privileged_session() as session: ...``.
        """
        return open_session(self._sessions, self.policy, None, self.hub)

    # -- lifecycle --------------------------------------------------------------------------

    async def startup(self) -> None:
        """Create tables (unless disabled) and start the realtime hub. Called by the lifespan.

        Raises:
            ConfigurationError: the built-in auth has a placeholder secret or admin password
                and is not in development mode.
        """
        move_routes_last(self.app, self._own_routes())
        if self.auth is not None:
            self.auth.check_settings()
        check_resume_secret(
            self.realtime_config, dev=self.auth is not None and self.auth.config.dev
        )
        for warning in unsafe_settings(self._published, self.policy, self._metrics_config):
            if warning not in self._warned:  # once per CapeBase, not at every restart
                self._warned.add(warning)
                logger.warning("%s", warning)
        if self.create_tables:
            added = await create_all(
                self.engine, [changelog_metadata, *self._metadatas()], then=add_missing_columns
            )
            if added:
                logger.info("capebase: added %s to capebase_changes", ", ".join(added))
        await require_schema(
            self.engine, self._served_models(), own_tables=not self.create_tables
        )
        if self.auth is not None:
            await self.auth.startup()
        await self.hub.start()
        self._started = True

    async def shutdown(self) -> None:
        """Close streams, stop background work and dispose of the engine (lifespan hook)."""
        self._started = False
        await self.hub.stop()
        if self.direct is not None:
            self.direct.close()
        await self.engine.dispose()
        release_abandoned_statements(self.engine)

    def _served_models(self) -> list[type[Any]]:
        """The models capebase reads or writes: published, named by a rule, or handled."""
        return [*self._published, *self.policy.models(), *self.handlers.models()]

    def _own_routes(self) -> list[Any]:
        return [*self._batch_routes, *(r for rs in self._generated_routes.values() for r in rs)]

    def _metadatas(self) -> list[MetaData]:
        found: list[MetaData] = [SQLModel.metadata]
        for model in self._served_models():
            metadata = model.__table__.metadata
            if all(metadata is not m for m in found):
                found.append(metadata)
        return found


__all__ = ["CapeBase"]
