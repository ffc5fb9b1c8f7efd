"""Bodies that carry several rows (a bulk create's array, a batch's operations): each row is
validated exactly as the body of its single route (``lean.validated_body``), from its own
JSON text, and its errors are located inside the whole body."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from ..errors import BatchError
from ..wire.grammar import ExactDecimals
from .lean import validated_body

JSON_WHITESPACE = b" \t\r\n"


def is_json_array(body: bytes) -> bool:
    """Whether ``body`` (JSON text) is an array rather than an object."""
    return body.lstrip(JSON_WHITESPACE)[:1] == b"["


def parsed_json(body: bytes) -> Any:
    """``body`` parsed, its numbers with a fraction or exponent kept as ``Decimal`` so that
    ``exact_json`` writes each one again as it was sent.

    Raises:
        RequestValidationError: 422, the body is not JSON (or nests too deeply to read).
    """
    try:
        return json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RequestValidationError([{
            "type": "json_invalid", "loc": ("body",), "msg": f"Invalid JSON: {exc}",
            "input": {},
        }]) from None


def exact_json(value: Any) -> bytes:
    """``value`` (from ``parsed_json``) as JSON text again, each number as it was sent."""
    return _dump(value).encode()


def _dump(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)  # the digits as sent: 12345678901234567890.5 stays that
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return json.dumps(value)


def validated_item(
    schema: type[BaseModel], exact: ExactDecimals | None, item: Any, at: tuple[Any, ...]
) -> BaseModel:
    """``item`` (one row of a parsed body, at ``at`` in it) validated as ``schema``'s body.

    Raises:
        RequestValidationError: 422, each error's ``loc`` ``("body", *at, ...)``.
    """
    try:
        text = exact_json(item)
    except RecursionError:
        raise RequestValidationError([{
            "type": "json_invalid", "loc": ("body", *at), "msg": "Invalid JSON: nested too deeply",
            "input": {},
        }]) from None
    try:
        return validated_body(schema, exact, text)
    except RequestValidationError as exc:
        raise relocated(exc, at) from None


def relocated(exc: RequestValidationError, at: tuple[Any, ...]) -> RequestValidationError:
    """``exc`` with each error's ``loc`` moved from ``("body", ...)`` to
    ``("body", *at, ...)``: the place of its row in the whole body."""
    errors = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        rest = loc[1:] if loc[:1] == ("body",) else loc
        errors.append({**error, "loc": ("body", *at, *rest)})
    return RequestValidationError(errors)


def check_batch_size(count: int, limit: int, what: str) -> None:
    """Refuse more than ``limit`` rows or operations.

    Raises:
        BatchError: 413, naming the limit.
    """
    if count > limit:
        raise BatchError(
            f"Too many {what}: {count} given, at most {limit} (LimitsConfig.max_batch_size)",
            is_too_large=True,
        )
