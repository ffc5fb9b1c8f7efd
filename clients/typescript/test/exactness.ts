// What the client must get exactly as the server has it: integers past 2^53, an enum's order,
// case-insensitive text on the database's terms, the app's page size, keys the URL parser would
// resolve away, and one sign-in shared by two PasswordAuth instances.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CapebaseError, type LiveQuery, PasswordAuth, type SessionStore, createClient } from "../src/index.js";
import { server, signedIn } from "./fixture.js";
import { type Database, schema } from "./generated/schema.js";
import { eventually } from "./server.js";

const TWO_53 = 2n ** 53n;

/** Wait until `live` shows what `fetch` returns now. */
async function converges<R>(live: LiveQuery<R>, fetch: () => Promise<R[]>, name: string): Promise<void> {
  let fresh: R[] = [];
  const text = (rows: readonly R[]) => JSON.stringify(rows, (_key, value: unknown) => (typeof value === "bigint" ? `${value}n` : value));
  await eventually(
    async () => {
      fresh = await fetch();
      return text(live.rows) === text(fresh);
    },
    () => `${name}: live ${text(live.rows)}\n  fresh ${text(fresh)}`,
  );
}

/** A SessionStore over one Map: what two clients of one page share through localStorage. */
function sharedStore(): SessionStore & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return { map, getItem: (key) => map.get(key) ?? null, setItem: (key, value) => void map.set(key, value), removeItem: (key) => void map.delete(key) };
}

/** Exactness against the app. */
export function exactnessSuite(): void {
  describe("integers past 2^53", () => {
    test("BigInteger keys and values stay exact: read, filtered, updated, followed live", async () => {
      const alice = await signedIn("alice");
      const big = alice.from("big");
      const live = alice.live("big", { where: { id: { gte: TWO_53 } }, orderBy: "-id", limit: 5 });
      await live.ready;
      const first = await big.create({ id: TWO_53, value: TWO_53 + 1n });
      const second = await big.create({ id: TWO_53 + 1n, value: 7 });
      assert.equal(first.id, TWO_53);
      assert.equal(first.value, TWO_53 + 1n);
      assert.equal(second.id, TWO_53 + 1n);
      const rows = await big.list({ where: { id: { gte: TWO_53 } }, orderBy: "id" });
      assert.deepEqual(rows.map((row) => row.id), [TWO_53, TWO_53 + 1n]);
      const updated = await big.update(rows[1]!.id, { value: 42 });
      assert.equal(updated.id, TWO_53 + 1n);
      assert.equal((await big.get(TWO_53)).value, TWO_53 + 1n, "the other row is untouched");
      assert.deepEqual((await big.list({ where: { id: TWO_53 + 1n } })).map((row) => row.value), [42]);
      await converges(live, () => big.list({ where: { id: { gte: TWO_53 } }, orderBy: "-id", limit: 5 }), "big");
      assert.deepEqual(live.rows.map((row) => row.id), [TWO_53 + 1n, TWO_53]);
      for (const row of rows) await big.delete(row.id);
      await eventually(() => live.rows.length === 0, () => `left: ${live.rows.length}`);
      live.close();
    });
  });

  describe("live queries order and match as the database does", () => {
    test("ordered by an enum: its declaration order, as the server sorts it", async () => {
      const alice = await signedIn("alice");
      const query = { where: { label: { startswith: "enum-order " } }, orderBy: ["kind", "label"] } as const;
      const live = alice.live("reading", { ...query, limit: 10 });
      await live.ready;
      for (const [label, kind] of [["a", "temperature"], ["b", "humidity"], ["c", "temperature"], ["d", "humidity"]] as const) {
        await alice.from("reading").create({ label: `enum-order ${label}`, kind });
      }
      await converges(live, () => alice.from("reading").list({ ...query, limit: 10 }), "enum order");
      assert.deepEqual(live.rows.map((row) => row.kind), ["temperature", "temperature", "humidity", "humidity"]);
      live.close();
    });

    test("ilike and icontains beyond ASCII: what the database folds, not what JavaScript does", async () => {
      const alice = await signedIn("alice");
      const queries = [
        { where: { label: { icontains: "ÉCOLE" } }, orderBy: "label" },
        { where: { label: { ilike: "%école%" } }, orderBy: "label" },
        { where: { label: { icontains: "İSTANBUL" } }, orderBy: "label" },
        { where: { label: { ilike: "fold %" } }, orderBy: "label" },
      ] as const;
      const lives = queries.map((query) => alice.live("reading", { ...query, limit: 10 }));
      await Promise.all(lives.map((live) => live.ready));
      for (const label of ["fold École", "fold école", "fold ÉCOLE", "fold istanbul", "fold İstanbul", "FOLD ascii"]) {
        await alice.from("reading").create({ label });
      }
      for (const [index, query] of queries.entries()) {
        await converges(lives[index]!, () => alice.from("reading").list({ ...query, limit: 10 }), JSON.stringify(query.where));
      }
      for (const live of lives) live.close();
    });

    test("without a limit: the app's own page (20 here, at most 50), never limit=100", async () => {
      const alice = await signedIn("alice");
      const query = { where: { label: { startswith: "page " } }, orderBy: "label" } as const;
      const live = alice.live("reading", query);
      await live.ready;
      const made = [];
      for (let i = 0; i < 24; i += 1) made.push(await alice.from("reading").create({ label: `page ${String(i).padStart(2, "0")}` }));
      await converges(live, () => alice.from("reading").list(query), "default page");
      assert.equal(live.rows.length, 20);
      for (const reading of made.slice(0, 6)) await alice.from("reading").delete(reading.id);
      await converges(live, () => alice.from("reading").list(query), "default page after deletes");
      assert.equal(live.rows.length, 18);
      live.close();
    });
  });

  describe("keys a URL cannot carry", () => {
    test('"." and ".." are read by their key, and never sent to another route', async () => {
      const alice = await signedIn("alice");
      const docs = alice.from("doc");
      for (const slug of [".", "..", "..."]) await docs.create({ slug, title: `title ${slug}` });
      assert.equal((await docs.get(".")).title, "title .");
      assert.equal((await docs.get("..")).title, "title ..");
      assert.equal((await docs.get("...")).title, "title ...");
      for (const attempt of [() => docs.delete(".."), () => docs.update(".", { title: "x" })]) {
        await assert.rejects(attempt(), (error: unknown) => error instanceof CapebaseError && error.kind === "usage" && /dot segment/.test(error.message));
      }
      assert.deepEqual((await docs.list({ orderBy: "slug" })).map((doc) => doc.slug), [".", "..", "..."]);
      await docs.delete("...");
      await assert.rejects(docs.get("..."), (error: unknown) => error instanceof CapebaseError && error.status === 404);
    });
  });

  describe("one sign-in, two PasswordAuth instances", () => {
    test("sharing a store, both renew it and both stay signed in", async () => {
      const store = sharedStore();
      const first = createClient<Database>(server().url, { schema, auth: new PasswordAuth({ storage: store }) });
      await first.auth.signIn("alice", "alice-password");
      const second = createClient<Database>(server().url, { schema, auth: new PasswordAuth({ storage: store }) });
      assert.equal(second.auth.session?.refreshToken, first.auth.session?.refreshToken);
      // Both at once (two timers firing together), then one after the other.
      await Promise.all([first.auth.refresh(), second.auth.refresh()]);
      await second.auth.refresh();
      await first.auth.refresh();
      for (const client of [first, second]) {
        const todo = await client.from("todo").create({ task: "still signed in" });
        await client.from("todo").delete(todo.id);
      }
      assert.ok(first.auth.session && second.auth.session);
      assert.equal(first.auth.session.refreshToken, second.auth.session.refreshToken);
      await first.auth.signOut();
      assert.equal(await second.auth.getToken(), null, "a sign-out in one is a sign-out in the other");
      first.close();
      second.close();
    });
  });
}
