// live(table) without a limit asks for limit=100 ("the server's default page size"), whatever
// the app's CrudConfig says: with max_page_size=50 the live query fails with a 422 although
// list() without a limit works.
import { startServer, client, expect, done } from "./harness.mjs";

const server = await startServer({ module: "attacks.small_page_app" });
try {
  const cape = client.createClient(server.url, { auth: client.tokenAuth(null) });
  for (let i = 0; i < 3; i += 1) await cape.from("item").create({ name: `i${i}` });
  const listed = await cape.from("item").list();
  const live = cape.live("item", { orderBy: "name" });
  const outcome = await live.ready.then(() => "ready", (e) => `${e.status} ${e.message}`);
  expect(outcome === "ready", "live() without a limit works where list() without a limit does", `list() gave ${listed.length} rows; live.ready: ${outcome}`);
  live.close();
} finally {
  await server.close();
}
done();
