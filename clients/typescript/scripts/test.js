// npm test: build the package and the tests with tsc, then run them with Node's test runner
// (with WebSocket on Node 20, where it is behind a flag). Extra arguments go to `node --test`.
// The documentation's client example (docs/guides/client.md) is extracted to test/readme/ first,
// so that it is compiled and run (test/readme.ts) as written, with its imports pointed at this
// checkout.

import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(here, "node_modules", "typescript", "bin", "tsc");

function run(command, args) {
  const result = spawnSync(command, args, { cwd: here, stdio: "inherit" });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

function extractReadmeExample() {
  const page = readFileSync(join(here, "..", "..", "docs", "guides", "client.md"), "utf8");
  const block = /```ts\n([\s\S]*?)```/.exec(page);
  if (!block) throw new Error("docs/guides/client.md: no ```ts block");
  let code = block[1];
  for (const [from, to] of [
    ['"@capebase/client"', '"../../src/index.js"'],
    ['"./capebase-types.js"', '"../generated/schema.js"'],
    ['"http://127.0.0.1:8000"', 'process.env["CAPEBASE_URL"] ?? "http://127.0.0.1:8000"'],
  ]) {
    if (!code.includes(from)) throw new Error(`docs/guides/client.md's example no longer has ${from}`);
    code = code.replace(from, to);
  }
  mkdirSync(join(here, "test", "readme"), { recursive: true });
  writeFileSync(join(here, "test", "readme", "example.ts"), `// Extracted from docs/guides/client.md by scripts/test.js: do not edit.\n${code}`);
}

rmSync(join(here, "build"), { recursive: true, force: true });
extractReadmeExample();
run(process.execPath, [tsc, "-p", "tsconfig.json"]);
run(process.execPath, [tsc, "-p", "tsconfig.test.json"]);
const tests = readdirSync(join(here, "build", "test"))
  .filter((name) => name.endsWith(".test.js"))
  .sort()
  .map((name) => join("build", "test", name));
const flags = Number(process.versions.node.split(".")[0]) < 22 ? ["--experimental-websocket"] : [];
run(process.execPath, [...flags, "--test", "--test-concurrency=4", ...process.argv.slice(2), ...tests]);
