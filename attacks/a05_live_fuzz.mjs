// Random rounds: two users write concurrently (creates, updates moving rows in and out of
// filters, deletes) while many small live queries (limit 1-3, heavy ties) follow; once quiet,
// each must equal a fresh fetch. SEED=<n> ROUNDS=<n> TRANSPORT=sse|websocket TOKEN=<seconds>.
// Enum ordering and non-ASCII case folding are left out (see a01, a02).
import { startServer, signedIn, client, schema, expect, done, sleep, eventually } from "./harness.mjs";

const seed = Number(process.env.SEED ?? Date.now() % 100000);
const rounds = Number(process.env.ROUNDS ?? 3);
const transport = process.env.TRANSPORT ?? "sse";
console.log(`SEED=${seed} ROUNDS=${rounds} TRANSPORT=${transport}`);
let state = seed;
const rnd = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
const pick = (xs) => xs[Math.floor(rnd() * xs.length)];

const env = process.env.TOKEN ? { TS_APP_TOKEN_LIFETIME: process.env.TOKEN } : {};
const server = await startServer({ env });
const WebSocket = globalThis.WebSocket;
try {
  const [alice, bob] = [await signedIn(server.url, "alice"), await signedIn(server.url, "bob")];
  const viewer = client.createClient(server.url, { schema, transport, ...(WebSocket ? { WebSocket } : {}) });
  await viewer.auth.signIn("alice", "alice-password"); // a signed-in viewer: renewals, if TOKEN is short
  const values = () => ({
    label: pick(["a", "b", "c", "ab", "B"]),
    note: rnd() < 0.3 ? null : pick(["x", "y"]),
    amount: pick(["1.00", "2.00", "2.0", "-1", "0"]),
    score: rnd() < 0.3 ? null : pick([1, 2, 3]),
    taken_at: rnd() < 0.3 ? null : pick(["2025-01-01T00:00:00Z", "2025-01-01T01:00:00+01:00", "2025-01-02T00:00:00.000001Z"]),
  });
  const queries = [];
  for (let i = 0; i < 14; i += 1) {
    const where = {};
    const r = rnd();
    if (r < 0.2) where.score = { gte: pick([1, 2]) };
    else if (r < 0.4) where.note = pick([null, "x", { ne: null }]);
    else if (r < 0.55) where.label = { in: ["a", "b", "ab"] };
    else if (r < 0.7) where.label = { startswith: "a" };
    else if (r < 0.8) where.amount = { gt: "0" };
    const orderBy = pick([["score"], ["-score"], ["note", "-amount"], ["-taken_at"], ["label", "-score"], ["amount"], ["-label"], []]);
    queries.push({ where, orderBy, limit: 1 + Math.floor(rnd() * 3), count: rnd() < 0.4 });
  }
  console.log(JSON.stringify(queries));
  const lives = queries.map((q) => viewer.live("reading", q));
  await Promise.all(lives.map((l) => l.ready));
  const own = { alice: [], bob: [] };
  let failed = 0;
  for (let round = 0; round < rounds; round += 1) {
    await Promise.all(Object.entries({ alice, bob }).map(async ([name, user]) => {
      const mine = own[name];
      for (let i = 0; i < 40; i += 1) {
        const roll = rnd();
        if (roll < 0.35 || mine.length === 0) mine.push((await user.from("reading").create(values())).id);
        else if (roll < 0.85) await user.from("reading").update(pick(mine), values());
        else await user.from("reading").delete(mine.splice(Math.floor(rnd() * mine.length), 1)[0]);
      }
    }));
    await sleep(1500);
    for (const [index, query] of queries.entries()) {
      const { count, ...rest } = query;
      let fresh;
      try {
        await eventually(async () => {
          fresh = await viewer.from("reading").list({ ...rest, count: true });
          return JSON.stringify(lives[index].rows.map((r) => r.id)) === JSON.stringify(fresh.rows.map((r) => r.id)) && (lives[index].total === null || lives[index].total === fresh.total);
        }, () => "", 6000);
      } catch {
        failed += 1;
        expect(false, `round ${round} query ${index} ${JSON.stringify(query)} equals a fresh fetch`,
          `live ${JSON.stringify(lives[index].rows.map((r) => [r.id.slice(0, 4), r.label, r.score, r.note, r.amount]))} total ${lives[index].total}\n       fresh ${JSON.stringify(fresh.rows.map((r) => [r.id.slice(0, 4), r.label, r.score, r.note, r.amount]))} total ${fresh.total}`);
      }
    }
    console.log(`round ${round}: ${failed} mismatches so far; states ${[...new Set(lives.map((l) => l.state))]}`);
  }
  expect(failed === 0, `all live queries converged over ${rounds} rounds`);
  for (const l of lives) l.close();
  viewer.close(); alice.close(); bob.close();
} finally {
  await server.close();
}
done();
