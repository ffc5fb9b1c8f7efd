"""The audit trail answers hostile query values with a 4xx or an empty page, never a 500
(final review of issue 16, finding 3): offsets at the edge of a datetime's range, integer keys
longer than Python reads, JSON nested deeper than it parses, offsets past 64 bits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from capebase import AuditConfig
from capebase.testing import app_client
from tests.apps import make_cape
from tests.observability._app import make_app, who
from tests.types._models import IntKeyed

ADMIN = {"X-User": "root", "X-Role": "admin"}
HOSTILE = {
    "since at the range's start": ({"since": "0001-01-01T00:00:00+01:00"}, 200),
    "until at the range's end": ({"until": "9999-12-31T23:59:59-01:00"}, 200),
    "a key of 5000 digits": ({"pk": "1" * 5000}, 200),
    "a key of deeply nested JSON": ({"pk": "[" * 3000 + "]" * 3000}, 200),
    "an offset past 64 bits": ({"offset": str(2**64)}, 422),
}


@pytest.mark.parametrize(("params", "status"), list(HOSTILE.values()), ids=list(HOSTILE))
async def test_hostile_audit_queries_never_fail(
    db_url: str, params: dict[str, str], status: int
) -> None:
    app, cape = make_cape(db_url, audit=AuditConfig())
    cape.publish(IntKeyed)
    cape.permission_required(IntKeyed, role="*", actions=["*"])
    async with app_client(app) as client:
        response = await client.get("/_capebase/audit", params=params, headers=ADMIN)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == []


async def test_the_python_query_takes_the_edges_of_time(db_url: str) -> None:
    app, cape = make_app(db_url, audit=AuditConfig())
    async with app_client(app) as client:
        created = await client.post("/obs_note", json={"title": "t"}, headers=who("alice"))
        assert created.status_code == 201, created.text
        start = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
        end = datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-1)))
        everything = await cape.audit.query()
        assert len(everything) == 1
        assert await cape.audit.query(since=start) == everything
        assert await cape.audit.query(until=end) == everything
