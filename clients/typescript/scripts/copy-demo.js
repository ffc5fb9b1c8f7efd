// Copy the built client (dist/*.js, without the Node-only type generator) to the todo demo,
// which serves it as static ES modules: `npm run build:demo` after changing src/.

import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const here = join(dirname(fileURLToPath(import.meta.url)), "..");
export const DEMO = join(here, "..", "..", "examples", "todo", "static", "capebase");
const NODE_ONLY = new Set(["cli.js", "generate.js"]);

/** The built modules the browser needs. */
export function browserModules() {
  return readdirSync(join(here, "dist"))
    .filter((name) => name.endsWith(".js") && !NODE_ONLY.has(name))
    .sort();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  rmSync(DEMO, { recursive: true, force: true });
  mkdirSync(DEMO, { recursive: true });
  for (const name of browserModules()) copyFileSync(join(here, "dist", name), join(DEMO, name));
  console.log(`copied ${browserModules().length} modules to ${DEMO}`);
}
