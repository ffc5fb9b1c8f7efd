"""Keeping credentials that streams carry in their URL out of the server's log.

``EventSource`` cannot send headers, so a stream's URL may carry ``?access_token=`` (or a
single-use ``?ticket=``). uvicorn writes every request's path with its query string to
``uvicorn.access`` (and a WebSocket's to ``uvicorn.error``); capebase adds ``RedactCredentials``
to both loggers, so that the log shows ``access_token=[redacted]``.
"""

from __future__ import annotations

import logging
import re

REDACTED_PARAMETERS = ("access_token", "ticket")
LOGGERS = ("uvicorn.access", "uvicorn.error")
_CREDENTIAL = re.compile(r"([?&](?:access_token|ticket)=)[^&#\s\"]*")


def redact(text: str) -> str:
    """``text`` with the values of ``?access_token=`` and ``?ticket=`` replaced."""
    return _CREDENTIAL.sub(r"\1[redacted]", text)


class RedactCredentials(logging.Filter):
    """A logging filter that redacts stream credentials from a record's arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(
            isinstance(arg, str) and "=" in arg for arg in args
        ):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in args)
        elif isinstance(record.msg, str) and "=" in record.msg and not args:
            record.msg = redact(record.msg)
        return True


def install_redaction() -> None:
    """Add ``RedactCredentials`` to uvicorn's loggers (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())
