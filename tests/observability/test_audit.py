"""The audit trail: one row per committed change, the endpoint, history, request ids."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from capebase import AuditConfig, AuthContext, ConfigurationError
from capebase.changes.changelog import changes
from capebase.observability import AuditEntry, current_request_id, use_request_id
from capebase.realtime.config import RealtimeConfig
from capebase.testing import app_client
from tests.observability._app import Note, make_app, who

ANN = AuthContext(id="ann", role="user")


async def log_size(cape: object) -> int:
    async with cape.engine.connect() as connection:  # type: ignore[attr-defined]
        return (await connection.execute(select(func.count()).select_from(changes))).scalar_one()


async def test_one_row_per_committed_change_none_for_rolled_back(db_url: str) -> None:
    app, cape = make_app(db_url)
    async with app_client(app):
        # ORM unit of work, as a user.
        async with cape.get_session(ANN) as session:
            first, second = Note(title="first"), Note(title="second")
            session.add_all([first, second])
            await session.commit()
            first.title = "first, edited"
            await session.commit()
            await session.delete(second)
            await session.commit()
        # Bulk ORM statements, as the same user.
        async with cape.get_session(ANN) as session:
            await session.execute(insert(Note), [{"title": "bulk a"}, {"title": "bulk b"}])
            await session.execute(
                update(Note).where(Note.title.startswith("bulk")).values(done=True)
            )
            await session.execute(delete(Note).where(Note.title == "bulk b"))
            await session.commit()
        # A privileged session.
        async with cape.get_privileged_session() as session:
            session.add(Note(owner_id="system", title="by the system"))
            await session.commit()
        # Rolled back work leaves nothing, flushed or not.
        size = await log_size(cape)
        async with cape.get_session(ANN) as session:
            session.add(Note(title="flushed then rolled back"))
            await session.flush()
            await session.execute(insert(Note), [{"title": "bulk rolled back"}])
            await session.execute(update(Note).values(done=False))
            await session.rollback()
        assert await log_size(cape) == size

        entries = await cape.audit.query(table=Note, limit=100)
    assert await log_size(cape) == len(entries) == 10
    ops = Counter((entry.op, entry.actor_id) for entry in entries)
    assert ops == {
        ("INSERT", "ann"): 4,
        ("UPDATE", "ann"): 3,  # one ORM edit, two rows of the bulk update
        ("DELETE", "ann"): 2,
        ("INSERT", None): 1,
    }
    # Newest first; one row per (change), never two for the same change.
    assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)
    edit = next(e for e in entries if e.op == "UPDATE" and e.pk == first.id)
    assert edit.old is not None and edit.new is not None
    assert (edit.old["title"], edit.new["title"]) == ("first", "first, edited")
    assert edit.actor_role == "user"
    removed = next(e for e in entries if e.op == "DELETE" and e.pk == second.id)
    assert removed.new is None and removed.old is not None and removed.old["title"] == "second"


async def test_the_endpoint_is_for_admins_only(db_url: str) -> None:
    app, _cape = make_app(db_url, audit=True)
    async with app_client(app) as client:
        await client.post("/obs_note", json={"title": "a"}, headers=who("ann"))
        anonymous = await client.get("/_capebase/audit")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert (await client.get("/_capebase/audit", headers=who("ann"))).status_code == 403
        denied = await client.get("/_capebase/audit", headers=who("ann", role="user"))
        assert denied.status_code == 403
        allowed = await client.get("/_capebase/audit", headers=who("root", role="admin"))
    assert allowed.status_code == 200
    [entry] = allowed.json()
    assert set(entry) == {"id", "table", "pk", "op", "old", "new", "actor_id", "actor_role",
                          "timestamp", "request_id", "client_request_id"}
    assert (entry["table"], entry["op"], entry["actor_id"]) == ("obs_note", "INSERT", "ann")
    assert entry["new"]["title"] == "a" and entry["old"] is None


async def test_the_role_and_path_are_settings(sqlite_url: str) -> None:
    config = AuditConfig(role=["auditor", "security"], path="/admin/audit")
    app, _cape = make_app(sqlite_url, audit=config)
    async with app_client(app) as client:
        assert (await client.get("/admin/audit", headers=who("x", "admin"))).status_code == 403
        assert (await client.get("/admin/audit", headers=who("x", "auditor"))).status_code == 200
        assert (await client.get("/admin/audit", headers=who("x", "security"))).status_code == 200
        assert (await client.get("/_capebase/audit", headers=who("x", "admin"))).status_code == 404


async def test_the_endpoint_is_off_unless_asked_for(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url)
    async with app_client(app) as client:
        await client.post("/obs_note", json={"title": "a"}, headers=who("ann"))
        assert (await client.get("/_capebase/audit", headers=who("x", "admin"))).status_code == 404
        # The Python side reads the trail either way.
        assert [e.op for e in await cape.audit.query()] == ["INSERT"]


async def test_filters_and_paging(db_url: str) -> None:
    app, cape = make_app(db_url, audit=AuditConfig(default_page_size=2, max_page_size=3))
    admin = who("root", "admin")
    async with app_client(app) as client:
        for user in ("ann", "bob", "ann"):
            await client.post("/obs_note", json={"title": user}, headers=who(user))
        await client.post("/obs_account", json={"email": "e@x"}, headers=admin)
        await client.patch("/obs_note/1", json={"done": True}, headers=who("ann"))

        async def get(**params: object) -> list[dict[str, object]]:
            response = await client.get("/_capebase/audit", params=params, headers=admin)
            assert response.status_code == 200, response.text
            return list(response.json())

        assert len(await get()) == 2  # default_page_size
        assert (await client.get("/_capebase/audit", params={"limit": 4}, headers=admin)
                ).status_code == 422
        everything = await get(limit=3) + await get(limit=3, offset=3)
        assert [e["id"] for e in everything] == [5, 4, 3, 2, 1]
        assert [e["table"] for e in await get(table="obs_account")] == ["obs_account"]
        assert [(e["op"], e["pk"]) for e in await get(table="obs_note", pk="1")] == [
            ("UPDATE", 1), ("INSERT", 1)
        ]
        assert {e["actor_id"] for e in await get(actor="ann")} == {"ann"}
        assert len(await get(actor="ann", limit=3)) == 3
        assert await get(actor="nobody") == []
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        assert await get(since=future) == []
        assert await get(until=past) == []
        assert len(await get(since=past, until=future, limit=3)) == 3
        naive_past = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat()
        assert len(await get(since=naive_past, limit=3)) == 3  # naive datetimes are UTC
        assert (await client.get("/_capebase/audit", params={"since": "yesterday"},
                                 headers=admin)).status_code == 422
    entries = await cape.audit.query(table="obs_note", pk="1", actor="ann")
    assert [e.op for e in entries] == ["UPDATE", "INSERT"]
    assert all(isinstance(e, AuditEntry) and e.timestamp.tzinfo is not None for e in entries)


async def test_history_of_one_row_oldest_first(db_url: str) -> None:
    app, cape = make_app(db_url)
    async with app_client(app) as client:
        note = (await client.post("/obs_note", json={"title": "v1"}, headers=who("ann"))).json()
        await client.post("/obs_note", json={"title": "another row"}, headers=who("ann"))
        await client.patch(f"/obs_note/{note['id']}", json={"title": "v2"}, headers=who("ann"))
        await client.patch(f"/obs_note/{note['id']}", json={"done": True}, headers=who("ann"))
        await client.delete(f"/obs_note/{note['id']}", headers=who("ann"))
        history = await cape.audit.history(Note, note["id"])
        assert [e.op for e in history] == ["INSERT", "UPDATE", "UPDATE", "DELETE"]
        assert [e.id for e in history] == sorted(e.id for e in history)
        assert [(e.new or {}).get("title") for e in history] == ["v1", "v2", "v2", None]
        assert await cape.audit.history(Note, str(note["id"])) == history
        assert await cape.audit.history("obs_note", note["id"]) == history
        assert await cape.audit.history(Note, 999) == []
    with pytest.raises(ConfigurationError, match="not a table model"):
        await cape.audit.history(AuditEntry, 1)


async def test_changes_carry_the_request_id(sqlite_url: str) -> None:
    """The server's own id is the request id; what a client sends in X-Request-ID is recorded
    apart as the client's (issue 16, item 9: it was stored as the request id)."""
    app, cape = make_app(sqlite_url)
    async with app_client(app) as client:
        sent = await client.post(
            "/obs_note", json={"title": "a"}, headers={**who("ann"), "X-Request-ID": "req-42"}
        )
        generated = await client.post("/obs_note", json={"title": "b"}, headers=who("ann"))
        async with cape.get_session(ANN) as session:
            session.add(Note(title="d, from a job"))
            await session.commit()
        with use_request_id("nightly-7"):
            assert current_request_id() == "nightly-7"
            async with cape.get_privileged_session() as session:
                session.add(Note(owner_id="job", title="e"))
                await session.commit()
        assert current_request_id() is None
        entries = await cape.audit.query()
    by_title = {(e.new or {})["title"]: e for e in entries}
    assert sent.headers["x-request-id"] == by_title["a"].request_id != "req-42"
    assert by_title["a"].client_request_id == "req-42"
    assert generated.headers["x-request-id"] == by_title["b"].request_id
    assert by_title["b"].client_request_id is None
    ids = {by_title[t].request_id for t in "ab"}
    assert all(i is not None and len(i) == 32 for i in ids) and len(ids) == 2
    assert by_title["d, from a job"].request_id is None
    assert by_title["e"].request_id == "nightly-7"
    assert by_title["e"].client_request_id is None
    with pytest.raises(ValueError, match="request id"), use_request_id("no spaces allowed"):
        pass


async def test_a_change_log_from_an_older_release_gains_the_client_request_id(
    db_url: str,
) -> None:
    """``capebase_changes`` created before ``client_request_id`` existed: create_tables=True
    adds the column at startup; create_tables=False names it instead of failing every write."""
    app, cape = make_app(db_url)
    async with app_client(app), cape.engine.begin() as connection:
        await connection.execute(
            text("ALTER TABLE capebase_changes DROP COLUMN client_request_id")
        )
    app, cape = make_app(db_url, create_tables=False)
    with pytest.raises(ConfigurationError, match=r"capebase_changes\.client_request_id"):
        async with app_client(app):
            pass
    app, cape = make_app(db_url)
    async with app_client(app) as client:
        response = await client.post(
            "/obs_note", json={"title": "t"}, headers={**who("ann"), "X-Request-ID": "mine"}
        )
        assert response.status_code == 201, response.text
        [entry] = await cape.audit.query()
    assert (entry.client_request_id, entry.request_id) == ("mine", response.headers["x-request-id"])


async def test_audit_retention_keeps_changes_until_both_windows_pass(sqlite_url: str) -> None:
    """The change log is pruned once RealtimeConfig.retention and AuditConfig.retention passed."""
    realtime = RealtimeConfig(retention=timedelta(days=1))
    audited_app, audited = make_app(
        sqlite_url, realtime=realtime, audit=AuditConfig(retention=timedelta(days=30))
    )
    assert audited.hub.config.retention == timedelta(days=30)
    assert audited.realtime_config.retention == timedelta(days=1)
    _, shorter = make_app(
        sqlite_url, realtime=realtime, audit=AuditConfig(retention=timedelta(hours=1))
    )
    assert shorter.hub.config.retention == timedelta(days=1)
    _, plain = make_app(sqlite_url, realtime=realtime)
    assert plain.hub.config.retention == timedelta(days=1)

    async with app_client(audited_app):
        for age in (2, 10, 40):
            async with audited.get_privileged_session() as session:
                session.add(Note(owner_id="x", title=f"{age} days old"))
                await session.commit()
            async with audited.engine.begin() as connection:
                await connection.execute(
                    update(changes)
                    .where(changes.c.id == select(func.max(changes.c.id)).scalar_subquery())
                    .values(created_at=datetime.now(UTC) - timedelta(days=age))
                )
        await audited.hub.prune()
        assert sorted((e.new or {})["title"] for e in await audited.audit.query()) == [
            "10 days old", "2 days old"
        ]
        await plain.hub.prune()  # the same database, with the realtime window only
        assert await plain.audit.query() == []
    await plain.engine.dispose()
    await shorter.engine.dispose()


def test_bad_audit_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="role"):
        AuditConfig(role=[])
    with pytest.raises(ConfigurationError, match="start with '/'"):
        AuditConfig(path="audit")
    with pytest.raises(ConfigurationError, match="retention"):
        AuditConfig(retention=timedelta(0))
    with pytest.raises(ConfigurationError, match="page_size"):
        AuditConfig(default_page_size=10, max_page_size=5)
    assert AuditConfig(role="auditor").roles == {"auditor"}
