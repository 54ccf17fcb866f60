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
import { createSession, loadSession, signIn } from "../../host/registry/staff.js";
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
    expect(stored!.password_hash).toMatch(/^scrypt\$15\$8\$1\$/);
    expect(stored!.password_hash).not.toContain(pw);
    // The trailing newline is not part of the password.
    expect(await signIn(db, "yamada", pw, "test")).toEqual({ ok: true, name: "yamada", role: "teller" });

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
    expect((await signIn(db, "yamada", pw, "test")).ok).toBe(true);

    const session = await createSession(db, "yamada", "test");
    expect(await loadSession(db, session.id)).toMatchObject({ staff: "yamada", role: "teller" });
    expect(await bank("disable-staff", "--name", "yamada")).toMatchObject({ code: 0 });
    expect(await loadSession(db, session.id)).toBeUndefined();
    expect(await signIn(db, "yamada", pw, "test")).toEqual({ ok: false, reason: "bad_credentials" });
    expect((await bank("disable-staff", "--name", "yamada")).code).toBe(1);
    const audit = (await db.all<{ action: string; actor: string }>("SELECT action, actor FROM audit WHERE action IN ('add_staff', 'unlock_staff', 'disable_staff') ORDER BY id")).map((r) => `${r.action}:${r.actor}`);
    expect(audit).toEqual(["add_staff:staff:admin", "unlock_staff:staff:admin", "disable_staff:staff:admin"]);
    expect(JSON.stringify(await db.all("SELECT * FROM audit"))).not.toContain(pw);
  });
});
