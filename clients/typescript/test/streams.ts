// Change streams against the app: view-relative events on both transports, a refused filter,
// reset, and a token renewed under an open stream.

import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { type CapebaseClient, type CapebaseError, PasswordAuth, type StreamTransport } from "../src/index.js";
import { TOKEN_LIFETIME, signedIn } from "./fixture.js";
import type { Database, Row } from "./generated/schema.js";
import { eventually, sleep } from "./server.js";
import { Network, Recorder } from "./support.js";

export const TRANSPORTS: StreamTransport[] = ["sse", "websocket"];

/** Streams on each transport, and token renewal. */
export function streamsSuite(): void {
  let writer: CapebaseClient<Database>; // bob writes what alice's streams receive

  before(async () => {
    writer = await signedIn("bob");
  });

  for (const transport of TRANSPORTS) {
    describe(`streams over ${transport}`, () => {
      test("changes arrive in commit order, relative to the filters", async () => {
        const alice = await signedIn("alice");
        const open = new Recorder<Row<"todo">>();
        const filtered = new Recorder<Row<"todo">>();
        const a = alice.subscribe("todo", { transport, onState: open.onState }, open.handler);
        const b = alice.from("todo").subscribe({ transport, filters: { is_complete: false } }, filtered.handler);
        await Promise.all([a.ready, b.ready]); // accepted: changes from now on arrive
        const todo = await writer.from("todo").create({ task: `${transport} one` });
        await writer.from("todo").update(todo.id, { is_complete: true }); // leaves the filtered view
        await writer.from("todo").update(todo.id, { task: `${transport} renamed` }); // unseen there
        await writer.from("todo").update(todo.id, { is_complete: false }); // enters it again
        await writer.from("todo").delete(todo.id);
        const mine = (recorder: Recorder<Row<"todo">>) => recorder.changes.filter((c) => c.payload.id === todo.id);
        await eventually(() => mine(open).length === 5 && mine(filtered).length === 4, () => `${mine(open).length} ${mine(filtered).length}`);
        assert.deepEqual(mine(open).map((c) => c.event), ["INSERT", "UPDATE", "UPDATE", "UPDATE", "DELETE"]);
        assert.deepEqual(mine(filtered).map((c) => c.event), ["INSERT", "DELETE", "INSERT", "DELETE"]);
        assert.deepEqual(mine(filtered)[1]!.payload, { id: todo.id }, "a row leaving the view carries its key only");
        const update = mine(open)[1]!;
        assert.equal(update.event === "UPDATE" && update.old?.is_complete, false);
        assert.ok(open.ids().every((id, i, ids) => i === 0 || id > ids[i - 1]!), "in commit order");
        assert.ok(!open.states.includes("reconnecting"));
        a.close();
        b.close();
        assert.equal(a.state, "closed");
      });

      test("a refused filter fails the subscription with the server's message", async () => {
        const alice = await signedIn("alice");
        const subscription = alice.subscribe("todo", { transport, filters: { nope: 1 } as never }, () => undefined);
        await assert.rejects(subscription.ready, (error: CapebaseError) => error.status === 400);
        assert.equal(subscription.state, "failed");
        assert.match(subscription.error?.message ?? "", /Unknown filter field 'nope'/);
        assert.equal(subscription.error?.status, 400);
        subscription.close();
        assert.throws(() => alice.subscribe("todo", { filters: { task: { contains: "x" } } as never }, () => undefined), /comparison operators only/);
      });

      test("an unusable resume token gets a reset; changes wait for onReset to finish", async () => {
        const alice = await signedIn("alice");
        const order: string[] = [];
        let release!: () => void;
        const reloaded = new Promise<void>((done) => (release = done));
        const subscription = alice.subscribe(
          "todo",
          {
            transport,
            resume: "0",
            filters: { task: `${transport} during the reload` },
            onReset: async ({ reason }) => {
              order.push(`reset: ${reason}`);
              await reloaded;
              order.push("reloaded");
            },
          },
          (change) => order.push(`${change.event} ${change.payload.task}`),
        );
        await eventually(() => order.length === 1, () => order.join());
        assert.match(order[0]!, /^reset: /);
        await writer.from("todo").create({ task: `${transport} during the reload` });
        await sleep(300);
        assert.equal(order.length, 1, "held while the reload runs");
        release();
        await eventually(() => order.length === 3, () => order.join());
        assert.deepEqual(order.slice(1), ["reloaded", `INSERT ${transport} during the reload`]);
        subscription.close();
      });
    });
  }

  describe("token renewal", () => {
    test("the token is renewed before it expires and the stream follows without a gap", async () => {
      // Renewed every 1.5 s: 1.5 s after each sign-in or refresh, long before it expires.
      const margin = (TOKEN_LIFETIME - 1 - 1.5) * 1000;
      const alice = await signedIn("alice", new Network(), new PasswordAuth({ refreshMargin: margin }));
      const recorder = new Recorder<Row<"todo">>();
      const opens: boolean[] = [];
      const subscription = alice.subscribe(
        "todo",
        { filters: { task: "tick" }, onState: recorder.onState, onOpen: (resumed) => opens.push(resumed) },
        recorder.handler,
      );
      await eventually(() => subscription.resumeToken !== null, () => subscription.state);
      let renewals = 0;
      alice.auth.onChange((_session, event) => (renewals += Number(event === "refreshed")));
      const created: number[] = [];
      while (renewals < 2) {
        created.push((await writer.from("todo").create({ task: "tick" })).id);
        await sleep(200);
      }
      await eventually(() => recorder.changes.length >= created.length, () => `${recorder.changes.length}/${created.length}`);
      await sleep(300);
      assert.deepEqual(recorder.changes.map((c) => c.payload.id), created, "each change once, in order");
      assert.ok(opens.length >= 2 && opens.slice(1).every(Boolean), `reconnected with the new token, resuming: ${opens}`);
      assert.deepEqual(recorder.states, ["live"], "never seen as reconnecting");
      subscription.close();
    });
  });
}
