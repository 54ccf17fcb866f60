/**
 * A sign-in whose scrypt fails (a server error: OpenSSL refused the memory, say) is not a wrong password (staff.ts
 * checkSignIn, giveBack), on SQLite and PostgreSQL. The try is counted before the password is checked, so parallel
 * guesses cannot pass the limit; before this fix a try that then failed kept its count, so five server errors locked
 * the member out from that address, the lock audited as a guess. scrypt's failure is injected by mocking node:crypto's
 * scrypt in this file only (vi.mock, as staff-dummy-hash.test.ts does), so production's code has no seam for it.
 * Each such sign-in leaves one `signin` `error` record (attack review L5: before, it left none, so the audit missed
 * the sign-ins a server error answered), and a failing audit write does not hide the scrypt's error.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { ENGINES, freshDb } from "../registry/support.js";

/** After `pass` more scrypt calls succeed, the next `failures` fail, as OpenSSL does when it cannot have the memory. */
const inject = vi.hoisted(() => ({ pass: 0, failures: 0, calls: 0 }));
vi.mock("node:crypto", async (importOriginal) => (await import("../support/failing-scrypt.js")).withFailingScrypt(await importOriginal(), inject));

const ADMIN = { name: "staff:admin", source: "cli" };
const PW = "error-case-member-password";
const FROM = "198.51.100.7";

describe.each(ENGINES)("a sign-in that fails as a server error on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  let staff: typeof import("../../host/registry/staff.js");
  const outcomes = async () => (await db.all<{ outcome: string }>("SELECT outcome FROM audit WHERE action = 'signin' ORDER BY id")).map((a) => a.outcome);
  const errors = () => db.all<{ actor: string; source: string; detail: string | null; serial: string | null; customer: string | null }>("SELECT actor, source, detail, serial, customer FROM audit WHERE action = 'signin' AND outcome = 'error' ORDER BY id");
  /** What an error record of sato's sign-in from FROM holds: who and where, nothing of the password or its hash. */
  const SATO_ERROR = { actor: "console:sato", source: FROM, detail: null, serial: null, customer: null };
  const count = async () => (await db.get<{ failed_signins: number; locked_until: number | null }>("SELECT failed_signins, locked_until FROM staff_signin_locks WHERE staff = 'sato' AND source = ?", [FROM]));

  beforeEach(async () => {
    vi.resetModules();
    staff = await import("../../host/registry/staff.js");
    ({ db, drop } = await freshDb(engine));
    await staff.addStaff(db, "sato", "teller", PW, ADMIN);
    Object.assign(inject, { pass: 0, failures: 0 });
  });
  afterEach(async () => {
    Object.assign(inject, { pass: 0, failures: 0 });
    await drop();
  });

  it("five server errors in a row neither count nor lock: the member then signs in, and nothing was audited as a guess", async () => {
    for (let i = 0; i < staff.SIGNIN_LOCK_AFTER; i++) {
      inject.failures = 1;
      await expect(staff.signIn(db, "sato", PW, FROM)).rejects.toThrow(/memory limit exceeded/);
    }
    expect(Number((await count())?.failed_signins ?? 0)).toBe(0);
    expect(await staff.signIn(db, "sato", PW, FROM)).toMatchObject({ ok: true, name: "sato" });
    // One record per sign-in: each server error says so (not a guess), then the sign-in.
    expect(await outcomes()).toEqual([...Array(staff.SIGNIN_LOCK_AFTER).fill("error"), "ok"]);
    expect(await errors()).toEqual(Array(staff.SIGNIN_LOCK_AFTER).fill(SATO_ERROR));
  }, 60_000);

  it("the try that would have set the lock, failing, takes the lock back with it; the next wrong password sets it", async () => {
    for (let i = 1; i < staff.SIGNIN_LOCK_AFTER; i++) expect(await staff.signIn(db, "sato", "wrong-password-" + i, FROM)).toEqual({ ok: false, reason: "bad_credentials" });
    inject.failures = 1;
    await expect(staff.signIn(db, "sato", "wrong-password-x", FROM)).rejects.toThrow(/memory limit exceeded/);
    expect(await count()).toMatchObject({ failed_signins: staff.SIGNIN_LOCK_AFTER - 1 });
    expect((await count())?.locked_until ?? null).toBeNull();
    // The fifth answered wrong password is the one that locks.
    expect(await staff.signIn(db, "sato", "wrong-password-5", FROM)).toEqual({ ok: false, reason: "bad_credentials" });
    expect(await staff.signIn(db, "sato", PW, FROM)).toEqual({ ok: false, reason: "locked" });
    expect(await outcomes()).toEqual([...Array(staff.SIGNIN_LOCK_AFTER - 1).fill("bad_password"), "error", "bad_password", "locked"]);
  }, 60_000);

  it("parallel guesses with server errors among them: never more than five passwords checked before the lock", async () => {
    for (let i = 1; i < staff.SIGNIN_LOCK_AFTER; i++) await staff.signIn(db, "sato", "wrong-password-" + i, FROM);
    // Eight at once, the first scrypt to run failing: the failed one gives its count back, every other is refused as
    // locked by whichever try counted fifth, or (had that one failed) answered until a try that is answered locks.
    inject.failures = 2;
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => staff.signIn(db, "sato", "wrong-parallel-" + i, FROM)));
    const failed = results.filter((r) => r.status === "rejected").length;
    expect(failed).toBeGreaterThanOrEqual(1);
    // Then as many tries as it takes for a lock to hold (each failure gave its try back).
    let again = 0;
    for (let i = 0; i < 3 && (await staff.signIn(db, "sato", "wrong-again-" + i, FROM)).reason !== "locked"; i++) again++;
    expect(await staff.signIn(db, "sato", PW, FROM)).toEqual({ ok: false, reason: "locked" });
    const o = await outcomes();
    // One record per sign-in: the four before, the eight, the ones after (the one that met the lock too), the last.
    expect(o).toHaveLength(staff.SIGNIN_LOCK_AFTER - 1 + 8 + Math.min(again + 1, 3) + 1);
    expect(o.filter((x) => x === "bad_password")).toHaveLength(staff.SIGNIN_LOCK_AFTER);
    // One record per sign-in, the failed ones among them.
    expect(o.filter((x) => x === "error")).toHaveLength(failed);
    expect(await count()).toMatchObject({ failed_signins: staff.SIGNIN_LOCK_AFTER });
  }, 60_000);

  it("a locked member's sign-in whose dummy check fails: one error record, as the member's (as its `locked` one would be)", async () => {
    for (let i = 1; i <= staff.SIGNIN_LOCK_AFTER; i++) await staff.signIn(db, "sato", "wrong-password-" + i, FROM);
    inject.failures = 1;
    await expect(staff.signIn(db, "sato", PW, FROM)).rejects.toThrow(/memory limit exceeded/);
    expect(await staff.signIn(db, "sato", PW, FROM)).toEqual({ ok: false, reason: "locked" });
    expect(await outcomes()).toEqual([...Array(staff.SIGNIN_LOCK_AFTER).fill("bad_password"), "error", "locked"]);
    expect(await errors()).toEqual([SATO_ERROR]);
  }, 60_000);

  it("when the error record cannot be written either, the caller still gets scrypt's error (not the audit's), and the try is given back", async () => {
    inject.failures = 1;
    // The audit's transaction is the only one a failed sign-in starts.
    const tx = vi.spyOn(db, "tx").mockRejectedValueOnce(new Error("audit write refused"));
    try {
      await expect(staff.signIn(db, "sato", PW, FROM)).rejects.toThrow(/memory limit exceeded/);
      expect(tx).toHaveBeenCalledTimes(1);
    } finally {
      tx.mockRestore();
    }
    expect(Number((await count())?.failed_signins ?? 0)).toBe(0);
    expect(await outcomes()).toEqual([]);
  }, 60_000);

  it("a right password whose hash upgrade fails still signs in (the hash is upgraded at a later one), and is not counted", async () => {
    // Made at 2^15 (vitest.config.ts); this server makes 2^16, so a right password re-makes it: its second scrypt fails.
    process.env.FOBKIT_STAFF_SCRYPT_LOGN = "16";
    try {
      inject.pass = 1;
      inject.failures = 1;
      expect(await staff.signIn(db, "sato", PW, FROM)).toMatchObject({ ok: true, name: "sato" });
      expect((await db.get<{ password_hash: string }>("SELECT password_hash FROM staff WHERE name = 'sato'"))?.password_hash).toMatch(/^scrypt\$15\$/);
      expect(await count()).toBeUndefined();
      expect(await staff.signIn(db, "sato", PW, FROM)).toMatchObject({ ok: true, name: "sato" });
      expect((await db.get<{ password_hash: string }>("SELECT password_hash FROM staff WHERE name = 'sato'"))?.password_hash).toMatch(/^scrypt\$16\$/);
      // The upgrade's failure is in the `ok` record (passwordRehashFailed): one record, not an error besides.
      expect(await outcomes()).toEqual(["ok", "ok"]);
    } finally {
      process.env.FOBKIT_STAFF_SCRYPT_LOGN = "15";
    }
  }, 60_000);
});
