"""Resource limits: the settings that bound what one request may cost, and the filter count
guard (the body size guard is ``http.body_limit``).

Each limit has a safe default and answers with a clear 4xx (or a named 5xx for the database):

- page size: ``CrudConfig.max_page_size`` (422 above it);
- values in ``__in`` / ``__nin``: ``CrudConfig.max_in_values`` (422);
- filters per list request or stream: ``LimitsConfig.max_filters`` (422);
- conditions per list request or stream, in groups too: ``LimitsConfig.max_filter_terms`` (400);
- nesting of filter groups: ``LimitsConfig.max_filter_depth`` (400);
- relations one list or get request expands: ``LimitsConfig.max_expand`` (400), one level
  deep (a nested ``expand=project.owner`` is a 400);
- related rows per parent row of a to-many expand: ``LimitsConfig.max_expand_limit`` (400);
- request body size: ``LimitsConfig.max_body_size`` (413);
- rows of one bulk create, operations of one batch: ``LimitsConfig.max_batch_size`` (413);
- open streams per process: ``RealtimeConfig.max_subscriptions`` (429, WebSocket close 1013);
- open streams per client: ``RealtimeConfig.max_subscriptions_per_client`` (429 / 1013);
- one SQL statement's run time: ``LimitsConfig.statement_timeout`` (504);
- waiting for a pooled connection or a new one: ``LimitsConfig.pool_timeout`` and
  ``connect_timeout`` (503 with ``Retry-After``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ConfigurationError, QueryError

DEFAULT_MAX_FILTER_TERMS = 50
DEFAULT_MAX_FILTER_DEPTH = 4


@dataclass(frozen=True, kw_only=True, slots=True)
class LimitsConfig:
    """Limits on what one request may cost, and how long capebase waits for the database.

    Args:
        max_filters: the most ``?field__op=value`` filters one list request or stream may
            carry (422 above it); a group (``or=(...)``) counts as one.
        max_filter_terms: the most conditions one list request or stream may carry, those
            inside groups included (400 above it).
        max_filter_depth: how deep groups may nest: ``or=(a=1,b=2)`` is 1 level,
            ``or=(a=1,and(b=2,c=3))`` 2 (400 above it).
        max_expand: the most relations one list or get request may expand
            (``expand=project,comments``; 400 above it).
        expand_limit: the related rows each row gets from a to-many expand that names no
            limit (``expand=comments``).
        max_expand_limit: the largest per-row limit a to-many expand may ask for
            (``expand=comments(limit=50)``; 400 above it).
        max_body_size: the largest request body, in bytes, any route of the app accepts
            (413 above it), whether or not the client sends ``Content-Length``. ``None``
            turns the guard off (when a proxy enforces a limit). A route's own FastAPI
            ``max_body_size=`` takes precedence over it, larger or smaller.
        max_batch_size: the most rows one bulk create (``POST /todo`` with an array) and the
            most operations one batch (``POST /_capebase/batch``) may carry (413 above it).
        statement_timeout: seconds one SQL statement may run before the database cancels
            it (the request gets 504). PostgreSQL (``statement_timeout``) and MariaDB
            (``max_statement_time``) enforce it; MySQL enforces it on SELECTs only
            (``max_execution_time``); SQLite has no such setting. ``None``: no timeout.
        connect_timeout: seconds to wait for a new database connection (503 after it).
        pool_timeout: seconds a request waits for a free pooled connection (503 after it).
        retry_after: the ``Retry-After`` seconds sent with a 503 while the database is
            unreachable.
    """

    max_filters: int = 32
    max_filter_terms: int = DEFAULT_MAX_FILTER_TERMS
    max_filter_depth: int = DEFAULT_MAX_FILTER_DEPTH
    max_expand: int = 4
    expand_limit: int = 10
    max_expand_limit: int = 100
    max_body_size: int | None = 1024 * 1024
    max_batch_size: int = 100
    statement_timeout: float | None = 30.0
    connect_timeout: float = 10.0
    pool_timeout: float = 10.0
    retry_after: int = 5

    def __post_init__(self) -> None:
        if self.max_filters < 1:
            raise ConfigurationError("LimitsConfig.max_filters must be at least 1")
        for name in ("max_filter_terms", "max_filter_depth", "max_batch_size", "max_expand",
                     "expand_limit"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"LimitsConfig.{name} must be at least 1")
        if self.max_expand_limit < self.expand_limit:
            raise ConfigurationError(
                "LimitsConfig needs expand_limit <= max_expand_limit, got "
                f"{self.expand_limit} and {self.max_expand_limit}"
            )
        if self.max_body_size is not None and self.max_body_size < 1:
            raise ConfigurationError(
                "LimitsConfig.max_body_size must be a positive number of bytes, or None to "
                "turn the body-size guard off"
            )
        if self.statement_timeout is not None and self.statement_timeout <= 0:
            raise ConfigurationError(
                "LimitsConfig.statement_timeout must be positive (seconds), or None for none"
            )
        for name in ("connect_timeout", "pool_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"LimitsConfig.{name} must be positive (seconds)")
        if self.retry_after < 0:
            raise ConfigurationError("LimitsConfig.retry_after must be 0 or more (seconds)")


def check_filter_count(
    params: Iterable[tuple[str, str]], *, ignored: Iterable[str], limit: int
) -> None:
    """Refuse a query string with more than ``limit`` filters (parameters not in ``ignored``).

    Raises:
        QueryError: 422, naming the limit.
    """
    skip = frozenset(ignored)
    count = sum(1 for key, _ in params if key not in skip)
    if count > limit:
        raise QueryError(
            f"Too many filters: {count} given, at most {limit} (LimitsConfig.max_filters)",
            is_invalid_value=True,
        )
