"""Permission denials are counted by model and action, each exactly once."""

from __future__ import annotations

import pytest
from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from capebase import AuthContext, PermissionDeniedError
from capebase.testing import app_client
from tests.observability._app import Account, Note, make_app, scrape, who

DENIALS = "capebase_permission_denials_total"


async def test_route_denials_count_once(sqlite_url: str) -> None:
    app, _cape = make_app(sqlite_url, metrics=True)
    async with app_client(app) as client:
        created = await client.post("/obs_note", json={"title": "mine"}, headers=who("ann"))
        note = created.json()["id"]
        before = await scrape(client)
        # Checked by the route before any session work.
        assert (await client.post("/obs_account", json={"email": "e"}, headers=who("ann"))
                ).status_code == 403
        # Anonymous: 401, counted too.
        assert (await client.post("/obs_note", json={"title": "x"})).status_code == 401
        # Not the owner: the route's early check denies.
        assert (await client.patch(f"/obs_note/{note}", json={"title": "stolen"},
                                   headers=who("bob"))).status_code == 403
        assert (await client.delete(f"/obs_note/{note}", headers=who("bob"))).status_code == 403
        after = await scrape(client)

    def moved(**labels: str) -> float:
        return after.value(DENIALS, **labels) - before.value(DENIALS, **labels)

    assert moved(model="Account", action="create") == 1
    assert moved(model="Note", action="create") == 1
    assert moved(model="Note", action="update") == 1
    assert moved(model="Note", action="delete") == 1
    assert moved() == 4


async def test_a_flush_denial_inside_a_request_counts_once(sqlite_url: str) -> None:
    """Raised by the session at flush, then mapped to 403 by the HTTP handler: one denial."""
    app, cape = make_app(sqlite_url, metrics=True)

    @app.post("/steal/{note_id}")
    async def steal(
        note_id: int, session: AsyncSession = Depends(cape.get_db_dependency())
    ) -> None:
        note = await session.get(Note, note_id)
        assert note is not None
        note.owner_id = "thief"
        await session.commit()

    async with app_client(app) as client:
        note = (await client.post("/obs_note", json={"title": "t"}, headers=who("ann"))).json()
        before = await scrape(client)
        assert (await client.post(f"/steal/{note['id']}", headers=who("ann"))).status_code == 403
        after = await scrape(client)
    assert after.value(DENIALS, model="Note", action="update") - before.value(
        DENIALS, model="Note", action="update"
    ) == 1


async def test_denials_in_python_sessions_are_counted(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url, metrics=True)
    async with app_client(app) as client:
        async with cape.get_session(AuthContext(id="ann")) as session:
            session.add(Account(email="nope"))
            with pytest.raises(PermissionDeniedError):
                await session.commit()
        after = await scrape(client)
    assert after.value(DENIALS, model="Account", action="create") == 1


async def test_the_audit_endpoint_denials_are_counted(sqlite_url: str) -> None:
    app, _cape = make_app(sqlite_url, metrics=True, audit=True)
    async with app_client(app) as client:
        assert (await client.get("/_capebase/audit", headers=who("ann"))).status_code == 403
        after = await scrape(client)
    assert after.value(DENIALS, model="audit trail", action="read") == 1
