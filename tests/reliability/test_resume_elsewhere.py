"""Resuming on a process whose dispatcher is behind the one that issued the token."""

from __future__ import annotations

from capebase import AuthContext, RealtimeConfig
from tests.realtime._live import serve

from ._app import PATH, Memo, make_app, who
from ._streams import StreamClient, wait_until

ALICE = AuthContext(id="alice")


async def test_a_token_from_a_process_ahead_resumes_without_reset_or_repeat(
    sqlite_url: str,
) -> None:
    """Regression (found by the soak): a client resuming on a process whose dispatcher had
    not yet reached its token got ``reset`` ("unknown" id), then those changes again."""
    ahead, ahead_cape = make_app(sqlite_url)
    # Woken only by its own commits and a 60 s poll: it stays behind until told to dispatch.
    behind, behind_cape = make_app(sqlite_url, realtime=RealtimeConfig(poll_interval=60))
    async with serve(ahead) as first, serve(behind) as second:
        stream = StreamClient(first.url, f"{PATH}/subscribe", "sse", who("root", role="admin"))
        await stream.connect()
        async with ahead_cape.get_session(ALICE) as session:
            session.add_all([Memo(body=f"m{n}") for n in range(5)])
            await session.commit()
        await wait_until(lambda: len(stream.messages) == 5, what="five changes")
        await stream.disconnect()
        assert behind_cape.hub.cursor < 5

        stream.base_url = second.url  # resume on the process that is behind
        await stream.connect()
        async with ahead_cape.get_session(ALICE) as session:
            session.add(Memo(body="m5"))
            await session.commit()
        await behind_cape.hub.dispatch_pending()  # it catches up: changes 1 to 6 go live
        await wait_until(lambda: len(stream.messages) >= 6, what="the sixth change")
        await stream.disconnect()
        assert stream.controls == []
        assert stream.ids == [1, 2, 3, 4, 5, 6]
        assert [m["payload"]["body"] for m in stream.messages] == [f"m{n}" for n in range(6)]
