/**
 * Every transition and every refusal of the registry, run against SQLite and
 * PostgreSQL alike. Codes come from oathtool, not from the verifier.
 */
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { openMigrated } from "../../host/registry/open-database.js";
import { Registry, type Policy } from "../../host/registry/registry.js";
import { processOwner } from "../../host/process-owner.js";
import { RegistryError, type NewToken } from "../../host/registry/types.js";
import { ENGINES, RFC_SEED_SHA1, TestClock, freshDb, oathtool } from "./support.js";

const STAFF = { name: "staff:alice", source: "cli" };
const CHANNEL = { name: "channel:key-0001", source: "10.0.0.7" };
const FACTORY = { name: "factory:key-0002", source: "10.0.0.9" };
/** Ten seconds into a 60-s step, in 2027. */
const START = 1_800_000_010_000 - (1_800_000_010_000 % 60_000) + 10_000;

function token(serial: string, secret = RFC_SEED_SHA1, extra: Partial<NewToken> = {}): NewToken {
  return { serial, manufacturer: "fobkit", model: "FK-1", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret, ...extra };
}

async function refusal(p: Promise<unknown>): Promise<RegistryError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RegistryError) return e;
    throw e;
  }
  throw new Error("expected a refusal, got success");
}

/** A code not in the ±window around now (a neighbour of a real code would be 'replayed' only by chance 1e-8). */
function wrongCode(secret: Buffer, seconds: number): string {
  const near = new Set([-2, -1, 0, 1, 2].map((d) => oathtool(secret, seconds + d * 60)));
  for (let c = 12345678; ; c++) if (!near.has(String(c))) return String(c);
}

describe.each(ENGINES)("registry on $name", (engine) => {
  let db: Database;
  let url: string;
  let drop: () => Promise<void>;
  let clock: TestClock;
  let keys: KeyRing;
  let reg: Registry;
  const make = (policy?: Partial<Policy>) => new Registry(db, { keys, now: clock.now, policy });

  beforeEach(async () => {
    ({ db, url, drop } = await freshDb(engine));
    clock = new TestClock(START);
    keys = KeyRing.fromKeys([{ id: "k-one", key: randomBytes(32) }]);
    reg = make();
  });
  afterEach(async () => {
    await drop();
  });

  async function activeToken(serial = "FK0001", customer = "cust-1", secret = RFC_SEED_SHA1) {
    await reg.register([token(serial, secret)], FACTORY, "test");
    await reg.issue(serial, customer, STAFF);
    await reg.activate({ serial }, oathtool(secret, clock.seconds), CHANNEL);
    clock.advance(60);
  }

  describe("register", () => {
    it("puts tokens in stock and never shows the seed", async () => {
      await reg.register([token("FK0001"), token("FK0002", randomBytes(20))], FACTORY, "pskc:a.xml");
      const s = await reg.status("FK0001");
      expect(s).toMatchObject({ serial: "FK0001", state: "in_stock", customer: null, drift: 0, failCount: 0, kekId: "k-one", origin: "pskc:a.xml" });
      expect(JSON.stringify(s)).not.toContain(RFC_SEED_SHA1.toString("hex"));
      expect(JSON.stringify(s)).not.toContain("12345678901234567890");
    });

    it("stores the seed sealed: the column holds neither the secret nor its hex", async () => {
      await reg.register([token("FK0001")], FACTORY, "test");
      const row = await db.get<{ seed: Uint8Array }>("SELECT seed FROM tokens WHERE serial = ?", ["FK0001"]);
      const blob = Buffer.from(row!.seed);
      expect(blob.length).toBe(12 + 20 + 16);
      expect(blob.includes(RFC_SEED_SHA1)).toBe(false);
      // A ring without the key cannot open it.
      const other = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k-one", key: randomBytes(32) }]), now: clock.now });
      await other.issue("FK0001", "c1", STAFF);
      await expect(other.activate({ serial: "FK0001" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL)).rejects.toThrow(/does not authenticate/);
    });

    it("refuses the whole batch when one serial is already registered, and names it", async () => {
      await reg.register([token("FK0001")], FACTORY, "first");
      const e = await refusal(reg.register([token("FK0002", randomBytes(20)), token("FK0001", randomBytes(20)), token("FK0003", randomBytes(20))], FACTORY, "second"));
      expect(e.code).toBe("duplicate_serial");
      expect(e.detail.serials).toEqual(["FK0001"]);
      expect(await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM tokens")).toEqual({ n: 1 });
      await expect(reg.status("FK0002")).rejects.toMatchObject({ code: "unknown_serial" });
      const trail = await reg.auditTrail();
      expect(trail.at(-1)).toMatchObject({ action: "register", outcome: "duplicate_serial", actor: FACTORY.name, source: FACTORY.source });
    });

    it("a refusal for many taken serials names ten and counts the rest; its detail lists them (bounded) with the count", async () => {
      const serials = (n: number, p: string) => Array.from({ length: n }, (_, i) => `${p}${String(i).padStart(5, "0")}`);
      for (const [n, prefix] of [[30, "FKS"], [600, "FKL"]] as const) {
        // 30: one transaction; 600: the staged import.
        await reg.register(serials(n, prefix).map((s) => token(s, randomBytes(20))), FACTORY, "first");
        const e = await refusal(reg.register(serials(n, prefix).map((s) => token(s, randomBytes(20))), FACTORY, "again"));
        expect(e.code).toBe("duplicate_serial");
        expect(e.message.match(new RegExp(prefix, "g"))).toHaveLength(10);
        expect(e.message).toContain(`and ${n - 10} more; nothing was imported`);
        expect(e.detail).toMatchObject({ count: n });
        expect((e.detail.serials as string[]).sort()).toEqual(serials(n, prefix));
        const audit = (await reg.auditTrail({ limit: 10_000 })).at(-1)!;
        expect(audit).toMatchObject({ action: "register", outcome: "duplicate_serial", detail: { count: n, origin: "again" } });
      }
      const twice = serials(15, "FKT");
      const e = await refusal(reg.register([...twice, ...twice].map((s) => token(s, randomBytes(20))), FACTORY, "x"));
      expect(e).toMatchObject({ code: "duplicate_serial", detail: { count: 15 } });
      expect(e.message).toMatch(/FKT00009, and 5 more$/);
    });

    it("a serial a live import is staging is refused as being_imported, not as registered, and nothing changes", async () => {
      await reg.register([token("FK0001"), token("FK0002", randomBytes(20))], FACTORY, "t");
      // A live import (this process, heartbeat now on the database's clock: the machine's, not the test clock) staging FK0001: its row is not registered, and may yet be rolled back.
      await db.run("INSERT INTO import_batches (id, state, origin, actor, tokens, started_at, heartbeat_at, owner) VALUES ('imp-live', 'staging', 'x', 'y', 1, ?, ?, ?)", [Date.now(), Date.now(), processOwner()]);
      await db.run("UPDATE tokens SET staged = 'imp-live' WHERE serial = 'FK0001'");
      const e = await refusal(reg.register([token("FK0001", randomBytes(20)), token("FK0009", randomBytes(20))], FACTORY, "second"));
      expect(e).toMatchObject({ code: "being_imported", kind: "refused", detail: { serials: ["FK0001"], count: 1, batches: ["imp-live"] } });
      expect(e.message).toMatch(/being imported by another import now \(imp-live\): FK0001; nothing was imported/);
      // Both kinds at once: registered wins the code, the detail tells both apart.
      const both = await refusal(reg.register(["FK0001", "FK0002", ...Array.from({ length: 600 }, (_, i) => `FKN${i}`)].map((s) => token(s, randomBytes(20))), FACTORY, "third"));
      expect(both).toMatchObject({ code: "duplicate_serial", detail: { serials: ["FK0002"], importing: { serials: ["FK0001"], count: 1 }, batches: ["imp-live"] } });
      expect(both.message).toBe("already registered: FK0002 (and 1 being imported by another import now); nothing was imported");
      await expect(reg.status("FK0009")).rejects.toMatchObject({ code: "unknown_serial" });
      expect(await db.get("SELECT staged FROM tokens WHERE serial = 'FK0001'")).toEqual({ staged: "imp-live" });
      expect((await reg.auditTrail()).filter((a) => a.action === "register").map((a) => a.outcome).slice(-2)).toEqual(["being_imported", "duplicate_serial"]);
    });

    it("refuses a batch that repeats a serial", async () => {
      const e = await refusal(reg.register([token("FK0001"), token("FK0001")], FACTORY, "x"));
      expect(e.code).toBe("duplicate_serial");
      expect(await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM tokens")).toEqual({ n: 0 });
    });

    it.each([
      ["short secret", { secret: Buffer.alloc(10) }],
      ["bad algorithm", { algorithm: "MD5" as never }],
      ["digits 12", { digits: 12 }],
      ["period 0", { period: 0 }],
      ["fractional t0", { t0: 0.5 }],
    ])("refuses bad parameters as bad input (%s)", async (_, extra) => {
      const e = await refusal(reg.register([token("FK0001", RFC_SEED_SHA1, extra)], FACTORY, "x"));
      expect(e).toMatchObject({ code: "bad_token", kind: "bad_input" });
      expect(await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM tokens")).toEqual({ n: 0 });
    });

    it("refuses a serial with spaces or control characters", async () => {
      expect((await refusal(reg.register([token("FK 01")], FACTORY, "x"))).code).toBe("bad_serial");
    });
  });

  describe("issue", () => {
    beforeEach(async () => {
      await reg.register([token("FK0001"), token("FK0002", randomBytes(20))], FACTORY, "test");
    });

    it("in_stock -> issued, audited with actor and source", async () => {
      const s = await reg.issue("FK0001", "cust-1", STAFF);
      expect(s).toMatchObject({ state: "issued", customer: "cust-1", issuance: 1 });
      expect((await reg.auditTrail({ serial: "FK0001" })).at(-1)).toMatchObject({ action: "issue", outcome: "ok", actor: "staff:alice", source: "cli", customer: "cust-1" });
    });

    it("refuses an unknown serial as not found", async () => {
      expect(await refusal(reg.issue("NOPE", "cust-1", STAFF))).toMatchObject({ code: "unknown_serial", kind: "not_found" });
    });

    it("refuses a token already issued", async () => {
      await reg.issue("FK0001", "cust-1", STAFF);
      expect(await refusal(reg.issue("FK0001", "cust-2", STAFF))).toMatchObject({ code: "not_issuable", kind: "refused" });
      expect((await reg.status("FK0001")).customer).toBe("cust-1");
    });

    it("refuses a second live token for one customer", async () => {
      await reg.issue("FK0001", "cust-1", STAFF);
      expect(await refusal(reg.issue("FK0002", "cust-1", STAFF))).toMatchObject({ code: "customer_has_token" });
      expect((await reg.status("FK0002")).state).toBe("in_stock");
    });

    it("refuses a malformed customer id as bad input", async () => {
      expect(await refusal(reg.issue("FK0001", "cust 1; DROP", STAFF))).toMatchObject({ code: "bad_customer", kind: "bad_input" });
    });
  });

  describe("activate", () => {
    beforeEach(async () => {
      await reg.register([token("FK0001")], FACTORY, "test");
    });

    it("refuses a token in stock", async () => {
      expect(await refusal(reg.activate({ serial: "FK0001" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL))).toMatchObject({ code: "not_issued" });
    });

    it("issued -> active with the keyfob's code; learns drift from a keyfob 9 minutes fast", async () => {
      await reg.issue("FK0001", "cust-1", STAFF);
      const a = await reg.activate({ customer: "cust-1" }, oathtool(RFC_SEED_SHA1, clock.seconds + 9 * 60), CHANNEL);
      expect(a).toMatchObject({ state: "active", drift: 9 });
      expect(await reg.status("FK0001")).toMatchObject({ state: "active", drift: 9 });
    });

    it("refuses a code beyond the activation window, counting it", async () => {
      await reg.issue("FK0001", "cust-1", STAFF);
      const e = await refusal(reg.activate({ serial: "FK0001" }, oathtool(RFC_SEED_SHA1, clock.seconds + 16 * 60), CHANNEL));
      expect(e).toMatchObject({ code: "wrong_code", detail: { failures: 1, locked: false } });
      expect(await reg.status("FK0001")).toMatchObject({ state: "issued", failCount: 1 });
    });

    it.each(["1234567", "123456789", "1234567a", " 12345678", ""])("treats %j as bad input, not a wrong code", async (code) => {
      await reg.issue("FK0001", "cust-1", STAFF);
      expect(await refusal(reg.activate({ serial: "FK0001" }, code, CHANNEL))).toMatchObject({ code: "bad_code", kind: "bad_input" });
      expect((await reg.status("FK0001")).failCount).toBe(0);
    });

    it("refuses an active token and a customer with none", async () => {
      const seed = randomBytes(20);
      await activeToken("FK0009", "cust-9", seed);
      expect(await refusal(reg.activate({ serial: "FK0009" }, oathtool(seed, clock.seconds), CHANNEL))).toMatchObject({ code: "already_active" });
      expect(await refusal(reg.activate({ customer: "nobody" }, "12345678", CHANNEL))).toMatchObject({ code: "no_token" });
    });

    it("locks after lockAfter wrong activation codes; unlock returns it to issued", async () => {
      await reg.issue("FK0001", "cust-1", STAFF);
      const bad = wrongCode(RFC_SEED_SHA1, clock.seconds);
      for (let i = 0; i < 5; i++) await refusal(reg.activate({ serial: "FK0001" }, bad, CHANNEL));
      expect((await reg.status("FK0001")).state).toBe("locked");
      expect(await refusal(reg.activate({ serial: "FK0001" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL))).toMatchObject({ code: "locked" });
      expect(await reg.unlock("cust-1", STAFF)).toMatchObject({ state: "issued", failCount: 0 });
      expect(await reg.activate({ serial: "FK0001" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL)).toMatchObject({ state: "active" });
    });
  });

  describe("verify", () => {
    beforeEach(async () => {
      await activeToken();
    });

    it("accepts the current code once; the same code again is a replay", async () => {
      const code = oathtool(RFC_SEED_SHA1, clock.seconds);
      expect(await reg.verify("cust-1", code, CHANNEL)).toMatchObject({ serial: "FK0001", state: "active", drift: 0 });
      expect(await refusal(reg.verify("cust-1", code, CHANNEL))).toMatchObject({ code: "replayed", kind: "refused" });
      // Also later in the same step, and in the next step (the code is still within the window).
      clock.advance(30);
      expect((await refusal(reg.verify("cust-1", code, CHANNEL))).code).toBe("replayed");
    });

    it("refuses the code of an earlier step once a later one was accepted", async () => {
      const earlier = oathtool(RFC_SEED_SHA1, clock.seconds - 60 + 60); // this step
      const later = oathtool(RFC_SEED_SHA1, clock.seconds + 60);
      expect(await reg.verify("cust-1", later, CHANNEL)).toMatchObject({ drift: 1 });
      expect((await refusal(reg.verify("cust-1", earlier, CHANNEL))).code).toBe("replayed");
    });

    it("accepts ±1 step and refuses ±2 steps around the learned drift", async () => {
      clock.advance(60);
      expect(await reg.verify("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds - 60), CHANNEL)).toMatchObject({ drift: -1 });
      clock.advance(600);
      // Drift is now -1: the window is steps -2..0 relative to now.
      expect(await refusal(reg.verify("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds + 60), CHANNEL))).toMatchObject({ code: "wrong_code" });
      expect(await reg.verify("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds - 120), CHANNEL)).toMatchObject({ drift: -2 });
      clock.advance(600);
      expect(await refusal(reg.verify("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds - 5 * 60), CHANNEL))).toMatchObject({ code: "wrong_code" });
      expect(await refusal(reg.verify("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds + 60), CHANNEL))).toMatchObject({ code: "wrong_code" });
    });

    it("locks at exactly lockAfter consecutive wrong codes and refuses even the right code while locked", async () => {
      const bad = wrongCode(RFC_SEED_SHA1, clock.seconds);
      for (let i = 1; i <= 4; i++) {
        expect(await refusal(reg.verify("cust-1", bad, CHANNEL))).toMatchObject({ code: "wrong_code", detail: { failures: i, locked: false } });
      }
      expect((await reg.status("FK0001")).state).toBe("active");
      expect(await refusal(reg.verify("cust-1", bad, CHANNEL))).toMatchObject({ code: "wrong_code", detail: { failures: 5, locked: true } });
      expect((await reg.status("FK0001")).state).toBe("locked");
      expect(await refusal(reg.verify("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL))).toMatchObject({ code: "locked" });
      expect((await reg.status("FK0001")).failCount).toBe(5);
      const trail = await reg.auditTrail({ serial: "FK0001" });
      expect(trail.filter((r) => r.action === "lock")).toHaveLength(1);
    });

    it("never forgets failures with time: only a success resets the count", async () => {
      const bad = wrongCode(RFC_SEED_SHA1, clock.seconds);
      for (let i = 0; i < 3; i++) await refusal(reg.verify("cust-1", bad, CHANNEL));
      clock.advance(7 * 86400);
      await refusal(reg.verify("cust-1", wrongCode(RFC_SEED_SHA1, clock.seconds), CHANNEL));
      expect((await reg.status("FK0001")).failCount).toBe(4);
      await reg.verify("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL);
      expect((await reg.status("FK0001")).failCount).toBe(0);
    });

    it("does not count replays toward the lock (no guess was made)", async () => {
      const code = oathtool(RFC_SEED_SHA1, clock.seconds);
      await reg.verify("cust-1", code, CHANNEL);
      for (let i = 0; i < 6; i++) expect((await refusal(reg.verify("cust-1", code, CHANNEL))).code).toBe("replayed");
      expect(await reg.status("FK0001")).toMatchObject({ failCount: 0, state: "active" });
    });

    it("honours a configured lockAfter", async () => {
      const strict = make({ lockAfter: 2 });
      const bad = wrongCode(RFC_SEED_SHA1, clock.seconds);
      await refusal(strict.verify("cust-1", bad, CHANNEL));
      expect(await refusal(strict.verify("cust-1", bad, CHANNEL))).toMatchObject({ detail: { locked: true } });
    });

    it("refuses a customer without a token, and an issued token not yet activated", async () => {
      expect(await refusal(reg.verify("nobody", "12345678", CHANNEL))).toMatchObject({ code: "no_token" });
      await reg.register([token("FK0002", randomBytes(20))], FACTORY, "t");
      await reg.issue("FK0002", "cust-2", STAFF);
      expect(await refusal(reg.verify("cust-2", "12345678", CHANNEL))).toMatchObject({ code: "not_active" });
    });

    it("audits every outcome with actor and source, never the code", async () => {
      const code = oathtool(RFC_SEED_SHA1, clock.seconds);
      await reg.verify("cust-1", code, CHANNEL);
      await refusal(reg.verify("cust-1", code, CHANNEL));
      const trail = await reg.auditTrail({ customer: "cust-1" });
      const verifies = trail.filter((r) => r.action === "verify");
      expect(verifies.map((r) => r.outcome)).toEqual(["ok", "replayed"]);
      expect(verifies[0]).toMatchObject({ actor: CHANNEL.name, source: CHANNEL.source, serial: "FK0001" });
      expect(JSON.stringify(trail)).not.toContain(code);
    });
  });

  describe("unlock", () => {
    it("locked -> active, and refuses a token that is not locked", async () => {
      await activeToken();
      expect(await refusal(reg.unlock("cust-1", STAFF))).toMatchObject({ code: "not_locked" });
      const bad = wrongCode(RFC_SEED_SHA1, clock.seconds);
      for (let i = 0; i < 5; i++) await refusal(reg.verify("cust-1", bad, CHANNEL));
      expect(await reg.unlock("cust-1", STAFF)).toMatchObject({ state: "active", failCount: 0 });
      expect(await reg.verify("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL)).toMatchObject({ state: "active" });
      expect(await refusal(reg.unlock("nobody", STAFF))).toMatchObject({ code: "no_token" });
    });
  });

  describe("deactivate and issue again", () => {
    beforeEach(async () => {
      await activeToken();
    });

    it("a wrong code does not deactivate and counts", async () => {
      expect(await refusal(reg.deactivate("cust-1", wrongCode(RFC_SEED_SHA1, clock.seconds), CHANNEL))).toMatchObject({ code: "wrong_code" });
      expect(await reg.status("FK0001")).toMatchObject({ state: "active", failCount: 1 });
    });

    it("active -> retired; a retired keyfob is refused activation until issued again", async () => {
      expect(await reg.deactivate("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL)).toMatchObject({ state: "retired" });
      expect(await reg.status("FK0001")).toMatchObject({ state: "retired", customer: "cust-1" });
      clock.advance(60);
      expect(await refusal(reg.activate({ serial: "FK0001" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL))).toMatchObject({ code: "retired" });
      expect(await refusal(reg.verify("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL))).toMatchObject({ code: "no_token" });
      expect(await refusal(reg.deactivate("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL))).toMatchObject({ code: "no_token" });
      // Issued again (to another customer, even) and started again: works.
      expect(await reg.issue("FK0001", "cust-2", STAFF)).toMatchObject({ state: "issued", customer: "cust-2", issuance: 2 });
      expect(await refusal(reg.verify("cust-2", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL))).toMatchObject({ code: "not_active" });
      expect(await reg.activate({ customer: "cust-2" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL)).toMatchObject({ state: "active" });
    });

    it("refuses deactivation of a locked token", async () => {
      const bad = wrongCode(RFC_SEED_SHA1, clock.seconds);
      for (let i = 0; i < 5; i++) await refusal(reg.verify("cust-1", bad, CHANNEL));
      expect(await refusal(reg.deactivate("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL))).toMatchObject({ code: "locked" });
    });
  });

  describe("listing and counts", () => {
    it("lists by state in serial order, pages with next, counts every state, and never reads a seed", async () => {
      await reg.register(["FK0005", "FK0001", "FK0003", "FK0002", "FK0004"].map((s) => token(s, randomBytes(20))), FACTORY, "test");
      await reg.issue("FK0002", "c2", STAFF);
      await reg.issue("FK0004", "c4", STAFF);
      const bad = "00000000";
      for (let i = 0; i < 5; i++) await refusal(reg.activate({ serial: "FK0004" }, bad, CHANNEL));
      expect(await reg.countByState()).toEqual({ in_stock: 3, issued: 1, active: 0, locked: 1, retired: 0 });
      const locked = await reg.listTokens({ state: "locked" });
      expect(locked).toEqual({ tokens: [expect.objectContaining({ serial: "FK0004", state: "locked", customer: "c4", failCount: 5 })], next: null });
      const first = await reg.listTokens({ limit: 2 });
      expect(first.tokens.map((t) => t.serial)).toEqual(["FK0001", "FK0002"]);
      expect(first.next).toBe("FK0002");
      const second = await reg.listTokens({ limit: 2, afterSerial: first.next! });
      expect(second.tokens.map((t) => t.serial)).toEqual(["FK0003", "FK0004"]);
      const last = await reg.listTokens({ limit: 2, afterSerial: second.next! });
      expect(last).toMatchObject({ tokens: [expect.objectContaining({ serial: "FK0005" })], next: null });
      expect((await reg.listTokens({ state: "in_stock" })).tokens.map((t) => t.serial)).toEqual(["FK0001", "FK0003", "FK0005"]);
      expect(JSON.stringify(await reg.listTokens())).not.toMatch(/seed/);
      expect(await refusal(reg.listTokens({ state: "lost" as never }))).toMatchObject({ code: "bad_state", kind: "bad_input" });
    });
  });

  describe("withdraw (staff, no code)", () => {
    const SECOND_SEED = Buffer.from("00112233445566778899aabbccddeeff00112233", "hex");

    beforeEach(async () => {
      await activeToken();
    });

    it("a lost keyfob: retired at once, the customer gets another, and the lost one is never issued or activated again", async () => {
      const s = await reg.withdraw("cust-1", "lost", STAFF);
      expect(s).toMatchObject({ serial: "FK0001", state: "retired", customer: "cust-1", withdrawn: "lost", failCount: 0 });
      expect(await refusal(reg.verify("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL))).toMatchObject({ code: "no_token" });
      // The customer is free for a new keyfob at once.
      await reg.register([token("FK0002", SECOND_SEED)], FACTORY, "test");
      expect(await reg.issue("FK0002", "cust-1", STAFF)).toMatchObject({ state: "issued", customer: "cust-1" });
      // The lost one: issuing it (to anyone) is refused for good, and so is starting it.
      const e = await refusal(reg.issue("FK0001", "cust-9", STAFF));
      expect(e).toMatchObject({ code: "barred" });
      expect(e.message).toMatch(/reported lost/);
      const a = await refusal(reg.activate({ serial: "FK0001" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL));
      expect(a).toMatchObject({ code: "retired" });
      expect(a.message).toMatch(/reported lost; it is never used again/);
      expect(await reg.status("FK0001")).toMatchObject({ state: "retired", withdrawn: "lost", issuance: 1 });
      const trail = await reg.auditTrail({ serial: "FK0001" });
      expect(trail.filter((r) => r.action === "withdraw")).toEqual([
        expect.objectContaining({ actor: "staff:alice", outcome: "ok", customer: "cust-1", detail: { reason: "lost", from: "active" } }),
      ]);
      expect(trail.filter((r) => r.action === "issue").map((r) => r.outcome)).toEqual(["ok", "barred"]);
    });

    it("a stolen keyfob that is locked is withdrawn too, and barred", async () => {
      const bad = wrongCode(RFC_SEED_SHA1, clock.seconds);
      for (let i = 0; i < 5; i++) await refusal(reg.verify("cust-1", bad, CHANNEL));
      expect(await reg.withdraw("cust-1", "stolen", STAFF)).toMatchObject({ state: "retired", withdrawn: "stolen" });
      expect(await refusal(reg.issue("FK0001", "cust-1", STAFF))).toMatchObject({ code: "barred" });
    });

    it("a returned keyfob may be issued again: the reason is cleared, kept in the audit", async () => {
      expect(await reg.withdraw("cust-1", "returned", STAFF)).toMatchObject({ state: "retired", withdrawn: "returned" });
      expect(await reg.issue("FK0001", "cust-2", STAFF)).toMatchObject({ state: "issued", customer: "cust-2", issuance: 2, withdrawn: null });
      expect(await reg.activate({ customer: "cust-2" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL)).toMatchObject({ state: "active" });
      const issues = (await reg.auditTrail({ serial: "FK0001" })).filter((r) => r.action === "issue");
      expect(issues.at(-1)!.detail).toMatchObject({ from: "retired", issuance: 2, withdrawn: "returned" });
    });

    it("withdrawing a locked keyfob and issuing it again to the same customer does not reset the guess budget: it comes back locked, for the unlock path", async () => {
      const bad = wrongCode(RFC_SEED_SHA1, clock.seconds);
      for (let i = 0; i < 5; i++) await refusal(reg.verify("cust-1", bad, CHANNEL));
      expect(await reg.withdraw("cust-1", "returned", STAFF)).toMatchObject({ state: "retired", failCount: 5 });
      expect(await reg.issue("FK0001", "cust-1", STAFF)).toMatchObject({ state: "locked", customer: "cust-1", failCount: 5, issuance: 2 });
      // No guess gets through until staff unlock it, and the unlock is the audited one (maker-checker counts it).
      expect(await refusal(reg.activate({ customer: "cust-1" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL))).toMatchObject({ code: "locked" });
      const issue = (await reg.auditTrail({ serial: "FK0001" })).filter((r) => r.action === "issue").at(-1)!;
      expect(issue.detail).toMatchObject({ from: "retired", issuance: 2, withdrawn: "returned", lockedAtWithdrawal: true, failures: 5 });
      expect(await reg.unlock("cust-1", STAFF)).toMatchObject({ state: "issued", failCount: 0 });
      expect(await reg.activate({ customer: "cust-1" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL)).toMatchObject({ state: "active" });
    });

    it("a keyfob withdrawn after some wrong codes keeps counting whoever it is issued to next", async () => {
      const bad = wrongCode(RFC_SEED_SHA1, clock.seconds);
      for (let i = 0; i < 3; i++) await refusal(reg.verify("cust-1", bad, CHANNEL));
      await reg.withdraw("cust-1", "faulty", STAFF);
      expect(await reg.issue("FK0001", "cust-1", STAFF)).toMatchObject({ state: "issued", failCount: 3 });
      await reg.withdraw("cust-1", "returned", STAFF);
      expect(await reg.issue("FK0001", "cust-2", STAFF)).toMatchObject({ state: "issued", customer: "cust-2", failCount: 3 });
      for (let i = 0; i < 2; i++) await refusal(reg.activate({ customer: "cust-2" }, bad, CHANNEL));
      expect(await reg.status("FK0001")).toMatchObject({ state: "locked", failCount: 5 });
    });

    it("a locked keyfob passed through another customer and back still comes back locked (no unlock without the unlock path)", async () => {
      // The attack review's sequence: withdraw from A, issue to a made-up X, withdraw, issue to A again.
      const bad = wrongCode(RFC_SEED_SHA1, clock.seconds);
      for (let i = 0; i < 5; i++) await refusal(reg.verify("cust-1", bad, CHANNEL));
      await reg.withdraw("cust-1", "returned", STAFF);
      expect(await reg.issue("FK0001", "cust-x", STAFF)).toMatchObject({ state: "locked", customer: "cust-x", failCount: 5 });
      await reg.withdraw("cust-x", "returned", STAFF);
      expect(await reg.issue("FK0001", "cust-1", STAFF)).toMatchObject({ state: "locked", customer: "cust-1", failCount: 5 });
      expect((await reg.auditTrail({ serial: "FK0001" })).filter((r) => r.action === "unlock")).toHaveLength(0);
    });

    it("refuses a customer holding no token, and an unknown reason as bad input that changes nothing", async () => {
      expect(await refusal(reg.withdraw("cust-7", "lost", STAFF))).toMatchObject({ code: "no_token" });
      const e = await refusal(reg.withdraw("cust-1", "misplaced" as never, STAFF));
      expect(e).toMatchObject({ code: "bad_reason", kind: "bad_input" });
      expect(e.message).toBe("reason must be one of lost, stolen, returned, faulty");
      expect(await reg.status("FK0001")).toMatchObject({ state: "active", withdrawn: null });
    });
  });

  describe("resync", () => {
    beforeEach(async () => {
      await activeToken();
    });

    it("re-learns a keyfob 40 minutes fast from two consecutive codes", async () => {
      const fob = clock.seconds + 40 * 60;
      expect((await refusal(reg.verify("cust-1", oathtool(RFC_SEED_SHA1, fob), CHANNEL))).code).toBe("wrong_code");
      // The customer reads one code, then the next a minute later; staff submit both.
      const first = oathtool(RFC_SEED_SHA1, fob);
      clock.advance(60);
      const r = await reg.resync("FK0001", [first, oathtool(RFC_SEED_SHA1, fob + 60)], STAFF);
      expect(r).toMatchObject({ drift: 40 });
      expect(await reg.status("FK0001")).toMatchObject({ drift: 40, failCount: 0 });
      clock.advance(120);
      expect(await reg.verify("cust-1", oathtool(RFC_SEED_SHA1, fob + 180), CHANNEL)).toMatchObject({ drift: 40 });
    });

    it("refuses codes that are not consecutive, or already used", async () => {
      const fob = clock.seconds + 40 * 60;
      expect(await refusal(reg.resync("FK0001", [oathtool(RFC_SEED_SHA1, fob), oathtool(RFC_SEED_SHA1, fob + 120)], STAFF))).toMatchObject({ code: "resync_failed" });
      const used = [oathtool(RFC_SEED_SHA1, clock.seconds - 60), oathtool(RFC_SEED_SHA1, clock.seconds)] as [string, string];
      // The first of these was the activation code: at or below the last step.
      expect(await refusal(reg.resync("FK0001", used, STAFF))).toMatchObject({ code: "resync_failed" });
      expect(await refusal(reg.resync("FK0001", ["1234", "12345678"], STAFF))).toMatchObject({ code: "bad_code" });
      expect(await refusal(reg.resync("NOPE", ["12345678", "12345678"], STAFF))).toMatchObject({ code: "unknown_serial" });
    });
  });

  describe("concurrent requests in one process (PostgreSQL: parallel transactions on a pool)", () => {
    it("accepts one code once when submitted ten times at once", async () => {
      await activeToken();
      const code = oathtool(RFC_SEED_SHA1, clock.seconds);
      const results = await Promise.allSettled(Array.from({ length: 10 }, () => reg.verify("cust-1", code, CHANNEL)));
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      expect(results.filter((r) => r.status === "rejected").map((r) => ((r as PromiseRejectedResult).reason as RegistryError).code)).toEqual(Array(9).fill("replayed"));
    });

    it("issues one of two tokens when both are issued to one customer at once", async () => {
      await reg.register([token("FK0001"), token("FK0002", randomBytes(20))], FACTORY, "t");
      const results = await Promise.allSettled([reg.issue("FK0001", "cust-1", STAFF), reg.issue("FK0002", "cust-1", STAFF)]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      expect(((results.find((r) => r.status === "rejected") as PromiseRejectedResult).reason as RegistryError).code).toBe("customer_has_token");
    });

    it("locks at exactly lockAfter when twelve wrong codes arrive at once", async () => {
      await activeToken();
      const results = await Promise.allSettled(Array.from({ length: 12 }, (_, k) => reg.verify("cust-1", String(20_000_000 + k), CHANNEL)));
      const codes = results.map((r) => ((r as PromiseRejectedResult).reason as RegistryError).code);
      expect(codes.filter((c) => c === "wrong_code")).toHaveLength(5);
      expect(codes.filter((c) => c === "locked")).toHaveLength(7);
      expect(await reg.status("FK0001")).toMatchObject({ state: "locked", failCount: 5 });
    });
  });

  describe("audit", () => {
    it("is append-only in the database itself", async () => {
      await reg.register([token("FK0001")], FACTORY, "test");
      await expect(db.run("UPDATE audit SET outcome = 'ok'")).rejects.toThrow(/append-only/);
      await expect(db.run("DELETE FROM audit")).rejects.toThrow(/append-only/);
      expect((await reg.auditTrail()).length).toBe(1);
    });
  });

  describe("key rotation", () => {
    it("re-seals every seed under the new key while codes keep verifying", async () => {
      await activeToken();
      await reg.register([token("FK0002", randomBytes(20)), token("FK0003", randomBytes(32))], FACTORY, "t");
      const newId = keys.addNewestKey();
      expect(await reg.kekUsage()).toEqual({ "k-one": 3 });
      // Rows under the old key still open during the rotation.
      expect(await reg.verify("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL)).toMatchObject({ state: "active" });
      expect(await reg.retireOlderKeys(STAFF)).toEqual(["k-one"]);
      const r = await reg.resealAll(STAFF);
      expect(r).toEqual({ kekId: newId, resealed: 3, indexed: 0, duplicateSeeds: [] });
      expect(await reg.kekUsage()).toEqual({ [newId]: 3 });
      expect(keys.dropKeys(await reg.pruneRetiredKeys(STAFF))).toEqual(["k-one"]);
      clock.advance(60);
      expect(await reg.verify("cust-1", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL)).toMatchObject({ state: "active" });
      expect((await reg.auditTrail()).slice(-4).map((a) => a.action)).toEqual(["retire_key", "rotate_key", "prune_key", "verify"]);
    });
  });

  describe("large imports in short transactions, all or nothing (issue 11, item 4)", () => {
    const many = (n: number, prefix = "FKI") => Array.from({ length: n }, (_, i) => token(`${prefix}${String(i).padStart(5, "0")}`, randomBytes(20)));

    it("stages a large import invisibly and shows every token at one commit", async () => {
      const tokens = many(1200);
      const seen = new Set<number>();
      let done = false;
      const watching = (async () => {
        while (!done) {
          seen.add((await reg.countByState()).in_stock);
          await new Promise((r) => setTimeout(r, 2));
        }
      })();
      const r = await reg.register(tokens, FACTORY, "pskc:big.xml");
      done = true;
      await watching;
      expect(r.registered).toHaveLength(1200);
      // Never a part: nothing, then everything.
      expect([...seen].filter((n) => n !== 0 && n !== 1200)).toEqual([]);
      expect(await reg.countByState()).toMatchObject({ in_stock: 1200 });
      expect(await db.get("SELECT COUNT(*) AS n FROM tokens WHERE staged IS NOT NULL")).toEqual({ n: 0 });
      expect(await db.get("SELECT COUNT(*) AS n FROM import_batches")).toEqual({ n: 0 });
      const trail = await reg.auditTrail({ limit: 10_000 });
      expect(trail.filter((a) => a.action === "register" && a.outcome === "staged")).toHaveLength(1200);
      expect(trail.at(-1)).toMatchObject({ action: "import", outcome: "ok", detail: { tokens: 1200, origin: "pskc:big.xml" } });
    });

    it("leaves nothing when a chunk fails: a serial registered meanwhile refuses the whole import", async () => {
      const tokens = many(1200);
      const other = make();
      const importing = reg.register(tokens, FACTORY, "pskc:big.xml").then(
        () => undefined,
        (e) => e,
      );
      // Once the import is staging, another process registers its last serial (not yet written by the import).
      for (let i = 0; i < 2000 && !(await db.get("SELECT id FROM import_batches")); i++) await new Promise((r) => setTimeout(r, 1));
      await other.register([token("FKI01199", randomBytes(20))], FACTORY, "api");
      const e = await importing;
      expect(e).toMatchObject({ code: "duplicate_serial" });
      expect(await reg.countByState()).toMatchObject({ in_stock: 1 });
      expect(await db.get("SELECT COUNT(*) AS n FROM tokens")).toEqual({ n: 1 });
      expect(await db.get("SELECT COUNT(*) AS n FROM import_batches")).toEqual({ n: 0 });
      expect((await reg.auditTrail({ limit: 10_000 })).filter((a) => a.action === "import").map((a) => a.outcome)).toEqual(["aborted"]);
    });

    it("clears what a dead import left: an abandoned batch's rows are deleted, never shown", async () => {
      await reg.register([token("FK0001", randomBytes(20))], FACTORY, "t");
      const row = await db.get<Record<string, unknown>>("SELECT * FROM tokens WHERE serial = 'FK0001'");
      await db.run("DELETE FROM tokens WHERE serial = 'FK0001'").catch(() => undefined);
      await db.run("INSERT INTO import_batches (id, state, origin, actor, tokens, started_at, heartbeat_at) VALUES ('imp-dead', 'staging', 'x', 'y', 1, 0, 0)");
      const cols = Object.keys(row!).filter((c) => c !== "staged" && c !== "seed_index");
      await db.run(`INSERT INTO tokens (${cols.join(", ")}, staged) VALUES (${cols.map(() => "?").join(", ")}, 'imp-dead')`, cols.map((c) => row![c]));
      await expect(reg.status("FK0001")).rejects.toMatchObject({ code: "unknown_serial" });
      expect(await reg.countByState()).toMatchObject({ in_stock: 0 });
      // The next import clears it (its serial would otherwise stay taken).
      await reg.register(many(600, "FKJ"), FACTORY, "next");
      expect(await db.get("SELECT COUNT(*) AS n FROM tokens WHERE serial = 'FK0001'")).toEqual({ n: 0 });
      expect((await reg.auditTrail({ limit: 10_000 })).filter((a) => a.action === "import").map((a) => [a.outcome, a.detail?.reason ?? null])).toEqual([["aborted", "abandoned"], ["ok", null]]);
    });
    it("never deletes the tokens of an import that committed while it was being taken for abandoned", async () => {
      // A batch judged abandoned (here by its stale heartbeat; the same holds for an owner wrongly seen gone) whose
      // import is in fact alive and commits between that judgement and the delete: the commit holds the batch's row
      // (PostgreSQL: its row lock; SQLite: the write lock) while clearStaleImports waits to delete it.
      await reg.register([token("FK0001", randomBytes(20))], FACTORY, "t");
      await db.run("INSERT INTO import_batches (id, state, origin, actor, tokens, started_at, heartbeat_at) VALUES ('imp-late', 'staging', 'x', 'y', 1, 0, 0)");
      await db.run("UPDATE tokens SET staged = 'imp-late' WHERE serial = 'FK0001'");
      const owner = await openMigrated(url);
      try {
        let commit!: () => void;
        const gate = new Promise<void>((r) => (commit = r));
        let holder: number | undefined;
        let held!: () => void;
        const holding = new Promise<void>((r) => (held = r));
        const committing = owner.tx(async (t) => {
          await t.run("UPDATE import_batches SET state = 'committed' WHERE id = 'imp-late' AND state = 'staging'");
          if (engine.name === "postgres") holder = (await t.get<{ p: number }>("SELECT pg_backend_pid() AS p"))!.p;
          held();
          await gate;
        });
        await holding;
        const clearing = reg.clearStaleImports(STAFF);
        if (engine.name === "postgres") {
          // Until clearStaleImports's delete waits on this transaction's row lock.
          for (let i = 0; i < 1000; i++) {
            const r = await owner.get<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE ? = ANY(pg_blocking_pids(pid))", [holder]);
            if (r!.n > 0) break;
            await new Promise((r) => setTimeout(r, 10));
          }
        } else {
          // Its reads do not wait in WAL mode; its delete retries on SQLITE_BUSY (up to 10 s) until this commits.
          await new Promise((r) => setTimeout(r, 300));
        }
        commit();
        await committing;
        await clearing;
      } finally {
        await owner.close();
      }
      expect(await db.get("SELECT serial, staged FROM tokens WHERE serial = 'FK0001'")).toEqual({ serial: "FK0001", staged: "imp-late" });
      expect((await reg.auditTrail({ limit: 100 })).filter((a) => a.action === "import")).toEqual([]);
      // The next import settles it: the committed import's token is shown.
      await reg.clearStaleImports(STAFF);
      expect(await reg.status("FK0001")).toMatchObject({ serial: "FK0001", state: "in_stock" });
    });
  });

  describe("seed uniqueness (issue 11, item 6a)", () => {
    it("refuses a seed that appears twice in one input, naming both serials, and registers nothing", async () => {
      const seed = randomBytes(20);
      const e = await refusal(reg.register([token("FK0001", seed), token("FK0002", randomBytes(20)), token("FK0003", Buffer.from(seed))], FACTORY, "pskc:a.xml"));
      expect(e).toMatchObject({ code: "duplicate_seed", kind: "refused", detail: { serials: [["FK0001", "FK0003"]] } });
      expect(e.message).toMatch(/FK0001 and FK0003/);
      expect(await reg.countByState()).toMatchObject({ in_stock: 0 });
    });

    it("refuses a seed any token already holds, whatever its state, and audits the refusal", async () => {
      await activeToken("FK0001", "cust-1", RFC_SEED_SHA1);
      await reg.withdraw("cust-1", "lost", STAFF);
      const e = await refusal(reg.register([token("FK0002", randomBytes(20)), token("FK0009", Buffer.from(RFC_SEED_SHA1))], FACTORY, "pskc:b.xml"));
      expect(e).toMatchObject({ code: "duplicate_seed", detail: { serials: [["FK0009", "FK0001"]] } });
      expect(e.message).toMatch(/the seed of FK0009 is already held by token FK0001/);
      await expect(reg.status("FK0002")).rejects.toMatchObject({ code: "unknown_serial" });
      expect((await reg.auditTrail()).at(-1)).toMatchObject({ action: "register", outcome: "duplicate_seed" });
      // One token at a time (the factory's registration call) too.
      expect(await refusal(reg.registerOne(token("FK0010", Buffer.from(RFC_SEED_SHA1)), FACTORY, "api"))).toMatchObject({ code: "duplicate_seed" });
    });

    it("keeps a keyed hash, never the seed, and the index survives rotation and prune", async () => {
      const seed = randomBytes(20);
      await reg.register([token("FK0001", seed)], FACTORY, "t");
      const before = await db.get<{ seed_index: Uint8Array }>("SELECT seed_index FROM tokens WHERE serial = 'FK0001'");
      const ix = Buffer.from(before!.seed_index);
      expect(ix.length).toBe(32);
      expect(ix.includes(seed)).toBe(false);
      expect(ix.equals(createHash("sha256").update(seed).digest())).toBe(false);
      const secret = await db.get<{ sealed: Uint8Array; kek_id: string }>("SELECT sealed, kek_id FROM registry_secrets WHERE name = 'seed_index'");
      expect(secret!.kek_id).toBe("k-one");
      const newId = keys.addNewestKey();
      await reg.retireOlderKeys(STAFF);
      await reg.resealAll(STAFF);
      expect(keys.dropKeys(await reg.pruneRetiredKeys(STAFF))).toEqual(["k-one"]);
      expect(await db.get("SELECT kek_id FROM registry_secrets WHERE name = 'seed_index'")).toEqual({ kek_id: newId });
      const after = await db.get<{ seed_index: Uint8Array }>("SELECT seed_index FROM tokens WHERE serial = 'FK0001'");
      expect(Buffer.from(after!.seed_index).equals(ix)).toBe(true);
      // A fresh registry (another server) reads the index key back under the new key and still refuses the seed.
      const other = new Registry(db, { keys, now: clock.now });
      expect(await refusal(other.register([token("FK0002", Buffer.from(seed))], FACTORY, "t"))).toMatchObject({ code: "duplicate_seed" });
    });
  });

  describe("key retirement (issue 11, item 1)", () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), "fobkit-retire-"));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it("refuses any row sealed under a retired key, in the database itself", async () => {
      await reg.register([token("FK0001")], FACTORY, "t");
      const row = await db.get<Record<string, unknown>>("SELECT * FROM tokens WHERE serial = 'FK0001'");
      keys.addNewestKey();
      await reg.retireOlderKeys(STAFF);
      // A raw INSERT under the retired key, as a stale process would write it.
      const cols = Object.keys(row!).filter((c) => c !== "serial");
      await expect(db.run(`INSERT INTO tokens (serial, ${cols.join(", ")}) SELECT 'FK0009', ${cols.map((c) => (c === "seed_index" ? "NULL" : c)).join(", ")} FROM tokens WHERE serial = 'FK0001'`)).rejects.toThrow(/kek_retired/);
      await expect(db.run("UPDATE tokens SET kek_id = 'k-one' WHERE serial = 'FK0001'")).resolves.toBe(1); // unchanged key id: allowed
    });

    it("a server that has not re-read the key file re-reads it when refused and seals under the new key", async () => {
      const path = join(dir, "bank.kek");
      const cli = new Registry(db, { keys: KeyRing.create(path), now: clock.now });
      // The server looks at the file at most once an hour: it would never notice on its own.
      const server = new Registry(db, { keys: KeyRing.fromFile(path, { recheckMs: 3_600_000 }), now: clock.now });
      const oldId = server.keys.currentId;
      const newId = cli.keys.addNewestKey();
      expect(server.keys.currentId).toBe(oldId);
      expect(await cli.retireOlderKeys(STAFF)).toEqual([oldId]);
      await server.register([token("FK0001")], FACTORY, "t");
      expect((await server.status("FK0001")).kekId).toBe(newId);
      expect(await cli.pruneRetiredKeys(STAFF)).toEqual([oldId]);
    });

    it("refuses as unavailable, writing nothing, when the key file holds no newer key", async () => {
      const path = join(dir, "bank.kek");
      const cli = new Registry(db, { keys: KeyRing.create(path), now: clock.now });
      const stale = join(dir, "stale.kek");
      copyFileSync(path, stale);
      const server = new Registry(db, { keys: KeyRing.fromFile(stale), now: clock.now });
      cli.keys.addNewestKey();
      await cli.retireOlderKeys(STAFF);
      const e = await refusal(server.register([token("FK0001")], FACTORY, "t"));
      expect(e).toMatchObject({ code: "key_retired", kind: "unavailable" });
      expect(await reg.countByState()).toMatchObject({ in_stock: 0 });
    });

    it("prunes only a key no row uses, re-sealing what is left, and never a key that was not retired", async () => {
      await reg.register([token("FK0001"), token("FK0002", randomBytes(20))], FACTORY, "t");
      const newId = keys.addNewestKey();
      // Not retired yet: kept, whatever the rows.
      expect(await reg.pruneRetiredKeys(STAFF)).toEqual([]);
      await reg.retireOlderKeys(STAFF);
      // Rows still under the retired key: the prune re-seals them before it proves the key unused.
      expect(await reg.pruneRetiredKeys(STAFF)).toEqual(["k-one"]);
      expect(await reg.kekUsage()).toEqual({ [newId]: 2 });
      expect(await db.get("SELECT state FROM kek_states WHERE kek_id = 'k-one'")).toEqual({ state: "pruned" });
      // A pruned key is never the newest again.
      const back = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k-one", key: randomBytes(32) }]), now: clock.now });
      expect(await refusal(back.retireOlderKeys(STAFF))).toMatchObject({ code: "key_retired" });
    });
  });

  it.each([
    [+20, 0, 0],
    [+20, 17, 45],
    [+20, 41, -30],
    [+20, 58, 10],
    [-20, 29, 25],
  ])("keeps verifying a keyfob %d ppm off for two years, used monthly (phase %ds, offset %ds)", async (ppm, phase, offset) => {
    clock.advance(phase);
    const secret = randomBytes(20);
    await reg.register([token("FK0100", secret)], FACTORY, "t");
    await reg.issue("FK0100", "cust-100", STAFF);
    const origin = clock.seconds;
    const fob = () => origin + offset + (clock.seconds - origin) * (1 + ppm * 1e-6);
    await reg.activate({ serial: "FK0100" }, oathtool(secret, fob()), CHANNEL);
    // Uses a month apart, give or take a week.
    const gaps = [30, 24, 37, 31, 28, 33, 23, 36, 30, 30, 26, 35, 31, 29, 32, 24, 37, 30, 31, 28, 34, 27, 30, 31];
    for (const days of gaps) {
      clock.advance(days * 86400 + 3917);
      const a = await reg.verify("cust-100", oathtool(secret, fob()), CHANNEL);
      expect(a.state).toBe("active");
    }
    const s = await reg.status("FK0100");
    // ~730 days at 20 ppm is ~21 minutes: the learned drift follows it.
    const expected = Math.round((offset + (ppm * 1e-6 * (clock.seconds - origin))) / 60);
    expect(Math.abs(s.drift - expected)).toBeLessThanOrEqual(1);
    expect(Math.abs(expected)).toBeGreaterThanOrEqual(19);
    expect(s.failCount).toBe(0);
  });
});
