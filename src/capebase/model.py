"""Deprecated seed import path (``from capebase.model import AuthContext``): import from
``capebase``."""

from typing import Any

from ._moved import moved_name

__all__ = ["FROM_AUTH_ID", "FROM_AUTH_ROLE", "AuthContext", "ModelChange", "from_context"]


def __getattr__(name: str) -> Any:
    return moved_name(__name__, name, __all__)
