"""Deprecated 0.1 alpha import path (``from capebase.main import CapeBase``): import from
``capebase``."""

from typing import Any

from ._moved import moved_name

__all__ = ["AuthContext", "CapeBase", "PermissionDeniedError"]


def __getattr__(name: str) -> Any:
    return moved_name(__name__, name, __all__)
