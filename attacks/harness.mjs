// Shared helpers for the attack scripts: start tests.clients.ts_app (or another module) on a
// free port with a fresh SQLite file, import the built client from clients/typescript/dist.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const PYTHON = join(ROOT, ".venv", "bin", "python");
export const client = await import(join(ROOT, "clients/typescript/dist/index.js"));

// The ts_app's schema, as capebase-types writes it (clients/typescript/test/generated/schema.ts).
export const schema = {
  reading: {"primaryKey":"id","fields":{"id":"uuid","owner":"string","label":"string","note":"string","amount":"decimal","score":"number","taken_at":"datetime","duration":"duration","kind":"enum","data":"json"},"enums":{"kind":["temperature","humidity"]}},
  secret: {"primaryKey":"id","fields":{"id":"integer","owner":"string","body":"string"}},
  todo: {"primaryKey":"id","fields":{"id":"integer","user_id":"string","task":"string","is_complete":"boolean","inserted_at":"datetime"}},
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => done(p)); });
  });
}

export async function startServer({ module = "tests.clients.ts_app", env = {}, db } = {}) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "attack20-"));
  const fullEnv = { ...process.env, PORT: String(port), TS_APP_DB: db ?? join(dir, "app.db"), CAPEBASE_SECRET: "s".repeat(64), ...env };
  let output = "";
  let child;
  const url = `http://127.0.0.1:${port}`;
  const spawnIt = async () => {
    child = spawn(PYTHON, ["-m", module], { cwd: ROOT, env: fullEnv, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (c) => (output += c));
    child.stderr.on("data", (c) => (output += c));
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`server exited: ${output}`);
      try { const r = await fetch(`${url}/openapi.json`); if (r.ok) { await r.body?.cancel(); return; } } catch {}
      await sleep(100);
    }
    throw new Error("server did not start: " + output);
  };
  const stop = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((d) => child.once("exit", d));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 10000);
    await exited; clearTimeout(t);
  };
  await spawnIt();
  return {
    url, port, log: () => output, stop,
    restart: async () => { await stop(); await spawnIt(); },
    close: async () => { await stop(); rmSync(dir, { recursive: true, force: true }); },
  };
}

export async function signedIn(url, name, extra = {}) {
  const cape = client.createClient(url, { schema, ...extra });
  await cape.auth.signIn(name, `${name}-password`);
  return cape;
}

export async function eventually(check, message, timeout = 10000) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${message()}`);
    await sleep(25);
  }
}

let failures = 0;
export function expect(ok, what, detail = "") {
  if (ok) console.log(`HOLDS  ${what}`);
  else { failures += 1; console.log(`BROKEN ${what}${detail ? `\n       ${detail}` : ""}`); }
}
export function done() {
  console.log(failures ? `\n${failures} defect(s) shown` : "\nno defect shown");
  process.exit(failures ? 1 : 0);
}
