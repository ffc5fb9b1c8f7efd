"""Field selection: ``?select=id,title`` names the fields a list, a row or a stream returns."""

from __future__ import annotations

from collections.abc import Collection

from ..errors import QueryError


def parse_select(raw: str | None, fields: Collection[str]) -> set[str] | None:
    """The fields ``select=raw`` asks for (``None``: every field), each one of ``fields``
    (the model's non-secret columns, so a secret field is unknown here as in filters).

    Raises:
        QueryError: 400 for an unknown field, or a selection naming none.
    """
    if raw is None:
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not names:
        raise QueryError("select names no field; use select=field,field,...")
    for name in names:
        if name not in fields:
            raise QueryError(
                f"Unknown select field {name!r}; fields: {', '.join(fields)}"
            )
    return set(names)
