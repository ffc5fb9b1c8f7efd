"""Building a fresh FastAPI app with CapeBase for one test, and a header-based auth provider."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import FastAPI, Request

from capebase import AuthContext, CapeBase, CrudConfig

FAST_PATH = True
"""Whether ``make_cape`` lets the generated routes take their fast path (the ``fast_or_reference``
fixture of tests/conftest.py runs a module both ways)."""


async def header_auth(request: Request) -> AuthContext:
    """``X-User`` and ``X-Role`` headers → AuthContext; no ``X-User`` means anonymous."""
    return AuthContext(id=request.headers.get("X-User"), role=request.headers.get("X-Role"))


def as_user(user: str, role: str | None = None) -> dict[str, str]:
    """The headers that make a request act as ``user`` (with ``role``)."""
    headers = {"X-User": user}
    if role is not None:
        headers["X-Role"] = role
    return headers


def make_cape(db_url: str, **options: Any) -> tuple[FastAPI, CapeBase]:
    """A new FastAPI app and a CapeBase on ``db_url`` using ``header_auth``."""
    crud = options.pop("crud", None) or CrudConfig()
    options["crud"] = dataclasses.replace(crud, fast_path=crud.fast_path and FAST_PATH)
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth, **options)
    return app, cape
