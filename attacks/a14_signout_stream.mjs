// Sign-out while subscribed: what happens to the stream, and what reaches the server's URLs.
import { startServer, client, expect, done, sleep, eventually } from "./harness.mjs";

const server = await startServer();
try {
  const urls = [];
  const logging = (url, init) => { urls.push(url); return fetch(url, init); };
  const cape = client.createClient(server.url, { fetch: logging });
  await cape.auth.signIn("alice", "alice-password");
  const got = [];
  const states = [];
  const resets = [];
  const sub = cape.subscribe("todo", { onState: (s) => states.push(s), onReset: (i) => resets.push(i.reason) }, (c) => got.push(c));
  await sub.ready;
  const alice = cape.from("todo");
  const t = await alice.create({ task: "before" });
  await eventually(() => got.length === 1, () => `${got.length}`);
  await cape.auth.signOut();
  await sleep(500);
  const other = client.createClient(server.url);
  await other.auth.signIn("bob", "bob-password");
  await other.from("todo").create({ task: "after sign-out" });
  await sleep(800);
  console.log(`after sign-out: state ${sub.state}, changes ${got.length}, resets ${JSON.stringify(resets)}, states ${states.join(">")}`);
  expect(!urls.some((u) => /token|ticket/i.test(new URL(u).search)), "no token or ticket in any URL fetched (SSE)", urls.filter((u) => /token|ticket/.test(u)).join(" "));
  // The stream goes on as the anonymous caller (documented): it gets bob's public change.
  expect(sub.state === "live" && got.length === 2, "the stream follows as the anonymous caller after sign-out (documented)", `state ${sub.state}, ${got.length} changes`);
  sub.close(); cape.close(); other.close();
  void t;
} finally {
  await server.close();
}
done();
