"""A prebuilt statement as the driver runs it: its SQL, its parameters in order with their bind
processors, and the result processors SQLAlchemy would apply (``DirectExecutor``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.types import Float, TypeDecorator, TypeEngine

from .._compat.sqlalchemy import result_processor
from .drivers import Row, Step


def _real_on_sqlite(
    type_: TypeEngine[Any], processor: Callable[[Any], Any] | None
) -> Callable[[Any], Any] | None:
    """SQLite keeps a whole REAL as an integer in the record, and ``RETURNING`` hands it back
    as one (``5`` for ``5.0``, ``0`` for ``-0.0``) where a ``SELECT`` gives a float: a float
    column's values are made floats again."""
    stored = type_.impl_instance if isinstance(type_, TypeDecorator) else type_
    if not isinstance(stored, Float) or processor is not None:
        return processor

    def as_float(value: Any) -> Any:
        return float(value) if type(value) is int else value

    return as_float


class Results:
    """How one compiled statement's raw result values become SQLAlchemy's: the result
    processors of its columns' types, worked out from the driver's type codes."""

    __slots__ = ("_active", "processors", "types")

    def __init__(self, types: Sequence[TypeEngine[Any]]) -> None:
        self.types = types
        self.processors: list[Callable[[Any], Any] | None] | None = None
        """None until the driver's column type codes are known."""
        self._active: tuple[tuple[int, Callable[[Any], Any]], ...] = ()

    def resolve(self, dialect: Any, type_codes: Sequence[Any] | None) -> None:
        codes = [None] * len(self.types) if type_codes is None else type_codes
        self.processors = [
            _real_on_sqlite(type_, result_processor(type_, dialect, code))
            if dialect.name == "sqlite"
            else result_processor(type_, dialect, code)
            for type_, code in zip(self.types, codes, strict=True)
        ]
        self._active = tuple(
            (index, processor)
            for index, processor in enumerate(self.processors)
            if processor is not None
        )

    def apply(self, rows: list[Row]) -> list[Row]:
        # Most columns (integers, text) need no processor: visit only those that do.
        active = self._active
        if not active:
            return rows
        processed: list[Row] = []
        for row in rows:
            values = list(row)
            for index, processor in active:
                values[index] = processor(values[index])
            processed.append(values)
        return processed


@dataclass(frozen=True, slots=True)
class Plan:
    """A prebuilt statement's SQL, parameters in order with their processors, the values
    fixed in it, and how to process its results."""

    sql: str
    positions: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    fixed: dict[str, Any]
    results: Results | None

    def bind(self, params: Mapping[str, Any] | None) -> Prepared:
        values = self.fixed if not params else {**self.fixed, **params}
        bound = [
            values[name] if processor is None else processor(values[name])
            for name, processor in self.positions
        ]
        return Prepared(self.sql, bound, self.results)


@dataclass(frozen=True, slots=True)
class Prepared:
    sql: str
    params: list[Any]
    results: Results | None

    def step(self) -> Step:
        """The fetching step, asking for column types while the processors are unknown."""
        describe = self.results is not None and self.results.processors is None
        return Step(self.sql, self.params, fetch=True, describe=describe)


