// Live queries ordered by each column kind of attacks/types_app.py (date, time, naive datetime,
// duration, decimal, float, bool, int enum, str enum, BigInteger), limit 3, against a fresh
// fetch, with schema from capebase-types (generated at run time). SEED=<n>
import { startServer, client, expect, done, sleep } from "./harness.mjs";

const seed = Number(process.env.SEED ?? 7);
console.log(`SEED=${seed}`);
let state = seed;
const rnd = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
const server = await startServer({ module: "attacks.types_app" });
try {
  const { generateTypes } = await import("../clients/typescript/dist/generate.js");
  const text = generateTypes(await (await fetch(`${server.url}/openapi.json`)).json(), "x");
  const schema = eval(`(${/export const schema = ([\s\S]*?) as const;/.exec(text)[1]})`);
  const cape = client.createClient(server.url, { schema });
  await cape.auth.signIn("alice", "alice-password");
  const fields = ["day", "-at", "naive", "span", "-price", "ratio", "flag", "level", "color", "-counter"];
  const lives = Object.fromEntries(fields.map((f) => [f, cape.live("big", { orderBy: [f], limit: 3 })]));
  await Promise.all(Object.values(lives).map((l) => l.ready.catch((e) => console.log(`${f}: ${e.message}`))));
  const values = () => ({
    day: pick([null, "2024-02-29", "2024-10-01", "999-01-01".padStart(10, "0")]),
    at: pick([null, "09:00:00", "10:00:00", "09:30:00.5", "23:59:59.999999"]),
    naive: pick([null, "2024-01-01T00:00:00Z", "2023-12-31T23:30:00-01:00", "2024-01-01T00:00:00.5+00:00"]),
    span: pick([null, "PT1S", "-PT1S", "P1D", "PT23H59M", "P400D", "-P1DT1H"]),
    price: pick(["0", "-0.0001", "12345678901.5", "1e3", "999.9999", "-12345678901"]),
    ratio: pick([0, -0.0, 1e-300, -1e300, 0.1, 3]),
    flag: pick([null, true, false]),
    level: pick([10, 2]),
    color: pick(["apple", "zebra", "mango"]),
    counter: pick([0, -1, 2 ** 40, -(2 ** 50)]),
  });
  const ids = [];
  for (let i = 0; i < 30; i += 1) {
    const roll = rnd();
    try {
      if (roll < 0.5 || ids.length === 0) ids.push((await cape.from("big").create(values())).id);
      else if (roll < 0.85) await cape.from("big").update(pick(ids), values());
      else await cape.from("big").delete(ids.splice(Math.floor(rnd() * ids.length), 1)[0]);
    } catch (e) {
      console.log(`write refused: ${e.status} ${e.message}`);
    }
  }
  await sleep(1500);
  for (const f of fields) {
    const live = lives[f];
    if (live.error) { console.log(`${f}: live failed: ${live.error.message}`); continue; }
    const fresh = await cape.from("big").list({ orderBy: [f], limit: 3 });
    const name = f.replace("-", "");
    expect(JSON.stringify(live.rows.map((r) => r.id)) === JSON.stringify(fresh.map((r) => r.id)), `live order by ${f} equals a fresh fetch`,
      `live ${JSON.stringify(live.rows.map((r) => [r.id, r[name]]))}\n       fresh ${JSON.stringify(fresh.map((r) => [r.id, r[name]]))}`);
    live.close();
  }
} finally {
  await server.close();
}
done();
