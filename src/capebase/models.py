"""0.1 alpha import path, kept as an alias of ``capebase.model``."""

from .model import FROM_AUTH_ID, FROM_AUTH_ROLE, AuthContext, ModelChange, from_context

__all__ = ["FROM_AUTH_ID", "FROM_AUTH_ROLE", "AuthContext", "ModelChange", "from_context"]
