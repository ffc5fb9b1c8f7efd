// A server restart under open subscriptions and live queries, on both transports: they show
// "reconnecting", then resume from their tokens: no change lost, none twice, no list reloaded.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { server, signedIn } from "./fixture.js";
import type { Row } from "./generated/schema.js";
import { eventually, sleep } from "./server.js";
import { TRANSPORTS } from "./streams.js";
import { Network, Recorder } from "./support.js";

/** The restart (run last: it stops the app). */
export function restartSuite(): void {
  describe("across a server restart", () => {
    test("subscriptions and live queries resume: no loss, no duplicate, no reload", async () => {
      const network = new Network();
      const alice = await signedIn("alice", network);
      const writer = await signedIn("bob");
      const filters = { task: { startswith: "restart " } } as const;
      const recorders = TRANSPORTS.map(() => new Recorder<Row<"todo">>());
      const opens: boolean[][] = TRANSPORTS.map(() => []);
      const subscriptions = TRANSPORTS.map((transport, i) =>
        alice.subscribe("todo", { transport, onState: recorders[i]!.onState, onOpen: (resumed) => opens[i]!.push(resumed) }, recorders[i]!.handler),
      );
      const lives = TRANSPORTS.map((transport) => alice.live("todo", { where: filters, orderBy: "-inserted_at", limit: 20, transport }));
      await Promise.all(lives.map((live) => live.ready));
      await eventually(() => subscriptions.every((s) => s.resumeToken !== null), () => "no token yet");

      const expected: [string, number][] = [];
      const todos = writer.from("todo");
      const create = async (task: string) => {
        const todo = await todos.create({ task: `restart ${task}` });
        expected.push(["INSERT", todo.id]);
        return todo.id;
      };
      const first = await create("one");
      const second = await create("two");
      const all = () => recorders.every((r) => r.changes.filter((c) => c.payload.task?.startsWith("restart ") || c.event === "DELETE").length >= expected.length);
      await eventually(all, () => "before the restart");
      const loads = network.listLoads("todo");

      // Keep the streams away until changes were made behind their backs: catching up must come
      // from resuming with the token, not from an early reconnect or a reload.
      network.blocked = true;
      await server().restart();
      await create("three");
      await todos.update(first, { is_complete: true });
      expected.push(["UPDATE", first]);
      await todos.delete(second);
      expected.push(["DELETE", second]);
      await eventually(() => subscriptions.every((s) => s.state === "reconnecting") && lives.every((l) => l.state === "reconnecting"), () => subscriptions.map((s) => s.state).join());
      network.blocked = false;
      await eventually(() => subscriptions.every((s) => s.state === "live") && lives.every((l) => l.state === "live"), () => "not live again", 20_000);
      await create("four");
      await sleep(300); // a duplicate would arrive by now

      for (const [i, recorder] of recorders.entries()) {
        const mine = recorder.changes.filter((c) => expected.some(([, id]) => id === c.payload.id));
        await eventually(() => recorder.changes.filter((c) => expected.some(([, id]) => id === c.payload.id)).length >= expected.length, () => TRANSPORTS[i]!);
        assert.deepEqual(
          recorder.changes.filter((c) => expected.some(([, id]) => id === c.payload.id)).map((c) => [c.event, c.payload.id]),
          expected,
          `${TRANSPORTS[i]}: every change once, in order (${mine.length})`,
        );
        assert.equal(new Set(recorder.ids()).size, recorder.changes.length, "no duplicate");
        assert.deepEqual(opens[i]![0], false);
        assert.ok(opens[i]!.slice(1).every(Boolean), `resumed each time: ${opens[i]}`);
        assert.ok(recorder.states.includes("reconnecting"));
      }
      const fresh = await alice.from("todo").list({ where: filters, orderBy: "-inserted_at", limit: 20 });
      for (const live of lives) await eventually(() => JSON.stringify(live.rows) === JSON.stringify(fresh), () => JSON.stringify(live.rows));
      assert.deepEqual(fresh.map((t) => t.task), ["restart four", "restart three", "restart one"]);
      assert.equal(network.listLoads("todo"), loads + 1, "the live queries resumed instead of reloading (one list above)");
      for (const item of [...subscriptions, ...lives]) item.close();
    });
  });
}
