// Live queries against the app: under random writes by two users every live query ends equal
// to a fresh fetch of its query; a sign-in resets the stream and the query reloads.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { CapebaseClient, LiveQuery, LiveQueryOptions, NullOrder } from "../src/index.js";
import { client, signedIn } from "./fixture.js";
import type { Database, Row } from "./generated/schema.js";
import { eventually } from "./server.js";
import { Network } from "./support.js";

type Reading = Row<"reading">;

const LABELS = ["apple", "Banana", "cherry", "banana split", "date", "Élan", "mango"];
const OPERATIONS_PER_USER = 60;

/** A small seeded generator: the same writes on every run. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
}

function pick<T>(next: () => number, items: readonly T[]): T {
  return items[Math.floor(next() * items.length)] as T;
}

function readingValues(next: () => number): Partial<Reading> & { label: string } {
  const maybe = <T>(value: T): T | null => (next() < 0.25 ? null : value);
  const micros = Math.floor(next() * 1_000_000).toString().padStart(6, "0");
  return {
    label: pick(next, LABELS),
    note: maybe(pick(next, ["x", "y"])),
    amount: (Math.round((next() - 0.5) * 10_000) / 100).toFixed(2),
    score: maybe(Math.round(next() * 10) / 2),
    taken_at: maybe(`2025-0${1 + Math.floor(next() * 3)}-1${Math.floor(next() * 9)}T12:00:0${Math.floor(next() * 3)}.${micros}Z`),
    kind: pick(next, ["temperature", "humidity"] as const),
  };
}

/** One user's random creates, updates and deletes of their own rows. */
async function writeRandomly(user: CapebaseClient<Database>, seed: number): Promise<void> {
  const next = random(seed);
  const readings: string[] = [];
  const todos: number[] = [];
  for (let i = 0; i < OPERATIONS_PER_USER; i += 1) {
    const roll = next();
    if (next() < 0.3) {
      if (roll < 0.4 || todos.length === 0) todos.push((await user.from("todo").create({ task: `live ${pick(next, LABELS)}` })).id);
      else if (roll < 0.85) await user.from("todo").update(pick(next, todos), { is_complete: next() < 0.5, task: `live ${pick(next, LABELS)}` });
      else await user.from("todo").delete(todos.splice(Math.floor(next() * todos.length), 1)[0]!);
    } else if (roll < 0.4 || readings.length === 0) {
      readings.push((await user.from("reading").create(readingValues(next))).id);
    } else if (roll < 0.85) {
      await user.from("reading").update(pick(next, readings), readingValues(next));
    } else {
      await user.from("reading").delete(readings.splice(Math.floor(next() * readings.length), 1)[0]!);
    }
  }
}

/** Where this server sorts NULL: capebase now sorts it as the largest value everywhere; before,
 * SQLite put it first (as this branch's server may still do). */
async function nullOrder(user: CapebaseClient<Database>): Promise<NullOrder> {
  const made = await Promise.all([user.from("reading").create({ label: "probe", score: 1 }), user.from("reading").create({ label: "probe", score: null })]);
  const sorted = await user.from("reading").list({ where: { label: "probe" }, orderBy: "score" });
  for (const reading of made) await user.from("reading").delete(reading.id);
  return sorted[0]?.score === null ? "smallest" : "largest";
}

/** Wait until `live` shows what a fresh fetch of its query returns. */
async function converges<R>(live: LiveQuery<R>, fetch: () => Promise<{ rows: R[]; total: number }>, name: string): Promise<void> {
  let fresh: { rows: R[]; total: number } = { rows: [], total: 0 };
  await eventually(
    async () => {
      fresh = await fetch();
      return JSON.stringify(live.rows) === JSON.stringify(fresh.rows) && (live.total === null || live.total === fresh.total);
    },
    () => `${name}: live ${JSON.stringify(live.rows)} (total ${live.total})\n  fresh ${JSON.stringify(fresh.rows)} (total ${fresh.total})`,
    15_000,
  );
}

/** Live queries. */
export function liveSuite(): void {
  describe("live queries", () => {
    test("every live query equals a fresh fetch once two users' random writes stop", async () => {
      const [alice, bob] = [await signedIn("alice"), await signedIn("bob")];
      const viewer = client(); // anonymous: reads everything, like the demo's readers
      const nulls = await nullOrder(alice);
      const queries: [string, LiveQueryOptions<Reading>][] = [
        ["largest amounts", { orderBy: ["-amount"], limit: 5 }],
        ["humidity by nullable time and score", { where: { kind: "humidity" }, orderBy: ["taken_at", "-score"], limit: 6 }],
        ["text filter applied here, counted", { where: { label: { icontains: "AN" } }, orderBy: "label", limit: 4, count: true }],
        ["default page over WebSocket", { where: { amount: { gte: "0" } }, orderBy: "-taken_at", transport: "websocket" }],
        ["a page at an offset", { orderBy: ["score", "amount"], offset: 2, limit: 3 }],
        ["several operators", { where: { score: { gt: 1, lte: 4 }, note: { ne: null }, label: { nin: ["date"] } }, orderBy: ["-score", "label"], limit: 7, count: true }],
      ];
      const lives = queries.map(([, query]) => viewer.live("reading", { ...query, nulls }));
      const todoQuery: LiveQueryOptions<Row<"todo">> = { where: { task: { startswith: "live " }, is_complete: false }, orderBy: "-inserted_at", limit: 5 };
      const todos = viewer.live("todo", todoQuery);
      await Promise.all([...lives.map((live) => live.ready), todos.ready]);

      await Promise.all([writeRandomly(alice, 1), writeRandomly(bob, 2)]);

      for (const [index, [name, query]] of queries.entries()) {
        const { transport: _transport, nulls: _nulls, ...list } = query;
        await converges(lives[index]!, () => viewer.from("reading").list({ ...list, count: true }), name);
      }
      await converges(todos, () => viewer.from("todo").list({ ...todoQuery, count: true }), "todos");
      assert.ok(lives[0]!.rows.length === 5 && lives[2]!.total !== null);
      for (const live of [...lives, todos]) live.close();
    });

    test("signing in resets the stream (another caller) and the live query reloads", async () => {
      const network = new Network();
      const reader = client(network);
      const live = reader.live("reading", { orderBy: "-amount", limit: 3 });
      await live.ready;
      const loads = network.listLoads("reading");
      await reader.auth.signIn("alice", "alice-password");
      await eventually(() => network.listLoads("reading") > loads, () => "no reload after the reset");
      const created = await reader.from("reading").create({ label: "after sign-in", amount: "99999.99" });
      await eventually(() => live.rows[0]?.id === created.id, () => JSON.stringify(live.rows));
      assert.equal(live.state, "live");
      live.close();
    });
  });
}
