// The same filter on the stream (server-side, Python) and on the list (SQL) must pick the same
// rows, or a live query keeps rows a fresh fetch does not have: NULLs with ne/nin/lt, decimals,
// datetimes with offsets, empty strings.
import { startServer, signedIn, client, schema, expect, done, sleep } from "./harness.mjs";

const server = await startServer({ env: process.env.TS_APP_DB ? { TS_APP_DB: process.env.TS_APP_DB } : {} });
try {
  const alice = await signedIn(server.url, "alice");
  const viewer = client.createClient(server.url, { schema });
  const queries = {
    "note ne x": { note: { ne: "x" } },
    "note nin [x]": { note: { nin: ["x"] } },
    "score lt 3": { score: { lt: 3 } },
    "score ne 2": { score: { ne: 2 } },
    "amount eq 1": { amount: "1" },
    "amount in [1.5]": { amount: { in: ["1.50"] } },
    "taken_at gte (+01:00)": { taken_at: { gte: "2025-01-01T01:00:00+01:00" } },
    "taken_at eq Date": { taken_at: new Date("2025-01-01T00:00:00Z") },
    "label empty string": { label: "" },
    "label eq 'a,b'": { label: "a,b" },
    "label with __": { label: "x__gt" },
    "note eq 'null'": { note: "null" },
    "duration lt PT1H": { duration: { lt: "PT1H" } },
    "kind ne humidity": { kind: { ne: "humidity" } },
    "score gt 1e-7": { score: { gt: 1e-7 } },
    "score eq 0.1+0.2": { score: 0.30000000000000004 },
  };
  const lives = Object.fromEntries(Object.entries(queries).map(([name, where]) => [name, viewer.live("reading", { where, limit: 50 })]));
  await Promise.all(Object.values(lives).map((l) => l.ready));
  const r = alice.from("reading");
  const made = [];
  for (const v of [
    { label: "n1", note: null, score: null },
    { label: "n2", note: "x", score: 2 },
    { label: "n3", note: "y", score: 1 },
    { label: "n4", note: "null", amount: "1.00" },
    { label: "n5", amount: "1.5" },
    { label: "n6", taken_at: "2025-01-01T00:00:00Z" },
    { label: "n7", taken_at: "2025-01-01T00:00:00.000001Z" },
    { label: "" },
    { label: "a,b" },
    { label: "x__gt" },
    { label: "d1", duration: "PT30M" },
    { label: "d2", duration: "P1D" },
    { label: "d3", duration: "-PT1S" },
    { label: "f1", score: 1e-7 },
    { label: "f2", score: 0.30000000000000004 },
    { label: "f3", score: 0.3 },
  ]) made.push(await r.create(v));
  // Updates in and out
  await r.update(made[0].id, { note: "x" });
  await r.update(made[1].id, { note: null, score: null });
  await sleep(1500);
  for (const [name, where] of Object.entries(queries)) {
    const fresh = (await viewer.from("reading").list({ where, limit: 50 })).map((x) => x.label);
    const live = lives[name].rows.map((x) => x.label);
    expect(JSON.stringify(live) === JSON.stringify(fresh), `live '${name}' equals a fresh fetch`, `live ${JSON.stringify(live)} fresh ${JSON.stringify(fresh)}`);
    lives[name].close();
  }
} finally {
  await server.close();
}
done();
