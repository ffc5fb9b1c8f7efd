import asyncio
from tests.realtime._app import make_app, who, Task
from tests.realtime._live import serve, sse, ws, dispatched
import httpx

async def test_scratch(sqlite_url):
    app, cape = make_app(sqlite_url, heartbeat=0.3)
    async with serve(app) as live:
        async with sse(live, who("alice")) as a, ws(live, who("alice")) as b, ws(live, who("alice"), bogus=1) as c, sse(live, who("alice"), bogus=1) as d:
            async with httpx.AsyncClient(base_url=live.url) as client:
                r = await client.post("/rt_task", json={"title": "t1"}, headers=who("alice"))
                assert r.status_code == 201
            await a.wait_for_title("t1"); await b.wait_for_title("t1")
            await asyncio.sleep(1)
            print(a, b, c, d, sep="\n")
            async with sse(live, who("alice")) as e, ws(live, who("alice")) as f:
                await live.stop()
                await asyncio.wait_for(e.ended.wait(), 5)
                await asyncio.wait_for(f.ended.wait(), 5)
                print(e, f, sep="\n")
