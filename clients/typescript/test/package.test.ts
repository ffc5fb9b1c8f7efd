// What the package publishes, and the demo's copy of it.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "./server.js";

const PACKAGE = join(ROOT, "clients", "typescript");
const DEMO = join(ROOT, "examples", "todo", "static", "capebase");
const NODE_ONLY = ["cli.js", "generate.js"];

function npm(...args: string[]): string {
  const cli = process.env["npm_execpath"];
  return cli ? execFileSync(process.execPath, [cli, ...args], { cwd: PACKAGE, encoding: "utf8" }) : execFileSync("npm", args, { cwd: PACKAGE, encoding: "utf8" });
}

test("npm pack lists only the built modules, their types, the README and package.json", () => {
  const [packed] = JSON.parse(npm("pack", "--dry-run", "--json", "--ignore-scripts")) as { files: { path: string }[] }[];
  const files = packed!.files.map((file) => file.path).sort();
  const strays = files.filter((path) => !/^dist\/[a-z]+\.(js|d\.ts)$/.test(path) && path !== "README.md" && path !== "package.json");
  assert.deepEqual(strays, []);
  for (const needed of ["README.md", "dist/index.js", "dist/index.d.ts", "dist/cli.js", "dist/client.d.ts"]) {
    assert.ok(files.includes(needed), `${needed} is published`);
  }
  const manifest = JSON.parse(readFileSync(join(PACKAGE, "package.json"), "utf8")) as Record<string, unknown>;
  assert.equal(manifest["dependencies"], undefined, "no runtime dependencies");
});

test("the demo serves the current build (run `npm run build:demo` after changing src/)", () => {
  const built = readdirSync(join(PACKAGE, "dist")).filter((name) => name.endsWith(".js") && !NODE_ONLY.includes(name)).sort();
  assert.deepEqual(readdirSync(DEMO).sort(), built);
  for (const name of built) {
    const text = readFileSync(join(DEMO, name), "utf8");
    assert.equal(text, readFileSync(join(PACKAGE, "dist", name), "utf8"), `${name} is stale in the demo: npm run build:demo`);
    for (const [, specifier] of text.matchAll(/\bfrom\s+"([^"]+)"/g)) {
      assert.match(specifier!, /^\.\/[a-z]+\.js$/, `${name} imports ${specifier}: a browser cannot`);
    }
  }
});
