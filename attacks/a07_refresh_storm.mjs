// With a one-second access token (expires_in = 1), PasswordAuth computes a lifetime of 0 and
// renews at once, forever: it hammers /auth/refresh (each renewal schedules the next at 0 ms).
import { startServer, client, expect, done, sleep } from "./harness.mjs";

const server = await startServer({ env: { TS_APP_TOKEN_LIFETIME: process.env.TOKEN ?? "1" } });
try {
  let refreshes = 0;
  const counting = (url, init) => {
    if (url.endsWith("/auth/refresh")) refreshes += 1;
    return fetch(url, init);
  };
  const cape = client.createClient(server.url, { fetch: counting });
  await cape.auth.signIn("alice", "alice-password");
  await sleep(3000);
  console.log(`session expiresAt-now: ${cape.auth.session?.expiresAt - Date.now()} ms; refreshAt-now: ${cape.auth.session?.refreshAt - Date.now()} ms`);
  expect(refreshes <= 6, "at most a few refreshes in 3 s with a 1 s token", `${refreshes} POST /auth/refresh in 3 s`);
  cape.close();
} finally {
  await server.close();
}
done();
