// Over WebSocket the stream authenticates by query parameters; the URL with them (the bearer
// token itself with tokenAuth) is copied into CapebaseError.url of a failed stream, which apps
// log. Run with node --experimental-websocket on Node 20.
import { startServer, client, expect, done, eventually } from "./harness.mjs";

const server = await startServer();
try {
  const login = await fetch(`${server.url}/auth/token`, { method: "POST", body: new URLSearchParams({ username: "alice", password: "alice-password" }) });
  const { access_token: token } = await login.json();
  const cape = client.createClient(server.url, { auth: client.tokenAuth(token), transport: "websocket", WebSocket: globalThis.WebSocket });
  const sub = cape.subscribe("todo", { filters: { nope: 1 } }, () => undefined);
  await sub.ready.catch(() => undefined);
  await eventually(() => sub.state === "failed", () => sub.state);
  console.log(`state ${sub.state}; error.url = ${sub.error?.url?.slice(0, 120)}...`);
  expect(!String(sub.error?.url).includes(token), "a failed stream's error does not carry the access token", `error.url contains access_token=<the bearer token>`);
  expect(!String(sub.error?.message).includes(token) && !String(sub.error?.stack).includes(token), "nor does its message or stack");
  cape.close();
} finally {
  await server.close();
}
done();
