"""What an auth provider is: a FastAPI dependency returning an AuthContext."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .context import AuthContext

AuthProvider = Callable[..., AuthContext | Awaitable[AuthContext]]
"""Any FastAPI dependency (sync or async, may itself use ``Depends``) returning an AuthContext."""


async def anonymous() -> AuthContext:
    """The provider used when none is given: every caller is anonymous."""
    return AuthContext()


def check_provider(provider: Any) -> AuthProvider:
    """Reject something that cannot be a provider, at construction rather than first request."""
    from ..errors import ConfigurationError

    if not callable(provider):
        raise ConfigurationError(
            "get_auth_context must be a callable FastAPI dependency returning an AuthContext, "
            f"got {type(provider).__name__}"
        )
    return provider  # type: ignore[no-any-return]
