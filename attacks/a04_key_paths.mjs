// String primary keys go into the item path with encodeURIComponent only: "." and ".." are
// left as is and the URL parser resolves them (GET /doc/. is GET /doc/, the list), and "/"
// becomes %2F, which the server decodes before routing.
import { startServer, client, expect, done } from "./harness.mjs";

const server = await startServer({ module: "attacks.types_app" });
try {
  const cape = client.createClient(server.url);
  await cape.auth.signIn("alice", "alice-password");
  const docs = cape.from("doc");
  for (const slug of [".", "..", "a/b", "100%", "x?y#z", "sp ace", "ünï"]) {
    await docs.create({ slug, title: `t-${slug}` }).catch((e) => console.log(`create ${JSON.stringify(slug)}: ${e.status} ${e.message}`));
  }
  const all = await docs.list({ limit: 50 });
  console.log("stored slugs:", JSON.stringify(all.map((d) => d.slug)));
  for (const slug of [".", "..", "a/b", "100%", "x?y#z", "sp ace", "ünï"]) {
    let got;
    try {
      got = await docs.get(slug);
    } catch (e) {
      got = e;
    }
    const ok = got && !(got instanceof Error) && !Array.isArray(got) && got.slug === slug;
    const shown = got instanceof Error ? `${got.status} ${got.message} (${got.url})` : JSON.stringify(got).slice(0, 120);
    expect(ok, `get(${JSON.stringify(slug)}) returns that row`, `got ${shown}`);
  }
  let deleted;
  try {
    await docs.delete("..");
    deleted = "ok";
  } catch (e) {
    deleted = `${e.status} ${e.message} url=${e.url}`;
  }
  const left = (await docs.list({ limit: 50 })).map((d) => d.slug);
  expect(deleted === "ok" && !left.includes(".."), `delete("..") deletes that row`, `delete said: ${deleted}; rows left ${JSON.stringify(left)}`);
} finally {
  await server.close();
}
done();
