// Text operators applied locally by live queries vs the server's answer (SQLite): every live
// query must equal a fresh fetch once writes stop.
import { startServer, signedIn, expect, done, sleep } from "./harness.mjs";
const server = await startServer({ env: process.env.TS_APP_DB ? { TS_APP_DB: process.env.TS_APP_DB } : {} });
try {
  const alice = await signedIn(server.url, "alice");
  const r = alice.from("reading");
  const queries = {
    "ilike É%": { label: { ilike: "é%" } },
    "icontains ÉLAN": { label: { icontains: "ÉLAN" } },
    "icontains straße/STRASSE": { label: { icontains: "STRASSE" } },
    "icontains İ (Turkish)": { label: { icontains: "i̇" } },
    "contains 'a'": { label: { contains: "a" } },
    "like a\\_%": { label: { like: "a\\_%" } },
    "startswith 'Ab'": { label: { startswith: "Ab" } },
    "ilike 'k' vs Kelvin sign": { label: { ilike: "k" } },
  };
  const lives = Object.fromEntries(Object.entries(queries).map(([n, where]) => [n, alice.live("reading", { where, orderBy: "label", limit: 50 })]));
  await Promise.all(Object.values(lives).map((l) => l.ready));
  for (const label of ["Élan", "élan", "ÉLAN", "straße", "İstanbul", "A", "a_b", "aXb", "Abc", "abc", "\u212A", "k", "K"]) await r.create({ label });
  await sleep(1000);
  for (const [name, where] of Object.entries(queries)) {
    const fresh = (await r.list({ where, orderBy: "label", limit: 50 })).map((x) => x.label);
    const live = lives[name].rows.map((x) => x.label);
    expect(JSON.stringify(live) === JSON.stringify(fresh), `live ${name} equals fresh fetch`, `live ${JSON.stringify(live)} fresh ${JSON.stringify(fresh)}`);
    lives[name].close();
  }
} finally { await server.close(); }
done();
