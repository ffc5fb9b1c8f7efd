// The pieces that need no server: the list grammar, ordering, the SSE parser, errors.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MIN_RENEWAL_INTERVAL, PasswordAuth } from "../src/auth.js";
import { CapebaseError } from "../src/errors.js";
import { type FetchLike, Transport } from "../src/http.js";
import { parseJson, stringifyJson } from "../src/json.js";
import { compareCodePoints, compareValues, compareDecimals, durationMicros, instant, likePattern, matchesWhere, rowComparator } from "../src/order.js";
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
    assert.equal(matchesWhere({ id: 1, task: "Buy milk" }, { task: { icontains: "MILK" } }, schema), true);
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

describe("integers past 2^53", () => {
  test("parse as BigInt, exactly; everything else as JSON.parse reads it", () => {
    const text = '{"ids":[9007199254740992,9007199254740993,-9007199254740993,9007199254740991],"f":1.5e300,"s":"12345678901234567890","n":null,"__proto__":1}';
    const parsed = parseJson(text) as Record<string, unknown>;
    assert.deepEqual(parsed["ids"], [2n ** 53n, 2n ** 53n + 1n, -(2n ** 53n) - 1n, 9007199254740991]);
    assert.equal(parsed["f"], 1.5e300);
    assert.equal(parsed["s"], "12345678901234567890");
    assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(parsed, "__proto__")?.value, 1);
    for (const plain of ['{"a":[1,2,{"b":"\\"x\\\\"}]}', '"1234567890123456789 in a string"', "[]", " 12 "]) {
      assert.deepEqual(parseJson(plain), JSON.parse(plain));
    }
    for (const bad of ["[1,]", '{"a" 1}', "12345678901234567890x", '"open']) assert.throws(() => parseJson(bad), SyntaxError);
  });

  test("BigInt values are written as JSON numbers; an unsendable body is a usage error", () => {
    assert.equal(stringifyJson({ id: 2n ** 53n + 1n, list: [-(2n ** 64n)], s: "9007199254740993n" }), '{"id":9007199254740993,"list":[-18446744073709551616],"s":"9007199254740993n"}');
    assert.equal(stringifyJson({ a: 1 }), '{"a":1}');
    assert.equal(compareValues("integer", 2n ** 53n + 1n, 2n ** 53n), 1);
    assert.equal(compareValues("integer", 2n ** 53n, 9007199254740992), 0);
    assert.equal(compareValues("integer", 3, 2), 1);
  });
});

describe("case folding as every database does", () => {
  test("ASCII folds here; other cased letters are the database's to decide (null)", () => {
    const schema = { primaryKey: "id", fields: { id: "integer", task: "string" } } as const;
    assert.equal(matchesWhere({ id: 1, task: "Buy MILK" }, { task: { icontains: "milk" } }, schema), true);
    assert.equal(matchesWhere({ id: 1, task: "Buy MILK" }, { task: { ilike: "buy%" } }, schema), true);
    assert.equal(matchesWhere({ id: 1, task: "École" }, { task: { icontains: "école" } }, schema), null);
    assert.equal(matchesWhere({ id: 1, task: "istanbul" }, { task: { icontains: "İSTANBUL" } }, schema), null);
    assert.equal(matchesWhere({ id: 1, task: "ascii" }, { task: { ilike: "%É%" } }, schema), null);
    assert.equal(matchesWhere({ id: 1, task: "東京 Tower" }, { task: { icontains: "tower" } }, schema), true);
    assert.equal(matchesWhere({ id: 1, task: "École" }, { task: { icontains: "x" }, id: 2 }, schema), false, "another condition decides");
    assert.equal(matchesWhere({ id: 1, task: "École" }, { task: { contains: "É" } }, schema), true);
  });
});

describe("credentials never in an error", () => {
  test("tokens and tickets in a URL are redacted", () => {
    const url = "ws://127.0.0.1:8000/todo/subscribe?task=a&access_token=eyJ.secret.sig&last_event_id=5&ticket=t1";
    const error = endForClose(1006, "", false, url);
    assert.equal(error.action, "reconnect");
    const reported = (error as { error?: CapebaseError }).error;
    assert.equal(reported?.url, "ws://127.0.0.1:8000/todo/subscribe?task=a&access_token=REDACTED&last_event_id=5&ticket=REDACTED");
    assert.equal(new CapebaseError(400, "x", { url: "http://user:pw@h/x?token=1" }).url, "http://REDACTED@h/x?token=REDACTED");
  });
});

describe("token renewal", () => {
  test("a token that lives under 2 s is renewed at most once a second", async () => {
    let refreshes = 0;
    let issued = 0;
    const answer = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
    const fetch: FetchLike = async (url) => {
      const tokens = { access_token: `a${issued}`, refresh_token: `r${issued++}`, expires_in: 1 };
      if (url.endsWith("/auth/refresh")) refreshes += 1;
      if (url.endsWith("/auth/me")) return answer({ id: "u", email: "u@example.com", username: "u", role: null, is_active: true, created_at: "2025-01-01T00:00:00Z" });
      return answer(tokens);
    };
    const auth = new PasswordAuth();
    auth.attach(new Transport("http://app.test", fetch));
    await auth.signIn("u", "password");
    const started = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    for (let i = 0; i < 20; i += 1) await auth.getToken();
    const elapsed = Date.now() - started;
    auth.close();
    assert.ok(refreshes >= 1, "renewed");
    assert.equal(MIN_RENEWAL_INTERVAL, 1_000);
    assert.ok(refreshes <= Math.ceil(elapsed / 1_000) + 1, `${refreshes} refreshes in ${elapsed} ms`);
  });
});
