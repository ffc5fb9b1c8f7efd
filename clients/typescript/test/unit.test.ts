// The pieces that need no server: the list grammar, ordering, the SSE parser, errors.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CapebaseError } from "../src/errors.js";
import { compareCodePoints, compareDecimals, durationMicros, instant, likePattern, matchesWhere, rowComparator } from "../src/order.js";
import { encodeQuery, splitForStream } from "../src/query.js";
import { SseParser, interpret } from "../src/sse.js";
import { endForClose } from "../src/websocket.js";

describe("list grammar", () => {
  test("encodes filters, operators, order, paging and count in a stable order", () => {
    const pairs = encodeQuery({
      where: {
        is_complete: false,
        task: { contains: "milk", ne: "x" },
        id: { in: [1, 2, 3], gte: 2 },
        done_at: null,
        note: { ne: null },
        inserted_at: { lt: new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 6)) },
      },
      orderBy: ["-inserted_at", "id"],
      limit: 20,
      offset: 40,
      count: true,
    });
    assert.deepEqual(pairs, [
      ["is_complete", "false"],
      ["task__contains", "milk"],
      ["task__ne", "x"],
      ["id__in", "1,2,3"],
      ["id__gte", "2"],
      ["done_at__isnull", "true"],
      ["note__isnull", "false"],
      ["inserted_at__lt", "2025-01-02T03:04:05.006Z"],
      ["order_by", "-inserted_at,id"],
      ["limit", "20"],
      ["offset", "40"],
      ["count", "true"],
    ]);
  });

  test("refuses what the server's grammar does not have yet, by name", () => {
    for (const key of ["or", "select", "expand", "cursor"]) {
      assert.throws(
        () => encodeQuery({ [key]: [] }),
        (error: unknown) => error instanceof CapebaseError && error.kind === "usage" && error.message.includes(`'${key}'`),
      );
    }
    assert.throws(() => encodeQuery({ where: { id: { between: [1, 2] } } }), /Unknown operator 'between'/);
    assert.throws(() => encodeQuery({ where: { task: { in: ["a,b"] } } }), /cannot contain a comma/);
    assert.throws(() => encodeQuery({ where: { id: { in: [] } } }), /non-empty array/);
    assert.throws(() => encodeQuery({ limit: -1 }), /whole number/);
    assert.throws(() => encodeQuery({ where: { score: Number.NaN } }), /cannot be compared/);
  });

  test("splits what a stream can filter from the text operators", () => {
    const { stream, local } = splitForStream({ is_complete: false, task: { icontains: "MILK", ne: "x" } });
    assert.deepEqual(stream, { is_complete: { eq: false }, task: { ne: "x" } });
    assert.deepEqual(local, { task: { icontains: "MILK" } });
  });
});

describe("ordering as the server does", () => {
  test("datetimes compare as instants to the microsecond, whatever their offset", () => {
    assert.ok(instant("2025-01-01T12:00:00Z") < instant("2025-01-01T12:00:00.000001Z"));
    assert.equal(instant("2025-01-01T12:00:00+02:00"), instant("2025-01-01T10:00:00Z"));
    assert.equal(instant("2025-01-01T12:00:00.5Z"), instant("2025-01-01T12:00:00.500000Z"));
    // As text, "…00Z" sorts after "…00.5Z": the comparator must not compare text.
    const compare = rowComparator("at", { primaryKey: "id", fields: { id: "integer", at: "datetime" } });
    assert.equal(compare({ id: 1, at: "2025-01-01T12:00:00Z" }, { id: 2, at: "2025-01-01T12:00:00.5Z" }), -1);
  });

  test("decimals, durations and text by code point", () => {
    assert.equal(compareDecimals("12.50", "12.5"), 0);
    assert.equal(compareDecimals("9.99", "10"), -1);
    assert.equal(compareDecimals("-2", "-10"), 1);
    assert.equal(compareDecimals("0.00", "-0"), 0);
    assert.equal(compareDecimals("1E+2", "99.5"), 1);
    assert.equal(durationMicros("P1DT2H"), (26 * 3600) * 1e6);
    assert.equal(durationMicros("-PT0.5S"), -500_000);
    assert.ok(durationMicros("P1W") > durationMicros("P6DT23H59M59.999999S"));
    // U+FF5E sorts before U+1F600 by code point, after it by UTF-16 unit.
    assert.equal(compareCodePoints("\uff5e", "\u{1f600}"), -1);
    assert.equal(compareCodePoints("a", "ab"), -1);
  });

  test("nulls, descending terms and the primary key as the last tie-break", () => {
    const schema = { primaryKey: "id", fields: { id: "integer", score: "number" } } as const;
    const rows = [
      { id: 3, score: 1 },
      { id: 1, score: null },
      { id: 2, score: 1 },
    ];
    assert.deepEqual([...rows].sort(rowComparator("-score", schema)).map((r) => r.id), [1, 2, 3]);
    assert.deepEqual([...rows].sort(rowComparator("score", schema)).map((r) => r.id), [2, 3, 1]);
    assert.deepEqual([...rows].sort(rowComparator("-score", schema, "smallest")).map((r) => r.id), [2, 3, 1]);
    assert.deepEqual([...rows].sort(rowComparator("score", schema, "smallest")).map((r) => r.id), [1, 2, 3]);
    const enums = { primaryKey: "id", fields: { id: "integer", kind: "enum" }, enums: { kind: ["temperature", "humidity"] } } as const;
    assert.equal(rowComparator("kind", enums)({ id: 1, kind: "temperature" }, { id: 2, kind: "humidity" }), -1);
  });

  test("text operators match as the server's do", () => {
    const schema = { primaryKey: "id", fields: { id: "integer", task: "string" } } as const;
    assert.ok(likePattern("buy%milk_", false).test("buy oat milks"));
    assert.ok(!likePattern("buy%", false).test("Buy milk"));
    assert.ok(likePattern("buy%", true).test("Buy milk"));
    assert.ok(likePattern("100\\%", false).test("100%"));
    assert.ok(!likePattern("100\\%", false).test("1000"));
    assert.ok(matchesWhere({ id: 1, task: "Buy milk" }, { task: { icontains: "MILK" } }, schema));
    assert.ok(!matchesWhere({ id: 1, task: "Buy milk" }, { task: { contains: "MILK" } }, schema));
    assert.ok(matchesWhere({ id: 1, task: "Buy milk" }, { task: { startswith: "Buy" }, id: { in: [1, 2] } }, schema));
    assert.ok(!matchesWhere({ id: 1, task: null }, { task: { contains: "" } }, schema));
  });
});

describe("SSE parser", () => {
  test("reads events split anywhere, \\r\\n included, and skips comments", () => {
    const text = ": heartbeat\r\n\r\nid: t1\r\nevent: ready\r\ndata: {\"event\":\"ready\"}\r\n\r\nid: t2\r\ndata: {\"id\":2}\r\n\r\n";
    for (let cut = 0; cut <= text.length; cut += 1) {
      const parser = new SseParser();
      const events = [...parser.feed(text.slice(0, cut)), ...parser.feed(text.slice(cut))];
      assert.deepEqual(
        events.map((e) => [e.event, e.id, e.data]),
        [
          ["ready", "t1", '{"event":"ready"}'],
          ["message", "t2", '{"id":2}'],
        ],
        `cut at ${cut}`,
      );
    }
  });

  test("multi-line data, retry, and an id with no data dispatches nothing", () => {
    const parser = new SseParser();
    const events = parser.feed("data: a\ndata: b\nretry: 5000\nevent: unavailable\n\nid: x\n\n");
    assert.deepEqual(events, [{ event: "unavailable", data: "a\nb", id: null, retry: 5000 }]);
  });
});

describe("SSE events", () => {
  const event = (name: string, data: unknown, id: string | null = null, retry: number | null = null) => ({
    event: name,
    data: JSON.stringify(data),
    id,
    retry,
  });

  test("changes, ready and reset carry the token to resume from", () => {
    const change = { id: 4, table: "todo", event: "INSERT", payload: { id: 1 }, old: null, timestamp: "t" };
    assert.deepEqual(interpret(event("message", change, "tok4")), { kind: "change", change, token: "tok4" });
    assert.deepEqual(interpret(event("ready", { event: "ready", id: "tok0" }, "tok0")), { kind: "ready", token: "tok0" });
    assert.deepEqual(interpret(event("reset", { event: "reset", id: 9, resume: "tok9", reason: "expired token" }, "tok9")), {
      kind: "reset",
      token: "tok9",
      reason: "expired token",
    });
  });

  test("expired and overflow resume at once; unavailable after the server's retry, from its token", () => {
    assert.deepEqual(interpret(event("expired", { event: "expired" })), { action: "reconnect", delay: "now" });
    // Not the overflow's token: changes queued behind the last one sent were dropped, and a
    // token taken at that moment may no longer name them as missing. Our last token does.
    assert.deepEqual(interpret(event("overflow", { event: "overflow", resume: "later" })), { action: "reconnect", delay: "now" });
    assert.deepEqual(interpret(event("unavailable", { event: "unavailable", resume: "tok7" }, "tok7", 5000)), {
      action: "reconnect",
      delay: 5000,
      resume: "tok7",
    });
  });
});

describe("errors", () => {
  test("carry the server's status, message and field errors", () => {
    const headers = new Headers({ "retry-after": "3" });
    const invalid = CapebaseError.fromResponse(
      422,
      { detail: [{ loc: ["body", "task"], msg: "String should have at least 1 character", type: "string_too_short", ctx: { min_length: 1 } }] },
      headers,
    );
    assert.equal(invalid.kind, "invalid");
    assert.equal(invalid.message, "task: String should have at least 1 character");
    assert.deepEqual(invalid.fieldErrors[0]?.ctx, { min_length: 1 });
    assert.equal(invalid.retryAfter, 3);
    const denied = CapebaseError.fromResponse(403, { detail: "Permission denied: cannot update Todo" }, new Headers());
    assert.equal(denied.kind, "forbidden");
    assert.equal(denied.message, "Permission denied: cannot update Todo");
    assert.ok(denied instanceof Error);
  });

  test("WebSocket close codes map to resume, renew or stop", () => {
    assert.deepEqual(endForClose(1008, "credentials expired", true, "ws://x"), { action: "reconnect", delay: "now" });
    assert.deepEqual(endForClose(1008, "Invalid or expired token", false, "ws://x"), { action: "renew-auth" });
    const bad = endForClose(1008, "Unknown filter field 'nope'", true, "ws://x");
    assert.equal(bad.action, "fail");
    assert.deepEqual(endForClose(1013, "too slow; resume from abc", true, "ws://x"), { action: "reconnect", delay: "now" });
    assert.equal(endForClose(1012, "", true, "ws://x").action, "reconnect");
  });
});
