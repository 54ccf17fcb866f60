/**
 * Maker-checker across processes (host/registry/approvals.ts, migration 8):
 * one pending request per customer whichever process asks, and a
 * supervisor's approval that is either wholly done (claimed, unlocked,
 * outcome recorded) or not at all, wherever the process stops.
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decideApproval, unlockUnderRule } from "../../host/registry/approvals.js";
import type { Database, Sql } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { MIGRATIONS, migrate } from "../../host/registry/migrations.js";
import { openDatabase } from "../../host/registry/open-database.js";
import { Registry } from "../../host/registry/registry.js";
import { RegistryError } from "../../host/registry/types.js";
import { ENGINES, TestClock, freshDb } from "./support.js";
import { backendPid, connectInSchema, waitQueuedBehind } from "../support/pg-locks.js";

const START = 1_800_000_000_000 + 10_000;
const CLI = { name: "staff:test", source: "cli" };
const CHANNEL = { name: "channel:key-0001", source: "10.0.0.7" };
const ALICE = { name: "console:alice", source: "127.0.0.1" };
const BOB = { name: "console:bob", source: "127.0.0.1" };
const CAROL = { name: "console:carol", source: "127.0.0.1" };

/** Registers and issues a keyfob to `customer` and locks it with five wrong codes. */
async function lockedCustomer(reg: Registry, serial: string, customer: string): Promise<void> {
  await reg.registerOne({ serial, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: randomBytes(20) }, CLI, "test");
  await reg.issue(serial, customer, CLI);
  await relock(reg, customer);
}

async function relock(reg: Registry, customer: string): Promise<void> {
  for (let i = 0; i < 5; i++) await reg.activate({ customer }, "00000000", CHANNEL).catch((e) => expect(e).toBeInstanceOf(RegistryError));
  expect((await reg.statusOfCustomer(customer)).state).toBe("locked");
}

/** A customer whose keyfob a teller unlocked twice today and is locked again: the next teller unlock is a request. */
async function needingApproval(reg: Registry, clock: TestClock, serial: string, customer: string): Promise<void> {
  await lockedCustomer(reg, serial, customer);
  for (let i = 0; i < 2; i++) {
    clock.advance(1);
    await unlockUnderRule(reg, customer, ALICE, "teller", clock.now());
    await relock(reg, customer);
  }
}

const requestOf = async (reg: Registry, customer: string, clock: TestClock): Promise<string> => {
  const e = await unlockUnderRule(reg, customer, ALICE, "teller", clock.now()).catch((x) => x);
  expect(e).toMatchObject({ code: "needs_approval" });
  return (e as RegistryError).detail!.approval as string;
};

describe.each(ENGINES)("maker-checker requests on $name", (engine) => {
  let db: Database;
  let url: string;
  let drop: () => Promise<void>;
  let clock: TestClock;
  let reg: Registry;
  let keys: KeyRing;

  beforeEach(async () => {
    ({ db, url, drop } = await freshDb(engine));
    clock = new TestClock(START);
    keys = KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]);
    reg = new Registry(db, { keys, now: clock.now });
  });
  afterEach(async () => {
    await drop();
  });

  it("the database holds at most one pending request per customer: a second insert is refused, whoever writes it", async () => {
    await needingApproval(reg, clock, "AP1", "C1");
    const id = await requestOf(reg, "C1", clock);
    // The same teller asking again names the same request.
    expect(await requestOf(reg, "C1", clock)).toBe(id);
    // A second pending row written directly (as a second process without the upsert would) is refused by the index.
    await expect(
      db.run("INSERT INTO approvals (id, action, customer, serial, detail, maker, made_at, state) VALUES (?, 'unlock', 'C1', 'AP1', NULL, ?, ?, 'pending')", ["0123456789ab", CAROL.name, clock.now()]),
    ).rejects.toMatchObject({ code: expect.stringMatching(/^(23505|SQLITE_CONSTRAINT_UNIQUE)$/) });
    // Once the request is decided, the customer may have a new one.
    await decideApproval(reg, id, false, BOB, clock.now());
    expect(await requestOf(reg, "C1", clock)).not.toBe(id);
    expect((await db.all("SELECT id FROM approvals WHERE state = 'pending'")).length).toBe(1);
  });

  it("migration 8 closes duplicate pending requests written before it, keeping the oldest, each with an audit record", async () => {
    // A database at migration 7: the duplicates an earlier version could write.
    const f = await engine.fresh();
    const old = openDatabase(f.url);
    try {
      await migrate(old, MIGRATIONS.filter((m) => m.version < 8));
      const insert = (id: string, customer: string, made: number) =>
        old.run("INSERT INTO approvals (id, action, customer, serial, detail, maker, made_at, state) VALUES (?, 'unlock', ?, 'S', NULL, 'console:alice', ?, 'pending')", [id, customer, made]);
      await insert("aaaaaaaaaaa2", "C1", 2);
      await insert("aaaaaaaaaaa1", "C1", 1);
      await insert("aaaaaaaaaaa3", "C1", 2);
      await insert("bbbbbbbbbbb1", "C2", 5);
      expect(await migrate(old)).toContain(8);
      const rows = await old.all<{ id: string; state: string; outcome: string | null }>("SELECT id, state, outcome FROM approvals ORDER BY id");
      expect(rows).toEqual([
        { id: "aaaaaaaaaaa1", state: "pending", outcome: null },
        { id: "aaaaaaaaaaa2", state: "failed", outcome: "duplicate_request" },
        { id: "aaaaaaaaaaa3", state: "failed", outcome: "duplicate_request" },
        { id: "bbbbbbbbbbb1", state: "pending", outcome: null },
      ]);
      const audit = await old.all<{ actor: string; outcome: string; detail: string }>("SELECT actor, outcome, detail FROM audit WHERE action = 'approval' ORDER BY id");
      expect(audit.map((a) => ({ ...a, detail: JSON.parse(a.detail) }))).toEqual([
        { actor: "system:migration-8", outcome: "duplicate_request", detail: { approval: "aaaaaaaaaaa2", kept: "aaaaaaaaaaa1" } },
        { actor: "system:migration-8", outcome: "duplicate_request", detail: { approval: "aaaaaaaaaaa3", kept: "aaaaaaaaaaa1" } },
      ]);
    } finally {
      await old.close();
      await f.drop();
    }
  });

  it("migration 10 finishes approvals an earlier version stranded (approved, no outcome): ok where the checker's unlock is in the audit, else failed/interrupted and audited", async () => {
    // A database at migration 9, holding what the earlier two-transaction approval left after a crash.
    const f = await engine.fresh();
    const old = openDatabase(f.url);
    try {
      await migrate(old, MIGRATIONS.filter((m) => m.version < 10));
      const insert = (id: string, customer: string, serial: string, state: string, outcome: string | null) =>
        old.run("INSERT INTO approvals (id, action, customer, serial, detail, maker, made_at, state, checker, decided_at, outcome) VALUES (?, 'unlock', ?, ?, NULL, 'console:alice', 1, ?, 'console:bob', 10, ?)", [id, customer, serial, state, outcome]);
      await insert("aaaaaaaaaaa1", "C1", "S1", "approved", null); // stopped between the claim and the unlock
      await insert("bbbbbbbbbbb1", "C2", "S2", "approved", null); // stopped between the unlock and the outcome
      await insert("ccccccccccc1", "C3", "S3", "approved", "ok");
      await insert("ddddddddddd1", "C4", "S4", "pending", null);
      // Each claim's own audit record, written in its transaction (at = decided_at).
      for (const [serial, customer] of [["S1", "C1"], ["S2", "C2"], ["S3", "C3"]]) {
        await old.run("INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail) VALUES (10, 'console:bob', '127.0.0.1', 'approve', 'ok', ?, ?, NULL)", [serial, customer]);
      }
      await old.run("INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail) VALUES (11, 'console:bob', '127.0.0.1', 'unlock', 'ok', 'S2', 'C2', NULL)");
      // An unlock of S1 by someone else, or before the claim, is not this approval's.
      await old.run("INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail) VALUES (11, 'console:carol', '127.0.0.1', 'unlock', 'ok', 'S1', 'C1', NULL)");
      await old.run("INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail) VALUES (5, 'console:bob', '127.0.0.1', 'unlock', 'ok', 'S1', 'C1', NULL)");
      expect(await migrate(old)).toContain(10);
      expect(await old.all("SELECT id, state, outcome FROM approvals ORDER BY id")).toEqual([
        { id: "aaaaaaaaaaa1", state: "failed", outcome: "interrupted" },
        { id: "bbbbbbbbbbb1", state: "approved", outcome: "ok" },
        { id: "ccccccccccc1", state: "approved", outcome: "ok" },
        { id: "ddddddddddd1", state: "pending", outcome: null },
      ]);
      const audit = await old.all<{ actor: string; outcome: string; customer: string; detail: string }>("SELECT actor, outcome, customer, detail FROM audit WHERE action = 'approval' ORDER BY id");
      expect(audit.map((a) => ({ ...a, detail: JSON.parse(a.detail) }))).toEqual([{ actor: "system:migration-10", outcome: "interrupted", customer: "C1", detail: { approval: "aaaaaaaaaaa1", checker: "console:bob" } }]);
      // Nothing was unlocked by the migration.
      expect(Number((await old.get<{ n: number }>("SELECT COUNT(*) AS n FROM audit WHERE action = 'unlock'"))!.n)).toBe(3);
    } finally {
      await old.close();
      await f.drop();
    }
  });

  it("migration 10 does not take a later unlock of the same keyfob by the same checker for a stranded approval's", async () => {
    // The earlier version unlocked right after the claim, in the same request; a stranded approval's keyfob unlocked
    // by its checker a day later, or after another's unlock of it, was unlocked for another lock, not this request.
    const f = await engine.fresh();
    const old = openDatabase(f.url);
    const DAY = 86_400_000;
    try {
      await migrate(old, MIGRATIONS.filter((m) => m.version < 10));
      const audit = (at: number, action: string, serial: string, customer: string) =>
        old.run("INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail) VALUES (?, 'console:bob', '127.0.0.1', ?, 'ok', ?, ?, NULL)", [at, action, serial, customer]);
      for (const [id, serial, customer] of [["aaaaaaaaaaa2", "S1", "C1"], ["bbbbbbbbbbb2", "S2", "C2"]]) {
        await old.run("INSERT INTO approvals (id, action, customer, serial, detail, maker, made_at, state, checker, decided_at, outcome) VALUES (?, 'unlock', ?, ?, NULL, 'console:alice', 1, 'approved', 'console:bob', 10, NULL)", [id, customer, serial]);
        await audit(10, "approve", serial, customer);
      }
      await audit(10 + DAY, "unlock", "S1", "C1"); // a day later
      await old.run("INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail) VALUES (12, 'console:carol', '127.0.0.1', 'unlock', 'ok', 'S2', 'C2', NULL)");
      await audit(13, "unlock", "S2", "C2"); // after carol's, which lifted the lock: bob's lifted a later one
      await migrate(old);
      expect(await old.all("SELECT id, state, outcome FROM approvals ORDER BY id")).toEqual([
        { id: "aaaaaaaaaaa2", state: "failed", outcome: "interrupted" },
        { id: "bbbbbbbbbbb2", state: "failed", outcome: "interrupted" },
      ]);
    } finally {
      await old.close();
      await f.drop();
    }
  });

  it.runIf(engine.name === "postgres")("two processes asking at the same moment make one request, and both tellers are told its id", async () => {
    await needingApproval(reg, clock, "AP1", "C1");
    // Two server processes: each its own pool and registry.
    const dbA = openDatabase(url);
    const dbB = openDatabase(url);
    const [regA, regB] = [new Registry(dbA, { keys, now: clock.now }), new Registry(dbB, { keys, now: clock.now })];
    const locker = await connectInSchema(url);
    const watcher = await connectInSchema(url);
    const lockerPid = await backendPid(locker);
    try {
      // SHARE mode lets a SELECT ... FOR UPDATE through and holds every INSERT: both requests get as far as inserting, then go on together.
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE approvals IN SHARE MODE");
      const asks = [regA, regB].map((r, i) => unlockUnderRule(r, "C1", i ? CAROL : ALICE, "teller", clock.now()).catch((e) => e as RegistryError));
      await waitQueuedBehind(watcher, lockerPid, 2, "the two requests never both waited to insert");
      await locker.query("ROLLBACK");
      const [a, b] = await Promise.all(asks);
      expect(a).toMatchObject({ code: "needs_approval" });
      expect(b).toMatchObject({ code: "needs_approval" });
      expect(a.detail!.approval).toBe(b.detail!.approval);
      // Whichever insert the released lock lets through first makes the request; the other names it.
      const pending = await db.all<{ id: string; maker: string }>("SELECT id, maker FROM approvals WHERE state = 'pending'");
      expect(pending).toHaveLength(1);
      expect(pending[0].id).toBe(a.detail!.approval);
      expect([ALICE.name, CAROL.name]).toContain(pending[0].maker);
      // Each teller's request is in the audit, naming the one request.
      const asked = await db.all<{ detail: string }>("SELECT detail FROM audit WHERE action = 'unlock' AND outcome = 'needs_approval'");
      expect(asked.map((r) => JSON.parse(r.detail).approval)).toEqual([a.detail!.approval, a.detail!.approval]);
    } finally {
      await locker.end();
      await watcher.end();
      await dbA.close();
      await dbB.close();
    }
  });

  it("a supervisor's approval stopped at any statement leaves the request pending and the keyfob locked, or both done: never claimed with no unlock", async () => {
    // How many statements one approval sends, counted on a customer of its own.
    await needingApproval(reg, clock, "AP0", "C0");
    const counter = crashing(db, Infinity);
    await decideApproval(new Registry(counter.db, { keys, now: clock.now }), await requestOf(reg, "C0", clock), true, BOB, clock.now());
    const statements = counter.count();
    expect(statements).toBeGreaterThan(3);
    const stops: string[] = [];
    for (let at = 1; at <= statements; at++) {
      const customer = `C${at}`;
      await needingApproval(reg, clock, `AP${at}`, customer);
      const id = await requestOf(reg, customer, clock);
      // The process stops at statement `at`: it and everything after it never reach the database; a transaction it was in rolls back.
      const stopped = crashing(db, at);
      const outcome = await decideApproval(new Registry(stopped.db, { keys, now: clock.now }), id, true, BOB, clock.now()).then(() => "done", (e) => (e instanceof Crash ? "stopped" : String(e)));
      expect(outcome).toBe("stopped");
      const approval = await db.get<{ state: string; outcome: string | null }>("SELECT state, outcome FROM approvals WHERE id = ?", [id]);
      const token = await reg.statusOfCustomer(customer);
      const unlocks = await db.get<{ n: number }>("SELECT count(*) AS n FROM audit WHERE customer = ? AND action = 'unlock' AND outcome = 'ok' AND actor = ?", [customer, BOB.name]);
      const state = `${approval!.state}/${approval!.outcome}/${token.state}/${Number(unlocks!.n)}`;
      stops.push(`${at}:${state}`);
      // Nothing happened, or all of it.
      expect(["pending/null/locked/0", "approved/ok/issued/1"], `stopped at statement ${at} of ${statements}: ${stops.join(" ")}`).toContain(state);
      if (approval!.state === "pending") {
        // The supervisor approves again, and it is done once.
        const again = await decideApproval(reg, id, true, BOB, clock.now());
        expect(again.approval).toMatchObject({ state: "approved", outcome: "ok" });
        expect((await reg.statusOfCustomer(customer)).state).toBe("issued");
      }
      const approves = await db.get<{ n: number }>("SELECT count(*) AS n FROM audit WHERE customer = ? AND action = 'approve'", [customer]);
      expect(Number(approves!.n)).toBe(1);
    }
  });
});

class Crash extends Error {}

/**
 * `inner` as a process that stops at its `at`-th statement would see it:
 * that statement and every later one fail without reaching the database,
 * and a transaction open at the stop rolls back (a connection or a process
 * that dies mid-transaction commits nothing). The step after a
 * transaction's last statement stands for its COMMIT: stopping there rolls
 * it back; stopping at the next statement finds it committed.
 */
function crashing(inner: Database, at: number): { db: Database; count(): number } {
  let n = 0;
  let stopped = false;
  const step = () => {
    if (stopped || ++n >= at) {
      stopped = true;
      throw new Crash(`stopped at statement ${at}`);
    }
  };
  const wrap = (s: Sql): Sql => ({
    all: async (q, p) => (step(), s.all(q, p)),
    get: async (q, p) => (step(), s.get(q, p)),
    run: async (q, p) => (step(), s.run(q, p)),
  });
  const generic = (inner as { generic?: Sql }).generic;
  const db: Database & { generic?: Sql } = {
    dialect: inner.dialect,
    description: inner.description,
    forUpdate: inner.forUpdate,
    ...wrap(inner),
    tx: async (fn) => {
      step();
      return inner.tx(async (t) => {
        const v = await fn(wrap(t));
        step();
        return v;
      });
    },
    script: (sql) => inner.script(sql),
    close: async () => undefined,
    ...(generic ? { generic: wrap(generic) } : {}),
  };
  return { db, count: () => n };
}
