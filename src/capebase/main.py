"""Deprecated 0.1 alpha import path (``from capebase.main import CapeBase``): import from
``capebase``."""

from typing import Any

from ._moved import moved_name

# Each name is served by __getattr__, with its warning.
__all__ = ["AuthContext", "CapeBase", "PermissionDeniedError"]  # noqa: F822


def __getattr__(name: str) -> Any:
    return moved_name(__name__, name, __all__)
