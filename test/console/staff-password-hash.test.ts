/**
 * Staff password hashes on SQLite and PostgreSQL: new ones are scrypt at
 * OWASP's N = 2^17, r = 8, p = 1 (checked by recomputing the key here with
 * node:crypto, not by trusting the label); one made at the old N = 2^15 still
 * signs in, and a right password re-makes it at N = 2^17 in the sign-in's
 * transaction; a wrong one leaves it as it was.
 */
import { randomBytes, scryptSync } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { SCRYPT_LOGN_ENV, addStaff, parseHash, scryptParams, signIn } from "../../host/registry/staff.js";
import { ENGINES, freshDb } from "../registry/support.js";
import { openMigrated } from "../../host/registry/open-database.js";

const ADMIN = { name: "staff:admin", source: "cli" };

/** A stored hash as the code before 2026-11-30 made it: scrypt$15$8$1$salt$key, computed here. */
function oldHash(password: string): string {
  const salt = randomBytes(16);
  const key = scryptSync(password, salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 2 ** 20 });
  return `scrypt$15$8$1$${salt.toString("base64")}$${key.toString("base64")}`;
}

/** The stored hash's fields, and whether its key is what scrypt at N = 2^logN gives for `password` and its salt. */
function check(stored: string, password: string) {
  const [scheme, logN, r, p, salt, key] = stored.split("$");
  const want = Buffer.from(key, "base64");
  const got = scryptSync(password, Buffer.from(salt, "base64"), want.length, { N: 2 ** Number(logN), r: Number(r), p: Number(p), maxmem: 256 * 2 ** 20 });
  return { scheme, logN: Number(logN), r: Number(r), p: Number(p), saltBytes: Buffer.from(salt, "base64").length, keyBytes: want.length, matches: got.equals(want) };
}

// The suite runs at N = 2^15 (vitest.config.ts sets FOBKIT_STAFF_SCRYPT_LOGN); this file checks production's default.
const suiteCost = process.env[SCRYPT_LOGN_ENV];
beforeAll(() => {
  delete process.env[SCRYPT_LOGN_ENV];
});
afterAll(() => {
  if (suiteCost === undefined) delete process.env[SCRYPT_LOGN_ENV];
  else process.env[SCRYPT_LOGN_ENV] = suiteCost;
});

describe("FOBKIT_STAFF_SCRYPT_LOGN", () => {
  it("is 17 unset; a value from 15 to 18 sets log2 N; anything else is refused, naming the variable", () => {
    expect(scryptParams({})).toEqual({ logN: 17, r: 8, p: 1, keyLen: 32 });
    expect(scryptParams({ [SCRYPT_LOGN_ENV]: "" }).logN).toBe(17);
    expect(scryptParams({ [SCRYPT_LOGN_ENV]: "15" }).logN).toBe(15);
    expect(scryptParams({ [SCRYPT_LOGN_ENV]: "18" }).logN).toBe(18);
    for (const bad of ["14", "19", "20", "16.5", "abc", " 17", "1e1"]) {
      expect(() => scryptParams({ [SCRYPT_LOGN_ENV]: bad }), bad).toThrow(/FOBKIT_STAFF_SCRYPT_LOGN must be an integer from 15 to 18/);
    }
  });
});

describe.each(ENGINES)("staff password hashes on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  let url: string;
  beforeEach(async () => {
    ({ db, drop, url } = await freshDb(engine));
  });
  afterEach(() => {
    // A case that sets the cost leaves production's default to the next.
    delete process.env[SCRYPT_LOGN_ENV];
    return drop();
  });

  const stored = async (name: string) => (await db.get<{ password_hash: string }>("SELECT password_hash FROM staff WHERE name = ?", [name]))!.password_hash;
  /** A member added now, whose stored hash is then put back to an old N = 2^15 one of the same password; returns it. */
  const memberWithOldHash = async (name: string, role: "teller" | "supervisor", pw: string) => {
    await addStaff(db, name, role, pw, ADMIN);
    const old = oldHash(pw);
    await db.run("UPDATE staff SET password_hash = ? WHERE name = ?", [old, name]);
    return old;
  };

  it("a new member's password is stored as scrypt at N = 2^17, r = 8, p = 1 (OWASP Password Storage Cheat Sheet), and signs in", async () => {
    const pw = "new-member-パスワード-17";
    await addStaff(db, "suzuki", "teller", pw, ADMIN);
    const h = await stored("suzuki");
    expect(check(h, pw)).toEqual({ scheme: "scrypt", logN: 17, r: 8, p: 1, saltBytes: 16, keyBytes: 32, matches: true });
    expect(await signIn(db, "suzuki", pw, "198.51.100.1")).toMatchObject({ ok: true, name: "suzuki", role: "teller" });
    // Already current: the sign-in leaves it alone.
    expect(await stored("suzuki")).toBe(h);
  }, 60_000);

  it("a member with an old N = 2^15 hash signs in with it, and the right password re-makes it at N = 2^17 (a wrong one changes nothing)", async () => {
    const pw = "old-member-correct-horse";
    const old = await memberWithOldHash("tanaka", "supervisor", pw);

    // A wrong password: refused, counted, and the old hash stays.
    expect(await signIn(db, "tanaka", "wrong-password-guess", "198.51.100.2")).toEqual({ ok: false, reason: "bad_credentials" });
    expect(await stored("tanaka")).toBe(old);

    // The right one: signed in, and the stored hash is now N = 2^17 for the same password, with a fresh salt.
    expect(await signIn(db, "tanaka", pw, "198.51.100.2")).toMatchObject({ ok: true, name: "tanaka", role: "supervisor" });
    const now = await stored("tanaka");
    expect(check(now, pw)).toEqual({ scheme: "scrypt", logN: 17, r: 8, p: 1, saltBytes: 16, keyBytes: 32, matches: true });
    expect(now.split("$")[4]).not.toBe(old.split("$")[4]);
    // Written with the sign-in: its count is reset and the audit says what changed (parameters only, nothing secret).
    expect(Number((await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM staff_signin_locks WHERE staff = 'tanaka'"))!.n)).toBe(0);
    const ok = await db.all<{ detail: string | null }>("SELECT detail FROM audit WHERE action = 'signin' AND outcome = 'ok' ORDER BY id");
    expect(ok.map((a) => (a.detail ? JSON.parse(a.detail) : null))).toEqual([{ passwordRehashed: { from: "scrypt N=2^15 r=8 p=1", to: "scrypt N=2^17 r=8 p=1" } }]);
    expect(JSON.stringify(await db.all("SELECT * FROM audit"))).not.toContain(pw);

    // The new hash works, and is not re-made again; wrong passwords still fail against it.
    expect(await signIn(db, "tanaka", pw, "198.51.100.2")).toMatchObject({ ok: true });
    expect(await stored("tanaka")).toBe(now);
    expect(await signIn(db, "tanaka", "wrong-password-guess", "198.51.100.2")).toEqual({ ok: false, reason: "bad_credentials" });
    expect(await stored("tanaka")).toBe(now);
  }, 60_000);

  it("FOBKIT_STAFF_SCRYPT_LOGN=16: a new member's hash is made at N = 2^16, an old 2^15 one is re-made at 2^16 at the next right password; out of range, adding a member is refused and stores nothing", async () => {
    const pw = "tuned-member-password";
    await memberWithOldHash("sato", "teller", pw);
    process.env[SCRYPT_LOGN_ENV] = "16";
    expect(await signIn(db, "sato", pw, "198.51.100.4")).toMatchObject({ ok: true });
    expect(check(await stored("sato"), pw)).toEqual({ scheme: "scrypt", logN: 16, r: 8, p: 1, saltBytes: 16, keyBytes: 32, matches: true });
    await addStaff(db, "ito", "teller", pw, ADMIN);
    expect(check(await stored("ito"), pw).logN).toBe(16);
    process.env[SCRYPT_LOGN_ENV] = "12";
    await expect(addStaff(db, "kato", "teller", pw, ADMIN)).rejects.toThrow(/FOBKIT_STAFF_SCRYPT_LOGN must be an integer from 15 to 18.*got "12"/);
    expect(await db.get("SELECT name FROM staff WHERE name = 'kato'")).toBeUndefined();
  }, 60_000);

  it("a server set lower (FOBKIT_STAFF_SCRYPT_LOGN=15) signs a 2^17 hash in and leaves it at 2^17: only a weaker hash is re-made (attack review M1)", async () => {
    const pw = "strong-member-password";
    await addStaff(db, "mori", "teller", pw, ADMIN);
    const at17 = await stored("mori");
    process.env[SCRYPT_LOGN_ENV] = "15";
    expect(await signIn(db, "mori", pw, "198.51.100.5")).toMatchObject({ ok: true });
    expect(await stored("mori")).toBe(at17);
  }, 60_000);

  it("two servers sign the same member in with an old hash at once: both in, the hash re-made once, one passwordRehashed record", async () => {
    const pw = "concurrent-member-password";
    const old = await memberWithOldHash("abe", "teller", pw);
    // A second handle on the same database: another server process's pool (its own connections; on SQLite its own file handle).
    const other = await openMigrated(url);
    try {
      const both = await Promise.all([signIn(db, "abe", pw, "198.51.100.7"), signIn(other, "abe", pw, "198.51.100.8")]);
      expect(both).toMatchObject([{ ok: true, name: "abe", role: "teller" }, { ok: true, name: "abe", role: "teller" }]);
    } finally {
      await other.close();
    }
    const now = await stored("abe");
    expect(check(now, pw)).toMatchObject({ logN: 17, matches: true });
    const ok = await db.all<{ detail: string | null }>("SELECT detail FROM audit WHERE action = 'signin' AND outcome = 'ok' ORDER BY id");
    expect(ok).toHaveLength(2);
    expect(ok.filter((a) => a.detail?.includes("passwordRehashed"))).toHaveLength(1);
  }, 60_000);

  it("a stored hash asking for more than 256 MiB or p > 2 (logN 20 r 16: 2 GiB, 7.4 s in the attack review) is refused without running scrypt, as a wrong password", async () => {
    const pw = "planted-member-password";
    await addStaff(db, "hayashi", "teller", pw, ADMIN);
    // Within the bound, for contrast: what the suite, the default and the largest setting make.
    for (const ok of ["15$8$1", "17$8$1", "18$8$1"]) expect(parseHash(`scrypt$${ok}$${randomBytes(16).toString("base64")}$${randomBytes(32).toString("base64")}`), ok).toBeDefined();
    for (const params of ["20$16$4", "20$16$1", "19$8$1", "18$16$1", "17$8$3"]) {
      const planted = `scrypt$${params}$${randomBytes(16).toString("base64")}$${randomBytes(32).toString("base64")}`;
      await db.run("UPDATE staff SET password_hash = ?, disabled_at = NULL WHERE name = 'hayashi'", [planted]);
      await db.run("DELETE FROM staff_signin_locks");
      // Not run: the parser refuses it (before this, logN 20 r 16 p 4 passed its bound and ran).
      expect(parseHash(planted), params).toBeUndefined();
      expect(await signIn(db, "hayashi", pw, "198.51.100.6"), params).toEqual({ ok: false, reason: "bad_credentials" });
      expect(await stored("hayashi")).toBe(planted);
    }
  }, 60_000);

  it("a stored hash naming parameters past the ceiling (N = 2^30) is refused without running scrypt, as a wrong password", async () => {
    const pw = "ceiling-member-password";
    await addStaff(db, "kimura", "teller", pw, ADMIN);
    const huge = `scrypt$30$8$1$${randomBytes(16).toString("base64")}$${randomBytes(32).toString("base64")}`;
    await db.run("UPDATE staff SET password_hash = ? WHERE name = 'kimura'", [huge]);
    expect(await signIn(db, "kimura", pw, "198.51.100.3")).toEqual({ ok: false, reason: "bad_credentials" });
    expect(await stored("kimura")).toBe(huge);
  }, 60_000);
});
