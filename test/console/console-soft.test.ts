/**
 * Staff see software tokens in the console (issue 15, item 8), on SQLite:
 * the keyfob list marks a soft token with its kind (ソフトウェアトークン), the
 * token's page names the kind and whether the app is set up, and offers
 * neither issue nor resync for it (keyfob-only actions, lifecycle.ts kinds).
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { addStaff } from "../../host/registry/staff.js";
import { startServer } from "../../host/server/serve.js";
import { finishCustomerRegistration, startCustomerRegistration } from "../../host/soft/client.js";
import { softSerial } from "../../host/soft/protocol.js";
import { ENGINES, freshDb } from "../registry/support.js";
import { Client } from "./support.js";

const CLI = { name: "staff:test", source: "cli" };
let db: Database;
let drop: () => Promise<void>;
let server: Awaited<ReturnType<typeof startServer>>;

beforeEach(async () => {
  ({ db, drop } = await freshDb(ENGINES[0]));
  server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
  await addStaff(db, "alice", "teller", "alice-correct-horse", CLI);
});
afterEach(async () => {
  await server.close();
  await drop();
});

it("the list and the token page show a soft token's kind in Japanese; no issue or resync offered for it", async () => {
  const reg = server.registry;
  await reg.soft.configure({ serviceId: "10112235", bankName: "B", appUrl: "https://b.example/app/" }, CLI);
  await reg.registerOne({ serial: "FK0001", manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: randomBytes(20) }, CLI, "test");
  const s = await startCustomerRegistration("Correct-horse9");
  const r = await reg.soft.startIssuance("c1", s.request.registrationRequest, CLI);
  await reg.soft.issue("c1", await finishCustomerRegistration(s.clientRegistrationState, "Correct-horse9", r, "a@example.jp"), CLI);
  const serial = softSerial(r.userId);
  const c = new Client(server.url, { "accept-language": "ja" });
  expect((await c.signIn("alice", "alice-correct-horse")).status).toBe(303);
  const list = await c.get("/console/keyfobs");
  expect(list.status).toBe(200);
  const softRow = list.text.split("<tr>").find((row) => row.includes(serial))!;
  expect(softRow).toContain("ソフトウェアトークン");
  const fobRow = list.text.split("<tr>").find((row) => row.includes("FK0001"))!;
  expect(fobRow).not.toContain("ソフトウェアトークン");
  const page = await c.get(`/console/keyfobs/${serial}`);
  expect(page.status).toBe(200);
  expect(page.text).toContain("ソフトウェアトークン");
  expect(page.text).toContain("アプリ未設定");
  expect(page.text).not.toContain(`/console/keyfobs/${serial}/resync`);
  const fob = await c.get("/console/keyfobs/FK0001");
  expect(fob.text).toContain("キーホルダー型");
});
