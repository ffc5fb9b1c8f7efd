// BigInteger keys and values beyond 2^53: the client parses JSON into doubles, so two rows whose
// ids differ past 2^53 get one id, and update(row.id) changes the other row. A BigInt value in a
// create body throws a raw TypeError, not a CapebaseError.
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, client, expect, done, PYTHON } from "./harness.mjs";

const dir = mkdtempSync(join(tmpdir(), "attack20-big-"));
const db = join(dir, "big.db");
const server = await startServer({ module: "attacks.types_app", db });
try {
  const cape = client.createClient(server.url);
  await cape.auth.signIn("alice", "alice-password");
  const big = cape.from("big");
  const a = await big.create({ counter: 1 });
  const b = await big.create({ counter: 2 });
  // Keys a backend (or a Snowflake/Twitter-style id) may assign: 2^53 and 2^53 + 1.
  execFileSync(PYTHON, ["-c", `import sqlite3; c = sqlite3.connect(${JSON.stringify(db)}); c.execute("update big set id = 9007199254740992, counter = 9007199254740993 where id = ${a.id}"); c.execute("update big set id = 9007199254740993 where id = ${b.id}"); c.commit()`]);
  const raw = await (await fetch(`${server.url}/big?order_by=id`)).text();
  console.log("server sends:", raw.replace(/"owner":"[^"]+",/g, "").slice(0, 200));
  const rows = await big.list({ orderBy: "id" });
  const ids = rows.map((row) => String(row.id));
  expect(new Set(ids).size === 2, "two rows keep two distinct ids", `ids as the client sees them: ${ids.join(", ")}`);
  expect(String(rows[0].counter) === "9007199254740993", "a BigInteger value round-trips", `counter read as ${rows[0].counter}`);
  // Update the second row (id 2^53 + 1) by the key the client gave us.
  await big.update(rows[1].id, { ratio: 42 });
  const after = await (await fetch(`${server.url}/big?order_by=id`)).json();
  const changed = after.filter((row) => row.ratio === 42).length;
  const text = await (await fetch(`${server.url}/big?order_by=id`)).text();
  expect(/"id":9007199254740993,[^}]*"ratio":42(\.0)?[,}]/.test(text), "update(rows[1].id) changes row 2^53+1", `the server now has: ${text.replace(/"owner":"[^"]+",/g, "").slice(0, 400)}`);
  let thrown;
  try {
    await big.create({ counter: 9007199254740993n });
  } catch (error) {
    thrown = error;
  }
  expect(thrown instanceof client.CapebaseError, "a BigInt in a body is a CapebaseError (errors as values)", `got ${thrown?.constructor?.name}: ${thrown?.message}`);
  void changed;
} finally {
  await server.close();
}
done();
