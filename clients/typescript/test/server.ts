// A real capebase app for the tests: `python -m tests.clients.ts_app` on a free port and a
// fresh SQLite file, with the built-in auth. CAPEBASE_PYTHON names the interpreter (default:
// the repository's .venv).

import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root (this file is clients/typescript/build/test/server.js once built). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
const PYTHON = resolve(process.env["CAPEBASE_PYTHON"] ?? join(ROOT, ".venv", "bin", "python"));
const START_WITHIN_MS = 30_000;

export interface ServerOptions {
  /** Seconds an access token lasts (default 900). */
  tokenLifetime?: number;
}

export class AppServer {
  readonly url: string;
  private process: ChildProcess | null = null;
  private output = "";
  private readonly directory: string;

  private constructor(
    readonly port: number,
    private readonly options: ServerOptions,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.directory = mkdtempSync(join(tmpdir(), "capebase-ts-"));
  }

  /** Start a server on a free port and wait until it serves. */
  static async start(options: ServerOptions = {}): Promise<AppServer> {
    const server = new AppServer(await freePort(), options);
    await server.spawn();
    return server;
  }

  private secret = randomBytes(48).toString("base64url");

  async spawn(): Promise<void> {
    const env = {
      ...process.env,
      PORT: String(this.port),
      TS_APP_DB: join(this.directory, "app.db"),
      CAPEBASE_SECRET: this.secret, // the same across a restart: tokens survive it
      TS_APP_TOKEN_LIFETIME: String(this.options.tokenLifetime ?? 900),
    };
    const child = spawn(PYTHON, ["-m", "tests.clients.ts_app"], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    this.process = child;
    let failed: Error | null = null;
    child.once("error", (error) => (failed = error));
    child.stdout?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    const deadline = Date.now() + START_WITHIN_MS;
    while (Date.now() < deadline) {
      if (failed !== null) throw new Error(`cannot start ${PYTHON} (set CAPEBASE_PYTHON): ${String(failed)}`);
      if (child.exitCode !== null) throw new Error(`the app exited with ${child.exitCode}:\n${this.output}`);
      try {
        const response = await fetch(`${this.url}/openapi.json`);
        if (response.ok) {
          await response.body?.cancel();
          return;
        }
      } catch {
        // not up yet
      }
      await sleep(100);
    }
    throw new Error(`the app did not start within ${START_WITHIN_MS} ms:\n${this.output}`);
  }

  /** Stop the server (SIGTERM, as a deploy would) and wait for it to exit. */
  async stop(): Promise<void> {
    const child = this.process;
    this.process = null;
    if (child === null || child.exitCode !== null) return;
    const exited = new Promise<void>((done) => child.once("exit", () => done()));
    child.kill("SIGTERM");
    const killed = sleep(10_000).then(() => child.kill("SIGKILL"));
    await Promise.race([exited, killed]);
    await exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.spawn();
  }

  /** Stop for good and remove the database. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.directory, { recursive: true, force: true });
  }

  /** What the server printed (for failure messages). */
  log(): string {
    return this.output;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

/** Wait until `check()` is true, polling; fail with `message()` after `timeout` ms. */
export async function eventually(check: () => boolean | Promise<boolean>, message: () => string, timeout = 10_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${message()}`);
    await sleep(20);
  }
}

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => done(port));
    });
  });
}
