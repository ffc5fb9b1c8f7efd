"""Seed import path: ``from capebase.model import AuthContext``."""

from .auth import FROM_AUTH_ID, FROM_AUTH_ROLE, AuthContext, from_context
from .realtime import ModelChange

__all__ = ["FROM_AUTH_ID", "FROM_AUTH_ROLE", "AuthContext", "ModelChange", "from_context"]
