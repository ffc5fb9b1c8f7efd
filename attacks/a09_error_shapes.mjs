// Error values for the statuses the server documents.
import { startServer, client, expect, done } from "./harness.mjs";

const server = await startServer({ module: "attacks.types_app" });
const outcome = async (promise) => { try { await promise; return null; } catch (e) { return e; } };
try {
  const cape = client.createClient(server.url);
  await cape.auth.signIn("alice", "alice-password");
  const docs = cape.from("doc");
  await docs.create({ slug: "dup" });
  const show = (e) => e ? `${e.constructor.name} status=${e.status} kind=${e.kind} message=${JSON.stringify(e.message).slice(0, 140)} retryAfter=${e.retryAfter} fieldErrors=${JSON.stringify(e.fieldErrors).slice(0, 120)}` : "resolved";
  const cases = {
    409: [await outcome(docs.create({ slug: "dup" })), "conflict"],
    413: [await outcome(docs.create({ slug: "big", title: "x".repeat(3_000_000) })), "too_large"],
    422: [await outcome(cape.from("big").create({ level: 7 })), "invalid"],
    "422q": [await outcome(cape.from("big").list({ where: { counter: "abc" } })), "invalid"],
    400: [await outcome(cape.from("big").list({ orderBy: "tags" })), "bad_request"],
    404: [await outcome(docs.get("missing")), "not_found"],
    401: [await outcome(client.createClient(server.url).from("doc").create({ slug: "anon" })), "unauthorized"],
    network: [await outcome(client.createClient("http://127.0.0.1:9").from("doc").list()), "network"],
  };
  for (const [status, [error, kind]] of Object.entries(cases)) {
    console.log(`${status}: ${show(error)}`);
    expect(error instanceof client.CapebaseError && error.kind === kind && error.message.length > 0, `${status} is a CapebaseError of kind ${kind}`);
  }
  // 429 from the sign-in limiter: many wrong passwords.
  let last;
  for (let i = 0; i < 30 && last?.status !== 429; i += 1) last = await outcome(client.createClient(server.url).auth.signIn("nobody", "wrong"));
  console.log(`429?: ${show(last)}`);
} finally {
  await server.close();
}
done();
