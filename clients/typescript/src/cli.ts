#!/usr/bin/env node
// capebase-types: write the TypeScript types of a capebase app's tables.
//
//   npx capebase-types http://127.0.0.1:8000 --out src/capebase-types.ts
//
// The source is the app's URL (its /openapi.json is read), an OpenAPI URL, or a JSON file.

import { readFile, writeFile } from "node:fs/promises";
import { generateTypes } from "./generate.js";

const USAGE = "usage: capebase-types <app URL | openapi.json URL | openapi.json file> [--out FILE]";

async function main(args: string[]): Promise<number> {
  let source: string | undefined;
  let out: string | undefined;
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] as string;
    if (arg === "--out" || arg === "-o") out = args[++i];
    else if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      return 0;
    } else if (source === undefined) source = arg;
    else {
      console.error(USAGE);
      return 2;
    }
  }
  if (source === undefined || (out === undefined && args.includes("--out"))) {
    console.error(USAGE);
    return 2;
  }
  let document: unknown;
  let named = source;
  try {
    if (/^https?:\/\//.test(source)) {
      const url = new URL(source);
      if (!url.pathname.endsWith(".json")) url.pathname = `${url.pathname.replace(/\/+$/, "")}/openapi.json`;
      named = url.toString();
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${named} answered ${response.status}`);
      document = await response.json();
    } else {
      document = JSON.parse(await readFile(source, "utf8"));
    }
    const text = generateTypes(document, named);
    if (out === undefined) process.stdout.write(text);
    else await writeFile(out, text);
  } catch (error) {
    console.error(`capebase-types: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
