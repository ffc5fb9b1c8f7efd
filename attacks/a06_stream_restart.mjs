// A subscription across server restarts and short-lived tokens while a writer keeps writing:
// every committed change arrives once, in order (no loss, no duplicate).
// TRANSPORT=sse|websocket TOKEN=<seconds> RESTARTS=<n>
import { startServer, signedIn, client, schema, expect, done, sleep, eventually } from "./harness.mjs";

const transport = process.env.TRANSPORT ?? "sse";
const restarts = Number(process.env.RESTARTS ?? 2);
const env = process.env.TOKEN ? { TS_APP_TOKEN_LIFETIME: process.env.TOKEN } : {};
const server = await startServer({ env });
try {
  const writer = await signedIn(server.url, "alice", { retry: { initialDelay: 50, maxDelay: 300 } });
  const reader = client.createClient(server.url, { schema, transport, retry: { initialDelay: 50, maxDelay: 300 }, ...(globalThis.WebSocket ? { WebSocket: globalThis.WebSocket } : {}) });
  await reader.auth.signIn("bob", "bob-password");
  const got = [];
  const states = [];
  const resets = [];
  const sub = reader.subscribe("todo", { onState: (s, e) => states.push(s + (e ? `(${e.status})` : "")), onReset: (i) => resets.push(i.reason) }, (c) => got.push(c));
  await sub.ready;
  const written = []; // todo ids created, committed
  let stop = false;
  const writing = (async () => {
    let n = 0;
    while (!stop) {
      try {
        const todo = await writer.from("todo").create({ task: `w${n++}` });
        written.push(todo.id);
      } catch {
        await sleep(50);
      }
    }
  })();
  for (let i = 0; i < restarts; i += 1) {
    await sleep(1500);
    await server.restart();
  }
  await sleep(1500);
  stop = true;
  await writing;
  await eventually(() => got.filter((c) => c.event === "INSERT").length >= written.length, () => `got ${got.length} of ${written.length}`, 15000).catch(() => undefined);
  await sleep(500);
  const inserted = got.filter((c) => c.event === "INSERT").map((c) => c.payload.id);
  const missing = written.filter((id) => !inserted.includes(id));
  const dups = inserted.filter((id, i) => inserted.indexOf(id) !== i);
  const ids = got.map((c) => c.id);
  const ordered = ids.every((id, i) => i === 0 || id > ids[i - 1]);
  console.log(`written ${written.length}, received ${got.length}, resets ${JSON.stringify(resets)}, states ${states.join(" > ")}`);
  expect(missing.length === 0, "no change lost", `missing ${JSON.stringify(missing)}`);
  expect(dups.length === 0, "no change twice", `duplicates ${JSON.stringify(dups)}`);
  expect(ordered, "changes in commit order");
  expect(sub.state === "live", "the subscription is live at the end", sub.state);
  sub.close(); reader.close(); writer.close();
} finally {
  await server.close();
}
done();
