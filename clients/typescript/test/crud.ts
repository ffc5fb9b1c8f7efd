// CRUD, the list grammar, auth and error shapes against the app; and the types the generator
// writes for it.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { promisify } from "node:util";
import { type CapebaseClient, CapebaseError, PasswordAuth, createClient, tokenAuth } from "../src/index.js";
import { type Database, schema } from "./generated/schema.js";
import { client as newClient, server, signedIn } from "./fixture.js";
import { ROOT } from "./server.js";

async function rejectsWith(promise: Promise<unknown>, status: number, message?: RegExp): Promise<CapebaseError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof CapebaseError, `not a CapebaseError: ${String(error)}`);
    assert.equal(error.status, status, error.message);
    if (message) assert.match(error.message, message);
    return error;
  }
  assert.fail(`expected a ${status}`);
}

/** CRUD, errors, auth and the generated types. */
export function crudSuite(): void {
  let alice: CapebaseClient<Database>;
  let bob: CapebaseClient<Database>;
  let anonymous: CapebaseClient<Database>;

  before(async () => {
    alice = await signedIn("alice");
    bob = await signedIn("bob");
    anonymous = newClient();
  });

  describe("CRUD", () => {
    test("create, get, update, delete, typed", async () => {
      const todos = alice.from("todo");
      const created = await todos.create({ task: "buy milk" });
      assert.equal(created.user_id, alice.auth.user?.id);
      assert.equal(created.is_complete, false);
      const id: number = created.id; // the key of a stored row is never null
      assert.deepEqual(await bob.from("todo").get(id), created);
      const updated = await todos.update(id, { is_complete: true });
      assert.equal(updated.is_complete, true);
      assert.equal(updated.task, "buy milk");
      await todos.delete(id);
      await rejectsWith(todos.get(id), 404);
    });

    test("every value kind goes through as the server writes it", async () => {
      const readings = alice.from("reading");
      const created = await readings.create({
        label: "kitchen",
        amount: "12.50",
        score: 0.25,
        taken_at: "2025-01-02T03:04:05.000006Z",
        duration: "P1DT2H",
        kind: "humidity",
        data: { a: [1, 2] },
      });
      assert.equal(created.amount, "12.50");
      assert.equal(created.kind, "humidity");
      assert.deepEqual(created.data, { a: [1, 2] });
      assert.deepEqual(await readings.get(created.id), created);
      await readings.delete(created.id);
    });

    test("lists filter, sort, page and count", async () => {
      const todos = alice.from("todo");
      const made = [];
      for (const task of ["list a", "list b", "list c", "other"]) made.push(await todos.create({ task }));
      await todos.update(made[1]!.id, { is_complete: true });
      const listed = await todos.list({ where: { task: { startswith: "list " } }, orderBy: "-task" });
      assert.deepEqual(listed.map((t) => t.task), ["list c", "list b", "list a"]);
      const page = await todos.list({ where: { task: { startswith: "list " }, is_complete: false }, orderBy: "task", limit: 1, offset: 1, count: true });
      assert.deepEqual(page.rows.map((t) => t.task), ["list c"]);
      assert.equal(page.total, 2);
      const some = await todos.list({ where: { id: { in: [made[0]!.id, made[3]!.id] } } });
      assert.deepEqual(some.map((t) => t.id), [made[0]!.id, made[3]!.id]);
      for (const todo of made) await todos.delete(todo.id);
    });
  });

  describe("errors carry the server's status and message", () => {
    test("403 when readable but not yours; 404 when missing or unreadable", async () => {
      const todo = await alice.from("todo").create({ task: "alice's" });
      const denied = await rejectsWith(bob.from("todo").update(todo.id, { is_complete: true }), 403, /Permission denied: cannot update Todo/);
      assert.equal(denied.kind, "forbidden");
      assert.deepEqual(denied.detail, "Permission denied: cannot update Todo");
      await rejectsWith(bob.from("todo").delete(todo.id), 403);
      const missing = await rejectsWith(alice.from("todo").get(987654), 404);
      assert.equal(missing.kind, "not_found");
      const secret = await alice.from("secret").create({ body: "hidden" });
      const unreadable = await rejectsWith(alice.from("secret").get(secret.id), 404);
      const absent = await rejectsWith(alice.from("secret").get(secret.id + 1000), 404);
      assert.deepEqual(unreadable.detail, absent.detail, "unreadable and missing look alike");
      assert.deepEqual(await alice.from("secret").list(), []);
      await alice.from("todo").delete(todo.id);
    });

    test("422 names the field; 400 names the unknown filter; 401 for an anonymous write", async () => {
      const invalid = await rejectsWith(alice.from("todo").create({ task: "" }), 422);
      assert.equal(invalid.kind, "invalid");
      assert.equal(invalid.fieldErrors[0]?.field, "task");
      assert.equal(invalid.fieldErrors[0]?.type, "string_too_short");
      assert.match(invalid.message, /^task: /);
      const extra = await rejectsWith(alice.from("todo").create({ task: "x", user_id: "bob" } as never), 422);
      assert.equal(extra.fieldErrors[0]?.field, "user_id");
      const badValue = await rejectsWith(alice.from("todo").list({ where: { id: { gt: "abc" as never } } }), 422, /Invalid value 'abc' for 'id'/);
      assert.equal(badValue.fieldErrors.length, 0);
      const unknown = await rejectsWith(alice.from("todo").list({ where: { nope: 1 } as never }), 400, /Unknown filter field 'nope'/);
      assert.equal(unknown.kind, "bad_request");
      const anonymousWrite = await rejectsWith(anonymous.from("todo").create({ task: "spam" }), 401);
      assert.equal(anonymousWrite.kind, "unauthorized");
    });

    test("an unreachable server is a network error with status 0", async () => {
      const away = createClient<Database>("http://127.0.0.1:9", { schema });
      const error = await rejectsWith(away.from("todo").list(), 0);
      assert.equal(error.kind, "network");
    });
  });

  describe("auth", () => {
    test("sign up, sign in, refresh, sign out", async () => {
      const client = createClient<Database>(server().url, { schema });
      const signedUp = await client.auth.signUp({ email: "carol@example.com", password: "carol-password", username: "carol" });
      assert.equal(signedUp.username, "carol");
      await rejectsWith(client.auth.signUp({ email: "carol@example.com", password: "carol-password" }), 409);
      const short = await rejectsWith(client.auth.signUp({ email: "dave@example.com", password: "short" }), 422);
      assert.match(short.message, /Password should have at least 8 characters/);
      await rejectsWith(client.auth.signIn("carol", "wrong-password"), 401);
      const events: string[] = [];
      client.auth.onChange((_session, event) => events.push(event));
      const session = await client.auth.signIn("carol", "carol-password");
      assert.equal(session.user?.email, "carol@example.com");
      assert.equal((await client.auth.me()).username, "carol");
      const renewed = await client.auth.refresh();
      assert.notEqual(renewed.refreshToken, session.refreshToken);
      assert.ok((await client.from("todo").create({ task: "carol's" })).id > 0);
      const ticket = await client.auth.streamTicket();
      assert.ok(ticket.length > 20);
      await client.auth.signOut();
      assert.equal(client.auth.session, null);
      await rejectsWith(client.from("todo").create({ task: "after sign-out" }), 401);
      assert.deepEqual(events, ["signed_in", "refreshed", "signed_out"]);
      client.close();
    });

    test("a refused access token is renewed once and the request sent again", async () => {
      const client = createClient<Database>(server().url, { schema });
      await client.auth.signIn("alice", "alice-password");
      (client.auth.session as { accessToken: string }).accessToken = "not-a-token";
      const todo = await client.from("todo").create({ task: "after a 401" });
      assert.equal(todo.user_id, client.auth.user?.id);
      await client.from("todo").delete(todo.id);
      client.close();
    });

    test("a refresh token refused by the server ends the sign-in", async () => {
      const storage = new Map<string, string>();
      const store = { getItem: (k: string) => storage.get(k) ?? null, setItem: (k: string, v: string) => void storage.set(k, v), removeItem: (k: string) => void storage.delete(k) };
      const client = createClient<Database>(server().url, { schema, auth: new PasswordAuth({ storage: store }) });
      await client.auth.signIn("bob", "bob-password");
      assert.ok(storage.has("capebase-session"), "kept in the store");
      const stolen = client.auth.session!.refreshToken;
      await client.auth.refresh();
      // Reusing a spent refresh token revokes the whole sign-in, on the server and here.
      const thief = createClient<Database>(server().url, { schema, auth: new PasswordAuth({ storage: { ...store, getItem: () => JSON.stringify({ ...client.auth.session, refreshToken: stolen }) } }) });
      await rejectsWith(thief.auth.refresh(), 401);
      await rejectsWith(client.auth.refresh(), 401);
      assert.equal(client.auth.session, null);
      assert.ok(!storage.has("capebase-session"), "forgotten");
      client.close();
      thief.close();
    });

    test("tokenAuth brings any other token", async () => {
      // Tokens from elsewhere (here: alice's sign-in), renewed by their owner after a 401.
      const auth = tokenAuth(() => alice.auth.getToken(), { onUnauthorized: (token) => alice.auth.onUnauthorized(token) });
      const client = createClient<Database>(server().url, { schema, auth });
      const todo = await client.from("todo").create({ task: "by tokenAuth" });
      assert.equal(todo.user_id, alice.auth.user?.id);
      await client.from("todo").delete(todo.id);
    });
  });

  describe("generated types", () => {
    test("capebase-types writes the committed test/generated/schema.ts from the running app", async () => {
      const cli = join(ROOT, "clients", "typescript", "dist", "cli.js");
      const { stdout } = await promisify(execFile)(process.execPath, [cli, server().url]);
      const committed = readFileSync(join(ROOT, "clients", "typescript", "test", "generated", "schema.ts"), "utf8");
      // Comments aside: descriptions follow the server's version (a Decimal's digits, say).
      const body = (text: string) => text.split("\n").slice(1).filter((line) => !/^\s*\/\*\*.*\*\/$/.test(line)).join("\n");
      assert.equal(body(stdout), body(committed), "regenerate: node dist/cli.js <url> --out test/generated/schema.ts");
      assert.match(stdout.split("\n")[0]!, new RegExp(`from ${server().url}/openapi.json`));
    });
  });
}
