"""A create body whose number overflows to infinity is a 422 naming the problem, not a 500:
pydantic's "missing" error quotes the whole body as its input, and JSON cannot carry an
infinity (final review of issue 16, finding 1)."""

from __future__ import annotations

import pytest

from capebase.testing import app_client
from tests.apps import make_cape
from tests.types._models import IntKeyed

# Every test twice: on the fast path, and on the reference (CrudConfig(fast_path=False)).
pytestmark = pytest.mark.usefixtures("fast_or_reference")

BODIES = {
    "known field": b'{"ratio": 1e400}',
    "unknown field": b'{"a": 1e999999}',
    "inside a list": b'{"a": [1, -1e400]}',
}


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
async def test_an_infinite_number_in_a_create_body_is_a_422(db_url: str, body: bytes) -> None:
    app, cape = make_cape(db_url)
    cape.publish(IntKeyed)
    cape.permission_required(IntKeyed, role="*", actions=["*"])
    async with app_client(app) as client:
        response = await client.post(
            "/types_int", content=body,
            headers={"X-User": "u", "Content-Type": "application/json"},
        )
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(error["type"] == "missing" for error in errors)
    assert "inf" in response.text  # the input, as text
