/**
 * Issue 14 item 2: round trips to PostgreSQL per verification. Every query
 * pg sends goes through pg.Client.prototype.query (pool.query and a pooled
 * client's query alike: node-postgres lib/pool.js `query` calls
 * `client.query`), so counting calls there counts round trips, whatever the
 * registry's code does (BEGIN and COMMIT included). pg_stat_statements would
 * need a server restart (shared_preload_libraries), which this shared
 * server must never have.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { Registry } from "../../host/registry/registry.js";
import { RegistryError } from "../../host/registry/types.js";
import { ENGINES, RFC_SEED_SHA1, TestClock, freshDb, oathtool } from "./support.js";
import { backendPid, connectInSchema, waitQueuedBehind } from "../support/pg-locks.js";

const STAFF = { name: "staff:alice", source: "cli" };
const CHANNEL = { name: "channel:key-0001", source: "10.0.0.7" };
const START = 1_800_000_000_000 + 10_000;
const postgres = ENGINES.find((e) => e.name === "postgres")!;

/** Counts the queries pg sends while `fn` runs. */
let counting = false;
let queries: string[] = [];
const original = pg.Client.prototype.query;

async function roundTrips(fn: () => Promise<unknown>): Promise<{ n: number; texts: string[] }> {
  queries = [];
  counting = true;
  try {
    await fn().catch((e) => {
      if (!(e instanceof RegistryError)) throw e;
    });
  } finally {
    counting = false;
  }
  return { n: queries.length, texts: queries };
}

describe("round trips per verification on PostgreSQL", () => {
  let db: Database;
  let url: string;
  let drop: () => Promise<void>;
  let clock: TestClock;
  let reg: Registry;

  beforeAll(() => {
    pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
      if (counting) queries.push(String(typeof args[0] === "string" ? args[0] : (args[0] as { text?: string })?.text).slice(0, 60));
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof original;
  });
  afterAll(() => {
    pg.Client.prototype.query = original;
  });
  beforeEach(async () => {
    ({ db, url, drop } = await freshDb(postgres));
    clock = new TestClock(START);
    reg = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k-one", key: randomBytes(32) }]), now: clock.now });
    await reg.register([{ serial: "RT1", manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: RFC_SEED_SHA1 }], STAFF, "test");
    await reg.issue("RT1", "cust-rt", STAFF);
  });
  afterEach(async () => {
    await drop();
  });

  it("activate, verify, a wrong code, a replay and deactivate each take one round trip for a token the process holds", async () => {
    const activate = await roundTrips(() => reg.activate({ customer: "cust-rt" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL));
    expect(activate.n, activate.texts.join(" | ")).toBe(1);
    clock.advance(60);
    const code = oathtool(RFC_SEED_SHA1, clock.seconds);
    const verify = await roundTrips(() => reg.verify("cust-rt", code, CHANNEL));
    expect(verify.n, verify.texts.join(" | ")).toBe(1);
    const replay = await roundTrips(() => reg.verify("cust-rt", code, CHANNEL));
    expect(replay.n, replay.texts.join(" | ")).toBe(1);
    const wrong = await roundTrips(() => reg.verify("cust-rt", code === "12345678" ? "12345679" : "12345678", CHANNEL));
    expect(wrong.n, wrong.texts.join(" | ")).toBe(1);
    clock.advance(60);
    const deactivate = await roundTrips(() => reg.deactivate("cust-rt", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL));
    expect(deactivate.n, deactivate.texts.join(" | ")).toBe(1);
    expect((await reg.statusOfCustomer("cust-rt").catch((e) => e)).code).toBe("no_token");
    // Each decision left exactly one audit record, and the counts are right.
    const audit = (await reg.auditTrail({ serial: "RT1" })).map((r) => `${r.action}:${r.outcome}`);
    expect(audit.slice(-5)).toEqual(["activate:ok", "verify:ok", "verify:replayed", "verify:wrong_code", "deactivate:ok"]);
  });

  it("a token this process has not read yet costs two (read, then the one statement), and one from then on", async () => {
    await reg.activate({ customer: "cust-rt" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL);
    clock.advance(60);
    // Another server process: a registry of its own, on its own pool.
    const other = new Registry(db, { keys: reg.keys, now: clock.now });
    const first = await roundTrips(() => other.verify("cust-rt", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL));
    expect(first.n, first.texts.join(" | ")).toBeLessThanOrEqual(2);
    clock.advance(60);
    const second = await roundTrips(() => other.verify("cust-rt", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL));
    expect(second.n, second.texts.join(" | ")).toBe(1);
    // The first registry's copy is stale now: its one statement finds the row changed, and it decides again on what that statement returned.
    clock.advance(60);
    const stale = await roundTrips(() => reg.verify("cust-rt", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL));
    expect(stale.n, stale.texts.join(" | ")).toBeLessThanOrEqual(2);
    const audit = (await reg.auditTrail({ serial: "RT1" })).filter((r) => r.action === "verify").map((r) => r.outcome);
    expect(audit).toEqual(["ok", "ok", "ok"]);
  });

  it("decisions made at once share one statement: sixteen customers verifying together cost fewer round trips than verifications, each decided and audited once", async () => {
    const seeds: Buffer[] = [];
    for (let i = 0; i < 16; i++) {
      const seed = randomBytes(20);
      seeds.push(seed);
      await reg.register([{ serial: `RB${i}`, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: seed }], STAFF, "test");
      await reg.issue(`RB${i}`, `cust-b${i}`, STAFF);
      await reg.activate({ serial: `RB${i}` }, oathtool(seed, clock.seconds), CHANNEL);
    }
    clock.advance(60);
    const codes = seeds.map((seed) => oathtool(seed, clock.seconds));
    // Each right code twice (one accepted, one replayed) and one wrong code each, all at once.
    const results: string[] = [];
    const together = await roundTrips(() =>
      Promise.all(
        seeds.flatMap((_, i) =>
          [codes[i], codes[i], codes[i] === "12345678" ? "12345679" : "12345678"].map((code) =>
            reg.verify(`cust-b${i}`, code, CHANNEL).then(
              () => results.push("ok"),
              (e: RegistryError) => results.push(e.code),
            ),
          ),
        ),
      ),
    );
    expect(together.n, together.texts.join(" | ")).toBeLessThan(16);
    expect(results.filter((r) => r === "ok")).toHaveLength(16);
    expect(results.filter((r) => r === "replayed")).toHaveLength(16);
    expect(results.filter((r) => r === "wrong_code")).toHaveLength(16);
    for (let i = 0; i < 16; i++) {
      const outcomes = (await reg.auditTrail({ serial: `RB${i}` })).filter((r) => r.action === "verify").map((r) => r.outcome).sort();
      expect(outcomes).toEqual(["ok", "replayed", "wrong_code"]);
    }
  });

  it("one batch of accepted, replayed, wrong and locking decisions on serials, actors and request IDs full of quotes, backslashes, commas, parentheses and braces: each decided once, audited once, every field as it was sent", async () => {
    // The batch reaches PostgreSQL as one text parameter per list (rows of a row type inside an array): a character
    // either level of quoting mishandles would move a value into the next field, or fail the whole batch.
    const serials = [`Q"1`, "Q\\2", "Q,3)", "Q(4}", "Q{5\\\"", "Q'6;"];
    const actor = { name: `channel:key "a", \\(b){c}`, source: "10.0.0.7", request: `req "x",\\ (y) {z}` };
    const seeds: Buffer[] = [];
    for (const [i, serial] of serials.entries()) {
      const seed = randomBytes(20);
      seeds.push(seed);
      await reg.register([{ serial, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: seed }], STAFF, "test");
      await reg.issue(serial, `cust.q${i}`, STAFF);
      await reg.activate({ serial }, oathtool(seed, clock.seconds), CHANNEL); // held by this process: its decisions go to the batch statement
    }
    clock.advance(60);
    const wrong = (seed: Buffer) => (oathtool(seed, clock.seconds) === "12345678" ? "12345679" : "12345678");
    const results = new Map<string, string[]>(serials.map((s) => [s, []]));
    const verify = (i: number, code: string) =>
      reg.verify(`cust.q${i}`, code, actor).then(
        () => results.get(serials[i])!.push("ok"),
        (e: RegistryError) => results.get(serials[i])!.push(e.code),
      );
    const together = await roundTrips(() =>
      Promise.all([
        // Tokens 0-4: the right code twice (one accepted, one replayed) and one wrong code.
        ...serials.slice(0, 5).flatMap((_, i) => [verify(i, oathtool(seeds[i], clock.seconds)), verify(i, oathtool(seeds[i], clock.seconds)), verify(i, wrong(seeds[i]))]),
        // Token 5: seven wrong codes at once, two past the lock at five.
        ...Array.from({ length: 7 }, () => verify(5, wrong(seeds[5]))),
      ]),
    );
    expect(together.n, together.texts.join(" | ")).toBeLessThan(22);
    for (const serial of serials.slice(0, 5)) expect([serial, ...results.get(serial)!.sort()]).toEqual([serial, "ok", "replayed", "wrong_code"]);
    expect(results.get(serials[5])!.filter((r) => r === "wrong_code")).toHaveLength(5);
    expect((await reg.status(serials[5])).state).toBe("locked");
    for (const [i, serial] of serials.entries()) {
      const records = (await reg.auditTrail({ serial })).filter((r) => r.actor === actor.name);
      // Token 5: five wrong codes, the lock they made, and the two refused as locked: one record per decision.
      expect(records.length, serial).toBe(i < 5 ? 3 : 8);
      for (const r of records) expect({ serial: r.serial, customer: r.customer, actor: r.actor, source: r.source, requestId: r.requestId }).toEqual({ serial, customer: `cust.q${i}`, actor: actor.name, source: actor.source, requestId: actor.request });
      const outcomes = records.map((r) => `${r.action} ${r.outcome}`).sort();
      expect(outcomes).toEqual(i < 5 ? ["verify ok", "verify replayed", "verify wrong_code"] : ["lock ok", ...Array(2).fill("verify locked"), ...Array(5).fill("verify wrong_code")]);
    }
  });

  it("a decision whose batch cannot be built is refused to its caller, not left waiting (and no other decision is held up)", async () => {
    await reg.activate({ customer: "cust-rt" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL); // the process now holds the row: decisions go to the batch statement
    // An audit detail JSON cannot write (a BigInt) makes building the batch's arrays throw.
    const bad = reg.store.decide({ serial: "RT1" }, STAFF, () => ({ audit: [{ action: "probe", outcome: "ok", serial: "RT1", detail: { n: 1n } as never }], outcome: 1 }));
    const settled = await Promise.race([
      bad.then(() => "resolved", (e: Error) => `rejected: ${e.message}`),
      new Promise((r) => setTimeout(() => r("left waiting"), 10_000)),
    ]);
    expect(settled).toMatch(/^rejected: .*BigInt/);
    // The store still decides.
    expect((await reg.status("RT1")).state).toBe("active");
    await expect(reg.verify("cust-rt", "00000000", CHANNEL)).rejects.toMatchObject({ code: "wrong_code" });
    expect((await reg.auditTrail({ serial: "RT1" })).map((r) => r.action)).not.toContain("probe");
  }, 30_000);

  it("a decision waiting for another transaction's row lock does not hold up other customers' verifications", async () => {
    await reg.activate({ customer: "cust-rt" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL);
    const seed = randomBytes(20);
    await reg.register([{ serial: "RT3", manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: seed }], STAFF, "test");
    await reg.issue("RT3", "cust-rt3", STAFF);
    await reg.activate({ customer: "cust-rt3" }, oathtool(seed, clock.seconds), CHANNEL);
    clock.advance(60);
    // Another session holds RT1's row, as a staff action's transaction does.
    const holder = await connectInSchema(url);
    const watcher = await connectInSchema(url);
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT serial FROM tokens WHERE serial = 'RT1' FOR UPDATE");
      const blocked = reg.verify("cust-rt", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL);
      let blockedDone = false;
      void blocked.then(() => (blockedDone = true), () => (blockedDone = true));
      // Its statement is out and waiting for the row (decisions made in the same turn would share it, and wait with it).
      await waitQueuedBehind(watcher, await backendPid(holder), 1, "the verification never waited for the locked row");
      // Until RT1's row is released, other customers are still answered; a bound against a hang only.
      const other = await Promise.race([
        reg.verify("cust-rt3", oathtool(seed, clock.seconds), CHANNEL).then(() => "verified"),
        new Promise((r) => setTimeout(() => r("held up behind the locked row"), 10_000)),
      ]);
      expect(other).toBe("verified");
      expect(blockedDone).toBe(false);
      await holder.query("COMMIT");
      await blocked;
    } finally {
      await holder.end();
      await watcher.end();
    }
    expect((await reg.auditTrail({ serial: "RT1" })).filter((r) => r.action === "verify").map((r) => r.outcome)).toEqual(["ok"]);
    expect((await reg.auditTrail({ serial: "RT3" })).filter((r) => r.action === "verify").map((r) => r.outcome)).toEqual(["ok"]);
  }, 30_000);
});
