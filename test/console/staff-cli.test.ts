/**
 * `fobkit bank add-staff | list-staff | disable-staff | unlock-staff` in
 * process (runCli), on SQLite and PostgreSQL: passwords only from a file and
 * never printed, stored as scrypt, bad input refused with nothing changed,
 * a disabled member's sessions gone at once.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { MIGRATIONS, migrate } from "../../host/registry/migrations.js";
import { openDatabase } from "../../host/registry/open-database.js";
import { KDF_PARALLEL, KDF_PER_SOURCE, KDF_QUEUE, addStaff, loadSession, scryptParams, signIn } from "../../host/registry/staff.js";
import { ENGINES, freshDb } from "../registry/support.js";
import { runCliCaptured } from "../server/support.js";

describe.each(ENGINES)("staff accounts CLI on $name", (engine) => {
  let dir: string;
  let db: Database;
  let url: string;
  let drop: () => Promise<void>;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "fobkit-staff-"));
    ({ db, url, drop } = await freshDb(engine));
  });
  afterEach(async () => {
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const bank = (...args: string[]) => runCliCaptured(["bank", ...args, "--db", url], { USER: "admin" });

  it("adds, lists, unlocks and disables staff; the password is read from a file, stored as scrypt, and never printed", async () => {
    const pw = "kanji-and-ascii-パスワード-1";
    writeFileSync(join(dir, "pw"), pw + "\n", { mode: 0o600 });
    const added = await bank("add-staff", "--name", "yamada", "--role", "teller", "--password-file", join(dir, "pw"));
    expect(added).toMatchObject({ code: 0, stdout: "added staff yamada (teller)\n" });
    const stored = await db.get<{ password_hash: string }>("SELECT password_hash FROM staff WHERE name = 'yamada'");
    // At the suite's cost (vitest.config.ts; production's 2^17 is checked in staff-password-hash.test.ts).
    expect(stored!.password_hash).toMatch(new RegExp(`^scrypt\\$${scryptParams().logN}\\$8\\$1\\$`));
    expect(stored!.password_hash).not.toContain(pw);
    // The trailing newline is not part of the password.
    expect(await signIn(db, "yamada", pw, "test")).toMatchObject({ ok: true, name: "yamada", role: "teller" });

    const again = await bank("add-staff", "--name", "yamada", "--role", "supervisor", "--password-file", join(dir, "pw"), "--json");
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout).error.code).toBe("staff_exists");

    writeFileSync(join(dir, "short"), "short\n");
    const short = await bank("add-staff", "--name", "sato", "--role", "teller", "--password-file", join(dir, "short"));
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/bad_password: a staff password is 12 to 1024 characters/);
    expect(short.stderr).toMatch(/readable by others/);
    expect(short.stderr + short.stdout).not.toContain("short\n");
    expect((await bank("add-staff", "--name", "sato", "--role", "manager", "--password-file", join(dir, "pw"))).code).toBe(2);
    expect((await bank("add-staff", "--name", "sato", "--role", "teller", "--password-file", join(dir, "nope"))).stderr).toMatch(/cannot read --password-file .*ENOENT/);
    const listed = JSON.parse((await bank("list-staff", "--json")).stdout).staff;
    expect(listed.map((s: { name: string; role: string; locked: boolean }) => [s.name, s.role, s.locked])).toEqual([["yamada", "teller", false]]);

    expect((await bank("unlock-staff", "--name", "yamada")).code).toBe(1);
    for (let i = 0; i < 5; i++) await signIn(db, "yamada", "wrong-password-" + i, "test");
    expect(await signIn(db, "yamada", pw, "test")).toEqual({ ok: false, reason: "locked" });
    expect(await bank("unlock-staff", "--name", "yamada")).toMatchObject({ code: 0, stdout: "unlocked staff yamada\n" });
    const signedIn = await signIn(db, "yamada", pw, "test");
    if (!signedIn.ok) throw new Error(`not signed in: ${signedIn.reason}`);

    const session = signedIn.session;
    expect(await loadSession(db, session.id)).toMatchObject({ staff: "yamada", role: "teller" });
    expect(await bank("disable-staff", "--name", "yamada")).toMatchObject({ code: 0 });
    expect(await loadSession(db, session.id)).toBeUndefined();
    expect(await signIn(db, "yamada", pw, "test")).toEqual({ ok: false, reason: "bad_credentials" });
    expect((await bank("disable-staff", "--name", "yamada")).code).toBe(1);
    const audit = (await db.all<{ action: string; actor: string }>("SELECT action, actor FROM audit WHERE action IN ('add_staff', 'unlock_staff', 'disable_staff') ORDER BY id")).map((r) => `${r.action}:${r.actor}`);
    expect(audit).toEqual(["add_staff:staff:admin", "unlock_staff:staff:admin", "disable_staff:staff:admin"]);
    expect(JSON.stringify(await db.all("SELECT * FROM audit"))).not.toContain(pw);
  });

  it("a staff lock lasts 15 minutes, twice as long after each further five wrong passwords (at most a day); a supervisor still lifts it at once", async () => {
    const pw = "right-password-for-sato";
    writeFileSync(join(dir, "pw"), pw, { mode: 0o600 });
    expect((await bank("add-staff", "--name", "sato", "--role", "teller", "--password-file", join(dir, "pw"))).code).toBe(0);
    const t0 = Date.now();
    const MIN = 60_000;
    const wrong = async (at: number) => {
      for (let i = 0; i < 5; i++) expect(await signIn(db, "sato", "wrong-password-" + i, "test", at)).toEqual({ ok: false, reason: "bad_credentials" });
    };
    await wrong(t0);
    // Locked: the right password too, until the lock ends; then it signs in (the lock was not for good).
    expect(await signIn(db, "sato", pw, "test", t0 + 14 * MIN)).toEqual({ ok: false, reason: "locked" });
    expect(await signIn(db, "sato", pw, "test", t0 + 15 * MIN)).toMatchObject({ ok: true });
    // The right password reset the count: five wrong ones lock for 15 minutes again, shown and audited with the end.
    const t1 = t0 + 20 * MIN;
    await wrong(t1);
    const listed = JSON.parse((await bank("list-staff", "--json")).stdout).staff[0];
    expect(listed).toMatchObject({ name: "sato", failedSignins: 5, lockedUntil: new Date(t1 + 15 * MIN).toISOString() });
    const fifth = (await db.all<{ detail: string }>("SELECT detail FROM audit WHERE action = 'signin' AND outcome = 'bad_password' ORDER BY id")).at(-1)!;
    expect(JSON.parse(fifth.detail)).toEqual({ failures: 5, locked: true, lockedUntil: new Date(t1 + 15 * MIN).toISOString() });
    // Five more wrong ones after that lock ends: 30 minutes, since the timer does not reset the count.
    await wrong(t1 + 15 * MIN);
    expect(await signIn(db, "sato", pw, "test", t1 + 15 * MIN + 29 * MIN)).toEqual({ ok: false, reason: "locked" });
    expect(await signIn(db, "sato", pw, "test", t1 + 15 * MIN + 30 * MIN)).toMatchObject({ ok: true });
    // A supervisor unlocks at once.
    await wrong(Date.now());
    expect(await bank("unlock-staff", "--name", "sato")).toMatchObject({ code: 0 });
    expect(await signIn(db, "sato", pw, "test")).toMatchObject({ ok: true });
    // Never longer than a day, however many locks in a row (the count set just below the k-th lock: scrypt is slow).
    for (const k of [2, 7, 8, 9, 12]) {
      await db.run("INSERT INTO staff_signin_locks (staff, source, failed_signins, locked_until) VALUES ('sato', 'test', ?, NULL) ON CONFLICT (staff, source) DO UPDATE SET failed_signins = excluded.failed_signins, locked_until = NULL", [5 * k - 1]);
      expect(await signIn(db, "sato", "wrong-password", "test", t0)).toEqual({ ok: false, reason: "bad_credentials" });
      const until = Number((await db.get<{ u: number }>("SELECT locked_until AS u FROM staff_signin_locks WHERE staff = 'sato' AND source = 'test'"))!.u);
      expect([k, until - t0]).toEqual([k, Math.min(15 * MIN * 2 ** (k - 1), 24 * 60 * MIN)]);
    }
  }, 180_000);

  it("a lock holds only at the address its wrong passwords came from: a guesser who knows a staff ID cannot keep the member out; a supervisor sees each locked address and lifts them all", async () => {
    const pw = "right-password-for-kato";
    writeFileSync(join(dir, "pw"), pw, { mode: 0o600 });
    expect((await bank("add-staff", "--name", "kato", "--role", "supervisor", "--password-file", join(dir, "pw"))).code).toBe(0);
    const t0 = Date.now();
    const MIN = 60_000;
    // The guesser, at one address of its /64 and then another of the same /64: one address to the lock.
    for (let i = 0; i < 5; i++) expect(await signIn(db, "kato", "wrong-password-" + i, `2001:db8:66:1::${i + 1}`, t0)).toEqual({ ok: false, reason: "bad_credentials" });
    expect(await signIn(db, "kato", pw, "2001:db8:66:1::99", t0 + MIN)).toEqual({ ok: false, reason: "locked" });
    // The member, at their own address, signs in, and their right password does not lift the guesser's lock.
    expect(await signIn(db, "kato", pw, "198.51.100.23", t0 + MIN)).toMatchObject({ ok: true });
    expect(await signIn(db, "kato", pw, "2001:db8:66:1::5", t0 + 2 * MIN)).toEqual({ ok: false, reason: "locked" });
    // Five more from an IPv4 address: two addresses locked, each with its own end, shown (list-staff, getStaff) and audited.
    for (let i = 0; i < 5; i++) await signIn(db, "kato", "wrong-password-" + i, "203.0.113.66", t0 + 3 * MIN);
    const listed = JSON.parse((await bank("list-staff", "--json")).stdout).staff.find((x: { name: string }) => x.name === "kato");
    expect(listed).toMatchObject({
      locked: true,
      failedSignins: 5,
      lockedUntil: new Date(t0 + 18 * MIN).toISOString(),
      lockedFrom: [
        { source: "203.0.113.66", until: new Date(t0 + 18 * MIN).toISOString() },
        { source: "2001:db8:66:1::/64", until: new Date(t0 + 15 * MIN).toISOString() },
      ],
    });
    const fifth = (await db.all<{ source: string; detail: string }>("SELECT source, detail FROM audit WHERE action = 'signin' AND outcome = 'bad_password' ORDER BY id")).at(-1)!;
    expect([fifth.source, JSON.parse(fifth.detail)]).toEqual(["203.0.113.66", { failures: 5, locked: true, lockedUntil: new Date(t0 + 18 * MIN).toISOString() }]);
    // The supervisor's unlock lifts both.
    expect(await bank("unlock-staff", "--name", "kato")).toMatchObject({ code: 0 });
    expect(await signIn(db, "kato", pw, "203.0.113.66", t0 + 4 * MIN)).toMatchObject({ ok: true });
    expect(await signIn(db, "kato", pw, "2001:db8:66:1::1", t0 + 4 * MIN)).toMatchObject({ ok: true });
  }, 180_000);

  it("lock rows are kept a week after their lock ends, then pruned when a new lock is written: the table does not grow with every address that ever guessed", async () => {
    await addStaff(db, "ito", "teller", "ito-correct-horse-battery", { name: "staff:admin", source: "cli" });
    const MIN = 60_000;
    const DAY = 24 * 60 * MIN;
    const t0 = Date.now();
    const wrong = async (source: string, at: number, n = 5) => {
      for (let i = 0; i < n; i++) expect(await signIn(db, "ito", "wrong-password-" + i, source, at)).toEqual({ ok: false, reason: "bad_credentials" });
    };
    const sources = async () => (await db.all<{ source: string }>("SELECT source FROM staff_signin_locks WHERE staff = 'ito' ORDER BY source")).map((r) => r.source);
    await wrong("203.0.113.1", t0); // locked until t0 + 15 min
    await wrong("203.0.113.2", t0 + 2 * DAY); // locked until 2 days + 15 min
    await wrong("203.0.113.3", t0, 2); // counted, never locked: no end to age it by
    const now = t0 + 15 * MIN + 7 * DAY + MIN;
    // Four wrong passwords from a fourth address write no lock, and prune nothing.
    await wrong("203.0.113.4", now, 4);
    expect(await sources()).toEqual(["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"]);
    // The fifth writes a lock: the row whose lock ended over a week ago goes; the one that ended five days ago stays,
    // its count standing (its next lock is the second in a row: 30 minutes).
    await wrong("203.0.113.4", now, 1);
    expect(await sources()).toEqual(["203.0.113.2", "203.0.113.3", "203.0.113.4"]);
    await wrong("203.0.113.2", now);
    const second = await db.get<{ n: number; u: number }>("SELECT failed_signins AS n, locked_until AS u FROM staff_signin_locks WHERE staff = 'ito' AND source = '203.0.113.2'");
    expect([Number(second!.n), Number(second!.u) - now]).toEqual([10, 30 * MIN]);
  }, 120_000);

  it(`the sign-in gate gives one client ${KDF_PER_SOURCE} places: an IPv6 client's are its /64's, whichever of its addresses it uses`, async () => {
    // Unknown IDs: each costs a (dummy) scrypt in the gate, and counts nothing.
    const from = (source: string) => signIn(db, "nobody", "wrong-password", source).then((r) => r.reason, (e: { code?: string }) => e.code);
    const one64 = Array.from({ length: KDF_PER_SOURCE + 1 }, (_, i) => from(`2001:db8:9:9::${(i + 1).toString(16)}`));
    const other64 = from("2001:db8:9:a::1");
    const outcomes = await Promise.all(one64);
    expect(outcomes.filter((o) => o === "signin_busy").length).toBe(1);
    expect(outcomes.filter((o) => o === "bad_credentials").length).toBe(KDF_PER_SOURCE);
    expect(await other64).toBe("bad_credentials");
  }, 60_000);

  it("a full sign-in gate makes room for a newcomer: two flooding addresses cannot keep a member at a third one out", async () => {
    const pw = "sato-correct-horse-battery";
    await addStaff(db, "sato", "teller", pw, { name: "staff:admin", source: "cli" });
    const from = (source: string) => signIn(db, "nobody", "wrong-password", source).then((r) => r.reason, (e: { code?: string }) => e.code);
    // Each flooding address asks for all its places at once: together more than the gate's 2 running + 16 waiting.
    const a = Array.from({ length: KDF_PER_SOURCE }, () => from("203.0.113.1"));
    const b = Array.from({ length: KDF_PER_SOURCE }, () => from("203.0.113.2"));
    // The member comes last, with the gate full: the address holding the most places gives up its newest waiting one.
    const member = signIn(db, "sato", pw, "198.51.100.7");
    const [outA, outB] = [await Promise.all(a), await Promise.all(b)];
    expect(await member).toMatchObject({ ok: true, name: "sato" });
    // The two addresses end with even shares; the rest were refused at once, before any scrypt.
    const busyOf = (o: unknown[]) => o.filter((x) => x === "signin_busy").length;
    expect(busyOf(outA) + busyOf(outB)).toBe(2 * KDF_PER_SOURCE - (KDF_PARALLEL + KDF_QUEUE - 1));
    expect(Math.abs(busyOf(outA) - busyOf(outB)), JSON.stringify([busyOf(outA), busyOf(outB)])).toBeLessThanOrEqual(1);
    expect([...outA, ...outB].every((x) => x === "signin_busy" || x === "bad_credentials")).toBe(true);
  }, 60_000);

  it("migration 11: an account locked before it (for good, then) stays locked for 15 minutes from the migration, then opens", async () => {
    const f = await engine.fresh();
    const old = openDatabase(f.url);
    try {
      await migrate(old, MIGRATIONS.filter((m) => m.version < 11));
      for (const [name, fails] of [["locked1", 5], ["open1", 4]] as const) {
        await old.run("INSERT INTO staff (name, role, password_hash, failed_signins, created_at) VALUES (?, 'teller', 'scrypt$15$8$1$AA==$AA==', ?, 0)", [name, fails]);
      }
      const before = Date.now();
      expect(await migrate(old)).toContain(11);
      const rows = await old.all<{ name: string; locked_until: number | null }>("SELECT name, locked_until FROM staff ORDER BY name");
      expect(rows.map((r) => [r.name, r.locked_until === null ? null : Number(r.locked_until) - before >= 15 * 60_000 - 5000 && Number(r.locked_until) - Date.now() <= 15 * 60_000 + 5000])).toEqual([
        ["locked1", true],
        ["open1", null],
      ]);
      const until = Number(rows[0].locked_until);
      expect(await signIn(old, "locked1", "wrong-password", "test", until - 1)).toEqual({ ok: false, reason: "locked" });
      // After it: tries count again, per address from migration 15 on (the first wrong password from this one).
      expect(await signIn(old, "locked1", "wrong-password", "test", until)).toEqual({ ok: false, reason: "bad_credentials" });
      expect(await old.get("SELECT failed_signins AS n FROM staff_signin_locks WHERE staff = 'locked1' AND source = 'test'")).toEqual({ n: 1 });
    } finally {
      await old.close();
      await f.drop();
    }
  }, 60_000);
});
