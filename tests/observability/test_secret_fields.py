"""Secret fields never reach the change log (audit, streams, handlers) or generated reads."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select, update

from capebase import AuthContext
from capebase.changes.changelog import changes
from capebase.observability import is_secret
from capebase.realtime.subscribers import CLOSE
from capebase.testing import app_client
from tests.observability._app import Account, make_app, who
from tests.realtime._live import dispatched, wait_until

ADMIN = who("root", "admin")
SECRETS = {"password_hash", "api_key"}


async def test_secret_fields_are_kept_out_of_everything_read(db_url: str) -> None:
    app, cape = make_app(db_url, audit=True)
    handled: list[Any] = []

    @cape.subscribe(Account)
    async def remember(change: Any) -> None:
        handled.append(change)

    async with app_client(app) as client:
        stream = cape.hub.add_subscriber(
            cape.hub.views["obs_account"], AuthContext(id="root", role="admin"), []
        )
        created = await client.post(
            "/obs_account",
            json={"email": "a@x", "password_hash": "argon2$s3cret", "api_key": "key-123"},
            headers=ADMIN,
        )
        assert created.status_code == 201, created.text
        account = created.json()
        assert set(account) == {"id", "email"}
        changed = await client.patch(
            f"/obs_account/{account['id']}", json={"password_hash": "argon2$n3w"}, headers=ADMIN
        )
        assert changed.status_code == 200 and set(changed.json()) == {"id", "email"}
        listed = (await client.get("/obs_account", headers=ADMIN)).json()
        fetched = (await client.get(f"/obs_account/{account['id']}", headers=ADMIN)).json()
        assert listed == [fetched] == [{"id": account["id"], "email": "a@x"}]
        # Bulk statements too.
        async with cape.get_session(AuthContext(id="root", role="admin")) as session:
            await session.execute(
                insert(Account), [{"email": "b@x", "password_hash": "h", "api_key": "k"}]
            )
            await session.execute(update(Account).values(api_key="rotated"))
            await session.commit()
        await dispatched(cape)
        await wait_until(lambda: len(handled) == 5, what="five handled changes")
        audit = (await client.get("/_capebase/audit", headers=ADMIN)).json()

        # The values were stored: they are secret, not lost.
        async with cape.get_privileged_session() as session:
            stored = await session.get(Account, account["id"])
            assert stored is not None and stored.password_hash == "argon2$n3w"
            assert stored.api_key == "rotated"
        async with cape.engine.connect() as connection:
            log = (await connection.execute(select(changes.c.old, changes.c.new))).all()
        # Leave nothing behind: FastAPI's dependency caches keep old apps (so hubs) alive.
        cape.hub.remove_subscriber(stream)

    # The change log itself holds no secret value, so nothing built from it can.
    text = json.dumps([list(row) for row in log])
    for value in ("argon2$s3cret", "argon2$n3w", "key-123", "rotated", '"h"', '"k"'):
        assert value not in text
    assert [e["op"] for e in audit] == ["UPDATE", "UPDATE", "INSERT", "UPDATE", "INSERT"]
    for entry in audit:
        for image in (entry["old"], entry["new"]):
            assert image is None or not SECRETS & set(image)
    # A change to a secret only is still on the record, without the values.
    secret_change = audit[3]
    assert secret_change["old"] == secret_change["new"] == {"id": account["id"], "email": "a@x"}

    messages = []
    while not stream.queue.empty():
        item = stream.queue.get_nowait()
        if item is not CLOSE:  # the hub closes every stream at shutdown
            messages.append(json.loads(item[1]))
    assert len(messages) == 5
    for message in messages:
        assert not SECRETS & set(message["payload"])
        assert message["old"] is None or not SECRETS & set(message["old"])
    for change in handled:
        assert not SECRETS & set(change.new or {})
        assert not SECRETS & set(change.old or {})


async def test_secret_fields_cannot_be_filtered_or_sorted_on(sqlite_url: str) -> None:
    app, _cape = make_app(sqlite_url)
    async with app_client(app) as client:
        await client.post("/obs_account", json={"email": "a", "password_hash": "abc"},
                          headers=ADMIN)
        for params in ({"password_hash": "abc"}, {"password_hash__startswith": "a"},
                       {"api_key__isnull": "true"}, {"order_by": "password_hash"}):
            response = await client.get("/obs_account", params=params, headers=ADMIN)
            assert response.status_code == 400, (params, response.text)
            assert "password_hash" not in response.json()["detail"].split(":")[-1]


async def test_the_openapi_read_schema_has_no_secrets(sqlite_url: str) -> None:
    app, _cape = make_app(sqlite_url)
    schemas = app.openapi()["components"]["schemas"]
    assert set(schemas["AccountRead"]["properties"]) == {"id", "email"}
    # They can still be written.
    assert set(schemas["AccountCreate"]["properties"]) >= SECRETS
    assert set(schemas["AccountUpdate"]["properties"]) >= SECRETS
    assert is_secret(Account.__table__.c.password_hash)
    assert is_secret(Account.__table__.c.api_key)
    assert not is_secret(Account.__table__.c.email)
