// The example of docs/guides/client.md ("Browser and Node client") runs as written against the app.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { server } from "./fixture.js";
import { ROOT } from "./server.js";

/** The README example. */
export function readmeSuite(): void {
  describe("README example", () => {
    test("runs and prints what its comments say", async () => {
      const example = join(ROOT, "clients", "typescript", "build", "test", "readme", "example.js");
      const { stdout } = await promisify(execFile)(process.execPath, [example], {
        env: { ...process.env, CAPEBASE_URL: server().url },
        timeout: 30_000,
      });
      const lines = stdout.trim().split("\n");
      const created = /^INSERT (\d+)$/m.exec(stdout)?.[1];
      assert.ok(created, stdout);
      for (const event of ["UPDATE", "DELETE"]) assert.ok(lines.includes(`${event} ${created}`), `${event} missing:\n${stdout}`);
      assert.match(stdout, /todos about milk; the newest: buy milk/);
      assert.ok(lines.includes("422 task task: String should have at least 1 character"), stdout);
      assert.ok(lines.some((line) => line.startsWith("open:") && line.includes("buy milk")), "the live query showed it");
    });
  });
}
