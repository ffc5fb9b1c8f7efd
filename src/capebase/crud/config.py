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
        driver_path: run the generated routes' statements on the database driver's own
            connection where the database allows it (asyncpg, aiosqlite): the same rows,
            checks and change log as through SQLAlchemy, in fewer steps. ``False`` sends every
            read and write through SQLAlchemy (Core for reads, the caller's session for
            writes), the reference path the driver path is tested against.
    """

    default_page_size: int = 100
    max_page_size: int = 1000
    max_in_values: int = 500
    driver_path: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise ConfigurationError(
                "CrudConfig needs 1 <= default_page_size <= max_page_size, got "
                f"{self.default_page_size} and {self.max_page_size}"
            )
        if self.max_in_values < 1:
            raise ConfigurationError("CrudConfig.max_in_values must be at least 1")
