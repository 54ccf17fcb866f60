/**
 * A staff member disabled while their sign-in is under way (attack review L1), on SQLite and PostgreSQL: the
 * disable comes from a second database handle (another server process, or `fobkit bank disable-staff`) at the
 * exact moment, by a wrapper around the sign-in's own handle that runs it before the statement or transaction
 * named (test-only: production's code has no hook). Whatever the moment, the sign-in's one audit record says
 * what it came to, and a session exists only after an `ok`:
 * - disabled after the password check, before the session (the scrypt's 0.3-0.7 s, the widest window): refused,
 *   audited `disabled`, no session (before the fix: audited `ok`, and the session made after it refused at once);
 * - disabled after the account was read, before the try was counted: refused as disabled, not as `locked`;
 * - the same through the console's HTTP sign-in: 401 and no cookie, not 303 with a dead one;
 * - disabled while the sign-in's transaction is open: the disable waits for it, and then ends its session.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import type { Database, Sql } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { openMigrated } from "../../host/registry/open-database.js";
import { addStaff, disableStaff, loadSession, signIn } from "../../host/registry/staff.js";
import { startServer } from "../../host/server/serve.js";
import { Client } from "./support.js";
import { ENGINES, freshDb } from "../registry/support.js";
import { backendPid, connectInSchema, waitQueuedBehind } from "../support/pg-locks.js";

const ADMIN = { name: "staff:admin", source: "cli" };
const PW = "race-member-password-1";

type Hooks = {
  /** Before the next db.tx (once). */
  beforeTx?: () => Promise<void>;
  /** Before the next db.run whose SQL matches (once). */
  beforeRun?: { match: RegExp; fn: () => Promise<void> };
  /** Inside the next db.tx, after its first statement matching (once): the transaction is open then. */
  afterRunInTx?: { match: RegExp; fn: (t: Sql) => Promise<void> };
};

/** `db` with the hooks run at their moments; every other property and call goes to `db` as it is. */
function hooked(db: Database, hooks: Hooks): Database {
  const inTx = (t: Sql): Sql => ({
    all: (sql, params) => t.all(sql, params),
    get: (sql, params) => t.get(sql, params),
    run: async (sql, params) => {
      const n = await t.run(sql, params);
      const h = hooks.afterRunInTx;
      if (h && h.match.test(sql)) {
        hooks.afterRunInTx = undefined;
        await h.fn(t);
      }
      return n;
    },
  });
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "tx") {
        return async <T>(fn: (t: Sql) => Promise<T>): Promise<T> => {
          const h = hooks.beforeTx;
          hooks.beforeTx = undefined;
          if (h) await h();
          return target.tx((t) => fn(inTx(t)));
        };
      }
      if (prop === "run") {
        return async (sql: string, params?: unknown[]): Promise<number> => {
          const h = hooks.beforeRun;
          if (h && h.match.test(sql)) {
            hooks.beforeRun = undefined;
            await h.fn();
          }
          return target.run(sql, params);
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

describe.each(ENGINES)("a staff member disabled during their sign-in on $name", (engine) => {
  let db: Database;
  let other: Database;
  let url: string;
  let drop: () => Promise<void>;

  beforeEach(async () => {
    ({ db, url, drop } = await freshDb(engine));
    // The second handle: another server process's pool (its own connections; on SQLite its own file handle).
    other = await openMigrated(url);
    await addStaff(db, "yamada", "teller", PW, ADMIN);
  });
  afterEach(async () => {
    await other.close();
    await drop();
  });

  const disableFromOther = () => disableStaff(other, "yamada", ADMIN);
  const signins = async () => (await db.all<{ outcome: string; actor: string }>("SELECT outcome, actor FROM audit WHERE action = 'signin' ORDER BY id")).map((r) => `${r.actor} ${r.outcome}`);
  const sessions = async () => Number((await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM staff_sessions WHERE staff = 'yamada'"))!.n);
  const lastSignin = async () => (await db.get<{ last_signin_at: number | null }>("SELECT last_signin_at FROM staff WHERE name = 'yamada'"))!.last_signin_at;

  it("disabled after the right password was checked, before the session: refused, audited `disabled`, no session made", async () => {
    // The sign-in's first transaction comes after its scrypt: the moment the member is disabled here.
    const r = await signIn(hooked(db, { beforeTx: disableFromOther }), "yamada", PW, "198.51.100.1");
    expect(r).toEqual({ ok: false, reason: "bad_credentials" });
    expect(await signins()).toEqual(["console:yamada disabled"]);
    expect(await sessions()).toBe(0);
    expect(await lastSignin()).toBeNull();
    // The disable's own record stands beside it.
    expect((await db.all<{ action: string }>("SELECT action FROM audit WHERE action = 'disable_staff'")).length).toBe(1);
  }, 30_000);

  it("disabled after the account was read, before the try was counted: refused and audited as disabled, not as locked", async () => {
    const r = await signIn(hooked(db, { beforeRun: { match: /^UPDATE staff_signin_locks SET failed_signins/, fn: disableFromOther } }), "yamada", PW, "198.51.100.2");
    expect(r).toEqual({ ok: false, reason: "bad_credentials" });
    expect(await signins()).toEqual(["console:yamada disabled"]);
    expect(await sessions()).toBe(0);
  }, 30_000);

  it("through the console: disabled during the sign-in, the answer is 401 with no session cookie, and the audit says `disabled`", async () => {
    const hooks: Hooks = {};
    const server = await startServer({ db: hooked(db, hooks), keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
    try {
      const c = new Client(server.url);
      hooks.beforeTx = disableFromOther;
      const r = await c.signIn("yamada", PW);
      expect(r.status).toBe(401);
      expect(r.setCookie.filter((x) => /session/i.test(x))).toEqual([]);
      expect(c.cookies.size).toBe(0);
      expect(await signins()).toEqual(["console:yamada disabled"]);
      expect(await sessions()).toBe(0);
    } finally {
      await server.close();
    }
  }, 30_000);

  it("disabled while the sign-in's transaction is open: the disable waits, then ends the session it made (ok, then disable_staff)", async () => {
    let disabling: Promise<void> | undefined;
    const r = await signIn(
      hooked(db, {
        afterRunInTx: {
          // The member's row is written (on PostgreSQL: row-locked) by the sign-in's first statement.
          match: /^UPDATE staff SET failed_signins = 0/,
          fn: async (t) => {
            disabling = disableFromOther();
            if (engine.name === "postgres") {
              // Wait until the disable is queued behind this transaction's row lock, so it surely comes second.
              const pid = (await t.get<{ pid: number }>("SELECT pg_backend_pid() AS pid"))!.pid;
              const watcher = await connectInSchema(url);
              try {
                await waitQueuedBehind(watcher, pid, 1, "disable_staff behind the sign-in");
                expect(await backendPid(watcher)).not.toBe(pid);
              } finally {
                await watcher.end();
              }
            }
            // On SQLite the disable's BEGIN IMMEDIATE was tried at once, found the write lock held, and retries.
          },
        },
      }),
      "yamada",
      PW,
      "198.51.100.3",
    );
    await disabling;
    expect(r).toMatchObject({ ok: true, name: "yamada" });
    const audit = (await db.all<{ action: string; outcome: string }>("SELECT action, outcome FROM audit WHERE action IN ('signin', 'disable_staff') ORDER BY id")).map((a) => `${a.action} ${a.outcome}`);
    expect(audit).toEqual(["signin ok", "disable_staff ok"]);
    if (!r.ok) return;
    expect(await loadSession(db, r.session.id)).toBeUndefined();
    expect(await sessions()).toBe(0);
  }, 30_000);
});
