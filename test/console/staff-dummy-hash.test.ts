/**
 * The dummy hash an unknown or disabled staff ID is checked against (staff.ts dummy()), when making it fails
 * (attack review L2), on SQLite and PostgreSQL. scrypt's failure is injected by mocking node:crypto's scrypt in this
 * file only (vi.mock), so production's code has no seam for it. A failed making is not kept: the sign-in that met it
 * fails as a server error (the console's plain 500, the same page a known ID's failing scrypt gives), and the next
 * one makes the dummy again and is answered as usual. Before the fix the rejected promise was kept, and every later
 * sign-in for an unknown or disabled ID failed at once, for good, while known IDs signed in. The failed sign-in is
 * audited `signin` `error` (attack review L5), its actor as that ID's other records have it (`console:?` for an ID no
 * account has), and nothing else that tells a known ID from an unknown one.
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { ENGINES, freshDb } from "../registry/support.js";
import { Client } from "./support.js";

/** How many of the next scrypt calls fail, as OpenSSL does when it cannot have the memory. */
const inject = vi.hoisted(() => ({ pass: 0, failures: 0, calls: 0 }));
vi.mock("node:crypto", async (importOriginal) => (await import("../support/failing-scrypt.js")).withFailingScrypt(await importOriginal(), inject));

const ADMIN = { name: "staff:admin", source: "cli" };
const PW = "dummy-case-member-password";

describe.each(ENGINES)("a failed dummy hash on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  // A fresh staff.ts per case: its dummy is made once per process and cost, and each case starts with none.
  let staff: typeof import("../../host/registry/staff.js");
  const records = () => db.all<{ actor: string; source: string; outcome: string; detail: string | null; serial: string | null; customer: string | null }>("SELECT actor, source, outcome, detail, serial, customer FROM audit WHERE action = 'signin' ORDER BY id");

  beforeEach(async () => {
    vi.resetModules();
    staff = await import("../../host/registry/staff.js");
    ({ db, drop } = await freshDb(engine));
    await staff.addStaff(db, "sato", "teller", PW, ADMIN);
    await staff.addStaff(db, "gone", "teller", PW, ADMIN);
    await staff.disableStaff(db, "gone", ADMIN);
    inject.failures = 0;
  });
  afterEach(async () => {
    inject.failures = 0;
    await drop();
  });

  it("an unknown ID: the sign-in that met the failure fails (with it), the next makes the dummy again and is refused as usual", async () => {
    inject.failures = 1;
    await expect(staff.signIn(db, "nobody", "wrong-password-1", "198.51.100.1")).rejects.toThrow(/memory limit exceeded/);
    expect(inject.failures).toBe(0);
    // Made again: both of its later sign-ins are answered, and the member still signs in.
    const before = inject.calls;
    expect(await staff.signIn(db, "nobody", "wrong-password-3", "198.51.100.1")).toEqual({ ok: false, reason: "bad_credentials" });
    expect(inject.calls - before).toBe(2); // the dummy made (once), then checked against
    expect(await staff.signIn(db, "nobody", "wrong-password-4", "198.51.100.1")).toEqual({ ok: false, reason: "bad_credentials" });
    expect(await staff.signIn(db, "sato", PW, "198.51.100.1")).toMatchObject({ ok: true, name: "sato" });
    // One record per sign-in: the failed one as `error`, under the same actor (no ID) as the unknown ID's answered ones.
    const r = await records();
    expect(r.map((a) => a.outcome)).toEqual(["error", "unknown_staff", "unknown_staff", "ok"]);
    expect(r[0]).toEqual({ ...r[1], outcome: "error" });
    expect(r[0]).toEqual({ actor: "console:?", source: "198.51.100.1", outcome: "error", detail: null, serial: null, customer: null });
  }, 30_000);

  it("a disabled ID: the same (its sign-ins are checked against the dummy too)", async () => {
    inject.failures = 1;
    await expect(staff.signIn(db, "gone", PW, "198.51.100.3")).rejects.toThrow(/memory limit exceeded/);
    expect(await staff.signIn(db, "gone", PW, "198.51.100.3")).toEqual({ ok: false, reason: "bad_credentials" });
    expect(await staff.signIn(db, "gone", PW, "198.51.100.3")).toEqual({ ok: false, reason: "bad_credentials" });
    // The failed one recorded as the `disabled` ones are (the ID named, as they name it), outcome `error`.
    const r = await records();
    expect(r.map((a) => a.outcome)).toEqual(["error", "disabled", "disabled"]);
    expect(r[0]).toEqual({ ...r[1], outcome: "error" });
  }, 30_000);

  it("through the console: the failure is the same plain 500 for an unknown ID as for a known one, and the next unknown ID gets its usual 401", async () => {
    const { startServer } = await import("../../host/server/serve.js");
    const server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const c = new Client(server.url, { "accept-language": "en" });
      // The scrypt fails: making the dummy for the unknown ID, checking the known one's own hash.
      inject.failures = 1;
      const unknown = await c.signIn("nobody", "wrong-password-5");
      inject.failures = 1;
      const known = await c.signIn("sato", "wrong-password-5");
      expect([unknown.status, known.status]).toEqual([500, 500]);
      // One page for both: nothing in it tells the IDs apart (the CSP nonce, per response, aside).
      const page = (t: string) => t.replace(/nonce-[A-Za-z0-9+/=_-]+|nonce="[^"]*"/g, "nonce");
      expect(page(unknown.text)).toBe(page(known.text));
      expect(unknown.text).not.toContain("nobody");
      expect(unknown.text).not.toContain("memory");
      // Not kept: the next unknown ID is refused as usual, as is a wrong password for the known one.
      expect((await c.signIn("nobody", "wrong-password-6")).status).toBe(401);
      expect((await c.signIn("sato", "wrong-password-6")).status).toBe(401);
      expect((await c.signIn("sato", PW)).status).toBe(303);
      // One record per sign-in, the two 500s each an `error` differing only in the actor (as unknown_staff's and
      // bad_password's do: an ID no account has is never written down).
      const r = await records();
      expect(r.map((a) => a.outcome)).toEqual(["error", "error", "unknown_staff", "bad_password", "ok"]);
      expect(r.slice(0, 2).map((a) => a.actor)).toEqual(["console:?", "console:sato"]);
      expect({ ...r[0], actor: "" }).toEqual({ ...r[1], actor: "" });
    } finally {
      stderr.mockRestore();
      await server.close();
    }
  }, 30_000);
});
