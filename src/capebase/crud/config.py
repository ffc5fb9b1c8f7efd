"""Settings of the generated REST routes."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError


@dataclass(frozen=True, kw_only=True, slots=True)
class CrudConfig:
    """Paging and filter limits of the generated list routes.

    Args:
        default_page_size: rows returned when ``limit`` is not given.
        max_page_size: the largest ``limit`` accepted (422 above it).
        max_in_values: the longest list ``field__in=`` / ``field__nin=`` accepts.
        fast_path: serve the generated routes the fast way: their statements on the
            database driver's own connection where the database allows it (the same rows,
            checks and change log as through SQLAlchemy, in fewer steps), and only the auth
            provider solved per request on the routes of one row and the list. ``False``
            sends every read through SQLAlchemy Core, every write through the caller's
            session, and every request through FastAPI's own parameter solving: the
            reference the fast path is tested against.
        batch_path: the path of the batch route, which runs creates, updates and deletes
            of the published models in one transaction (``None``: no batch route).
    """

    default_page_size: int = 100
    max_page_size: int = 1000
    max_in_values: int = 500
    fast_path: bool = True
    batch_path: str | None = "/_capebase/batch"

    def __post_init__(self) -> None:
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise ConfigurationError(
                "CrudConfig needs 1 <= default_page_size <= max_page_size, got "
                f"{self.default_page_size} and {self.max_page_size}"
            )
        if self.max_in_values < 1:
            raise ConfigurationError("CrudConfig.max_in_values must be at least 1")
        if self.batch_path is not None and not self.batch_path.startswith("/"):
            raise ConfigurationError(
                f"CrudConfig.batch_path must start with '/', got {self.batch_path!r} "
                "(None: no batch route)"
            )
