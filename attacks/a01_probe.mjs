// Quick probes of list/live semantics vs the server (SQLite).
import { startServer, signedIn, client, schema, expect, done, sleep, eventually } from "./harness.mjs";
const server = await startServer({ env: process.env.TS_APP_DB ? { TS_APP_DB: process.env.TS_APP_DB } : {} });
try {
  const alice = await signedIn(server.url, "alice");
  const r = alice.from("reading");
  for (const [label, kind] of [["a", "temperature"], ["b", "humidity"], ["c", "temperature"]]) await r.create({ label, kind });
  const byKind = await r.list({ orderBy: ["kind", "label"] });
  console.log("server order by kind:", byKind.map((x) => `${x.kind}/${x.label}`).join(" "));
  const live = alice.live("reading", { orderBy: ["kind", "label"], limit: 10 });
  await live.ready;
  await r.create({ label: "d", kind: "humidity" });
  await sleep(500);
  const fresh = await r.list({ orderBy: ["kind", "label"], limit: 10 });
  expect(JSON.stringify(live.rows.map((x) => x.label)) === JSON.stringify(fresh.map((x) => x.label)), "live order by enum equals a fresh fetch", `live ${live.rows.map((x) => x.label)} fresh ${fresh.map((x) => x.label)}`);
  live.close();
} finally { await server.close(); }
done();
