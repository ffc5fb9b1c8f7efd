// The app every integration test talks to (started once per test file), and signed-in clients.

import { after, before } from "node:test";
import { type CapebaseClient, PasswordAuth, createClient } from "../src/index.js";
import { type Database, schema } from "./generated/schema.js";
import { AppServer } from "./server.js";
import { Network } from "./support.js";

/** Seconds an access token lasts: short enough that the longer tests run across renewals,
 * long enough for a sign-in on a busy machine. */
export const TOKEN_LIFETIME = 20;

let current: AppServer | null = null;
const clients: CapebaseClient<Database>[] = [];

before(async () => {
  current = await AppServer.start({ tokenLifetime: TOKEN_LIFETIME });
});

after(async () => {
  for (const client of clients) client.close();
  await current?.close();
});

/** The running app. */
export function server(): AppServer {
  if (current === null) throw new Error("the app is not started");
  return current;
}

/** A client of the app, through `network`, closed after the tests. */
export function client(network = new Network(), auth = new PasswordAuth()): CapebaseClient<Database> {
  const made = createClient<Database>(server().url, {
    auth,
    schema,
    fetch: network.fetch,
    WebSocket: network.WebSocket,
    retry: { initialDelay: 100, maxDelay: 1000 },
  });
  clients.push(made);
  return made;
}

/** A client signed in as `name` (alice, bob: password `<name>-password`). */
export async function signedIn(name: string, network = new Network(), auth = new PasswordAuth()): Promise<CapebaseClient<Database>> {
  const made = client(network, auth);
  await made.auth.signIn(name, `${name}-password`);
  return made;
}
