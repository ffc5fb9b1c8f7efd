// Two PasswordAuth instances started from one stored session (a duplicated browser tab copies
// sessionStorage; two clients in one page share localStorage): each refreshes with the same
// single-use refresh token. Does either stay signed in?
import { startServer, client, expect, done } from "./harness.mjs";

const server = await startServer();
try {
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v), removeItem: (k) => store.delete(k) };
  const first = client.createClient(server.url, { auth: new client.PasswordAuth({ storage }) });
  await first.auth.signIn("alice", "alice-password");
  const copy = new Map(store); // the duplicated tab's copy
  const second = client.createClient(server.url, { auth: new client.PasswordAuth({ storage: { getItem: (k) => copy.get(k) ?? null, setItem: (k, v) => copy.set(k, v), removeItem: (k) => copy.delete(k) } }) });
  const events = [];
  first.auth.onChange((_s, e) => events.push(`first:${e}`));
  second.auth.onChange((_s, e) => events.push(`second:${e}`));
  await first.auth.refresh();
  const outcome = await second.auth.refresh().then(() => "refreshed", (e) => `${e.status} ${e.message}`);
  const firstStill = await first.from("todo").create({ task: "still me?" }).then(() => "ok", (e) => `${e.status} ${e.message}`);
  const firstRefresh = await first.auth.refresh().then(() => "refreshed", (e) => `${e.status} ${e.message}`);
  console.log(`second refresh: ${outcome}; first writes: ${firstStill}; first refresh after: ${firstRefresh}; events ${events.join(", ")}`);
  expect(firstRefresh === "refreshed", "the tab that refreshed first stays signed in when a copy of its session refreshes too", `first refresh after the copy's: ${firstRefresh}`);
  first.close(); second.close();
} finally {
  await server.close();
}
done();
