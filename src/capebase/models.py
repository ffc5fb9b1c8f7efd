"""Deprecated 0.1 alpha import path, an alias of ``capebase.model``: import from ``capebase``."""

from typing import Any

from ._moved import moved_name

# Each name is served by __getattr__, with its warning.
__all__ = ["FROM_AUTH_ID", "FROM_AUTH_ROLE", "AuthContext", "ModelChange", "from_context"]  # noqa: F822


def __getattr__(name: str) -> Any:
    return moved_name(__name__, name, __all__)
