"""Resume tokens: the SSE ``id:`` a client sends back as ``Last-Event-ID``.

A token is the highest change id the client received, plus the ids below it that had not yet
committed when it was sent (``"41~38,39"``). Resuming replays everything after 41 and those
holes, so a change whose id was handed out early but committed late is neither lost nor sent
twice — on this process or any other sharing the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import QueryError

MAX_TOKEN_HOLES = 32


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a stream resumes: after ``last_id``, plus the listed ``holes`` below it."""

    last_id: int
    holes: tuple[int, ...] = ()

    @classmethod
    def parse(cls, raw: str) -> ResumePoint:
        """Parse ``"41"`` or ``"41~38,39"``.

        Raises:
            QueryError: 422 when the token is malformed.
        """
        head, _, tail = raw.strip().partition("~")
        try:
            last_id = int(head)
            holes = tuple(sorted({int(h) for h in tail.split(",") if h})) if tail else ()
        except ValueError as exc:
            raise QueryError(
                f"last_event_id must be a change id from this stream, got {raw[:40]!r}",
                is_invalid_value=True,
            ) from exc
        if last_id < 0 or any(h < 0 or h >= last_id for h in holes):
            raise QueryError("last_event_id is not a valid resume token", is_invalid_value=True)
        if len(holes) > MAX_TOKEN_HOLES:
            raise QueryError("last_event_id lists too many ids", is_invalid_value=True)
        return cls(last_id, holes)


def format_token(last_id: int, holes: Iterable[int]) -> str:
    """The token for a client that received up to ``last_id`` but not ``holes``.

    With more holes than fit, resume from just below the lowest: a few duplicates beat a loss.
    """
    pending = sorted(h for h in holes if h < last_id)
    if not pending:
        return str(last_id)
    if len(pending) > MAX_TOKEN_HOLES:
        return str(pending[0] - 1)
    return f"{last_id}~{','.join(map(str, pending))}"
