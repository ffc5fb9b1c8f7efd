"""0.1 alpha import path: ``from capebase.main import CapeBase``."""

from .app import CapeBase
from .auth import AuthContext
from .errors import PermissionDeniedError

__all__ = ["AuthContext", "CapeBase", "PermissionDeniedError"]
