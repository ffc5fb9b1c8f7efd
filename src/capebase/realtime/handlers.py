"""Server-side change handlers registered with ``@cape.subscribe(Model)``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Table

from ..changes.change import ModelChange

ChangeHandler = Callable[[ModelChange[Any]], Awaitable[None] | None]


class HandlerRegistry:
    """The handlers of each model, in registration order."""

    def __init__(self) -> None:
        self._handlers: dict[type[Any], list[ChangeHandler]] = defaultdict(list)

    def register(self, model: type[Any]) -> Callable[[ChangeHandler], ChangeHandler]:
        """Decorator adding a handler for ``model``'s changes."""
        from ..db.mapping import require_plain_columns
        from ..errors import ConfigurationError, NotATableError

        if not isinstance(getattr(model, "__table__", None), Table):
            raise NotATableError(
                f"Model {getattr(model, '__name__', model)} is not a SQLModel table model: "
                "subscribe() takes a class declared with `class X(SQLModel, table=True)`"
            )

        require_plain_columns(model, "subscribe to")

        def decorate(handler: ChangeHandler) -> ChangeHandler:
            if not callable(handler):
                raise ConfigurationError("@cape.subscribe(Model) decorates a function")
            self._handlers[model].append(handler)
            return handler

        return decorate

    def for_model(self, model: type[Any]) -> list[ChangeHandler]:
        """The handlers of ``model``."""
        return self._handlers.get(model, [])

    def models(self) -> list[type[Any]]:
        """Models that have at least one handler."""
        return [model for model, handlers in self._handlers.items() if handlers]
