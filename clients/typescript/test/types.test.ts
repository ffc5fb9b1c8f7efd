// The generated types at work: what tsc must accept and refuse (`@ts-expect-error` fails the
// build when the line compiles). Nothing runs against a server here.

import assert from "node:assert/strict";
import { test } from "node:test";
import { type Change, createClient, encodeQuery } from "../src/index.js";
import type { Database, Row } from "./generated/schema.js";

function typed(): void {
  const cape = createClient<Database>("http://127.0.0.1:1");
  const todos = cape.from("todo");
  void todos.create({ task: "fine", is_complete: true });
  // @ts-expect-error: not a field of CreateTodo
  void todos.create({ task: "x", user_id: "bob" });
  // @ts-expect-error: task is required
  void todos.create({ is_complete: true });
  // @ts-expect-error: the key of a todo is a number
  void todos.get("7");
  void todos.list({ where: { task: { icontains: "milk" }, id: { in: [1, 2] } }, orderBy: ["-inserted_at", "id"] });
  // @ts-expect-error: no such field
  void todos.list({ where: { nope: 1 } });
  // @ts-expect-error: text operators are for text fields
  void todos.list({ where: { id: { contains: "1" } } });
  // @ts-expect-error: no such field to sort on
  void todos.list({ orderBy: "-nope" });
  void todos.list({ count: true }).then(({ rows, total }) => rows.length + total);
  // @ts-expect-error: no such table
  cape.from("nope");
  cape.subscribe("todo", { filters: { is_complete: false } }, (change: Change<Row<"todo">>) => {
    if (change.event === "DELETE") void change.payload.id;
    else void change.payload.task.toUpperCase();
  });
  // @ts-expect-error: streams filter with comparison operators only
  cape.subscribe("todo", { filters: { task: { contains: "x" } } }, () => undefined);
  const live = cape.live("reading", { where: { kind: "humidity" }, orderBy: "-amount", limit: 5 });
  const first: Row<"reading"> | undefined = live.rows[0];
  void first;
  cape.close();
}

test("the generated types accept the API's uses and refuse wrong ones (checked by tsc)", () => {
  assert.equal(typeof typed, "function");
  assert.deepEqual(encodeQuery({}), []);
});
