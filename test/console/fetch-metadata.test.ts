/**
 * Console POSTs and Fetch Metadata: a browser's Sec-Fetch-Site other than same-origin (or none) is refused even
 * without an Origin header; a client that sends neither (curl, a script) is served as before. Session 8 review
 * (s8-rev-web): a POST without Origin was accepted whatever the browser said.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { addStaff } from "../../host/registry/staff.js";
import { startServer } from "../../host/server/serve.js";
import { Client } from "./support.js";
import { ENGINES, freshDb } from "../registry/support.js";

const CLI = { name: "staff:test", source: "cli" };
const PASSWORD = "alice-correct-horse";

let db: Database;
let drop: () => Promise<void>;
let server: Awaited<ReturnType<typeof startServer>>;

beforeAll(async () => {
  ({ db, drop } = await freshDb(ENGINES[0]));
  server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
  await addStaff(db, "alice", "teller", PASSWORD, CLI);
  for (const serial of ["FK-FM-1", "FK-FM-2", "FK-FM-3"]) {
    await server.registry.registerOne({ serial, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: randomBytes(20) }, CLI, "test");
  }
});
afterAll(async () => {
  await server?.close();
  await drop?.();
});

describe("Sec-Fetch-Site on console POSTs", () => {
  it("cross-site and same-site are refused without an Origin header, and nothing changes", async () => {
    const alice = new Client(server.url);
    expect((await alice.signIn("alice", PASSWORD)).status).toBe(303);
    const token = await alice.csrf();
    for (const site of ["cross-site", "same-site"]) {
      const r = await alice.post("/console/keyfobs/FK-FM-1/issue", { _csrf: token, customer: "mallory" }, { "sec-fetch-site": site });
      expect(r.status, site).toBe(403);
    }
    expect(await server.registry.status("FK-FM-1")).toMatchObject({ state: "in_stock", customer: null });
  });

  it("same-origin (the console's own forms) and a client without the header (curl, scripts) are served", async () => {
    const alice = new Client(server.url);
    expect((await alice.signIn("alice", PASSWORD)).status).toBe(303);
    const token = await alice.csrf();
    expect((await alice.post("/console/keyfobs/FK-FM-2/issue", { _csrf: token, customer: "C2" }, { "sec-fetch-site": "same-origin" })).status).toBe(303);
    expect((await alice.post("/console/keyfobs/FK-FM-3/issue", { _csrf: token, customer: "C3" })).status).toBe(303);
    expect((await server.registry.status("FK-FM-2")).customer).toBe("C2");
    expect((await server.registry.status("FK-FM-3")).customer).toBe("C3");
  });

  it("a cross-site sign-in (login CSRF) is refused before the password is checked", async () => {
    const c = new Client(server.url);
    const r = await c.post("/console/sign-in", { staff: "alice", password: PASSWORD }, { "sec-fetch-site": "cross-site" });
    expect(r.status).toBe(403);
    expect(c.cookies.size).toBe(0);
  });
});
