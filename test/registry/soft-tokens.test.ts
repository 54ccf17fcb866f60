/**
 * The software token in the registry and its store, on SQLite and
 * PostgreSQL: key rotation while a token awaits its set-up (the sealed
 * OPAQUE record is re-sealed, never indexed or opened as a seed), one token
 * per customer under concurrent issuances from two registries (two pools:
 * as two server processes), keyfob-only actions refused on soft rows, and
 * the bank's calendar (startOfNextDay).
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { openMigrated } from "../../host/registry/open-database.js";
import { Registry } from "../../host/registry/registry.js";
import { OPAQUE_SETUP_SECRET, startOfNextDay } from "../../host/registry/soft-tokens.js";
import { RegistryError } from "../../host/registry/types.js";
import { startServer } from "../../host/server/serve.js";
import { finishCustomerRegistration, setUp, startCustomerRegistration } from "../../host/soft/client.js";
import { SETUP_START_PATH, randomNonce, softSerial, stepAt, toB64u, totpFromKey } from "../../host/soft/protocol.js";
import * as opaque from "@serenity-kit/opaque";
import { ENGINES, TestClock, freshDb } from "./support.js";

const ADMIN = { name: "staff:admin", source: "cli" };
const CHANNEL = { name: "channel:test", source: "10.0.0.7" };
const PASSWORD = "Correct-horse9";
const START = Date.UTC(2027, 0, 15, 3, 0, 10);
const CONFIG = { serviceId: "10112235", bankName: "ふぉぶ信用金庫", appUrl: "https://bank.example.jp/app/" };

/** Both issuance steps on the registry, the customer's side in process. */
async function softIssue(registry: Registry, customer: string, password = PASSWORD) {
  const { clientRegistrationState, request } = await startCustomerRegistration(password);
  const response = await registry.soft.startIssuance(customer, request.registrationRequest, CHANNEL);
  const req = await finishCustomerRegistration(clientRegistrationState, password, response, "taro@example.jp");
  return { userId: response.userId, issue: () => registry.soft.issue(customer, req, CHANNEL) };
}

describe.each(ENGINES)("software tokens in the registry on $name", (engine) => {
  let db: Database;
  let url: string;
  let drop: () => Promise<void>;
  let clock: TestClock;
  let keys: KeyRing;
  let server: Awaited<ReturnType<typeof startServer>>;
  let registry: Registry;

  beforeEach(async () => {
    ({ db, url, drop } = await freshDb(engine));
    clock = new TestClock(START);
    keys = KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]);
    server = await startServer({ db, keys, listen: "127.0.0.1:0", now: clock.now });
    registry = server.registry;
    await registry.soft.configure(CONFIG, ADMIN);
  });
  afterEach(async () => {
    await server.close();
    await drop();
  });

  it("an issuance past its set-up deadline is reported expired (発行済, 有効期限切れ), not as usable; a new issuance replaces it", async () => {
    await registry.soft.configure({ issuanceDays: 1 }, ADMIN);
    const a = await softIssue(registry, "c1");
    await a.issue();
    expect(await registry.soft.registration("c1")).toMatchObject({ status: "issued", label: "発行済", setUp: false, expired: false, otpRequired: false });
    clock.advance(86_400 - 1);
    expect((await registry.soft.registration("c1")).expired).toBe(false);
    clock.advance(1); // setup_before reached: the set-up would be refused setup_expired
    const r = await registry.soft.registration("c1");
    expect(r).toMatchObject({ status: "issued", setUp: false, expired: true, otpRequired: false, userId: a.userId });
    expect(r.label).toContain("有効期限切れ");
    // What the flag tells the channel is true: the set-up is refused, and the customer can be issued again.
    await expect(setUp({ bankUrl: server.url, serviceId: CONFIG.serviceId, userId: a.userId, password: PASSWORD, seed: "key" })).rejects.toMatchObject({ code: "setup_expired" });
    const b = await softIssue(registry, "c1");
    await b.issue();
    expect(await registry.soft.registration("c1")).toMatchObject({ status: "issued", expired: false, userId: b.userId });
  });

  it("key rotation while a soft token awaits set-up: the record is re-sealed, never indexed as a seed; then it sets up and its code verifies", async () => {
    const keyfobSeed = randomBytes(20);
    await registry.register([{ serial: "FK1", manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: keyfobSeed }], ADMIN, "test");
    const a = await softIssue(registry, "c1");
    await a.issue();
    const serial = softSerial(a.userId);
    // Rows from before the seed index (migration 3) are indexed by the rotation pass; an awaiting soft row must not be.
    await db.run("UPDATE tokens SET seed_index = NULL");
    const newest = keys.addNewestKey();
    await registry.retireOlderKeys(ADMIN);
    const r = await registry.resealAll(ADMIN);
    expect(r).toMatchObject({ kekId: newest, indexed: 1, duplicateSeeds: [] });
    expect(await registry.kekUsage()).toEqual({ [newest]: 2 });
    const row = await db.get<{ kek_id: string; seed_index: unknown; setup_at: unknown }>("SELECT kek_id, seed_index, setup_at FROM tokens WHERE serial = ?", [serial]);
    expect(row).toEqual({ kek_id: newest, seed_index: null, setup_at: null });
    expect((await db.get<{ kek_id: string }>("SELECT kek_id FROM registry_secrets WHERE name = ?", [OPAQUE_SETUP_SECRET]))?.kek_id).toBe(newest);
    expect(await registry.pruneRetiredKeys(ADMIN)).toEqual(["k1"]);
    keys.dropKeys(["k1"]);
    // A second pass finds nothing to do (the awaiting row is not picked up for indexing again and again).
    expect(await registry.resealAll(ADMIN)).toMatchObject({ resealed: 0, indexed: 0 });
    const app = await setUp({ bankUrl: server.url, serviceId: CONFIG.serviceId, userId: a.userId, password: PASSWORD, seed: "key" });
    const set = await db.get<{ kek_id: string; seed_index: unknown }>("SELECT kek_id, seed_index FROM tokens WHERE serial = ?", [serial]);
    expect(set?.kek_id).toBe(newest);
    expect(set?.seed_index).not.toBeNull();
    const code = await totpFromKey(app.seedKey!, stepAt(clock.ms).step);
    expect(await registry.activate({ customer: "c1" }, code, CHANNEL)).toMatchObject({ serial, state: "active" });
    clock.advance(60);
    expect(await registry.verify("c1", await totpFromKey(app.seedKey!, stepAt(clock.ms).step), CHANNEL)).toMatchObject({ serial });
  });

  it("a keyfob and a soft token issued to one customer at once, from two registries: exactly one wins, every time", async () => {
    const other = await openMigrated(url);
    try {
      const second = new Registry(other, { keys, now: clock.now });
      const customers = Array.from({ length: 8 }, (_, i) => `race-${i}`);
      const prepared = [];
      for (const [i, c] of customers.entries()) {
        await registry.register([{ serial: `FK${i}`, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: randomBytes(20) }], ADMIN, "test");
        prepared.push({ c, i, soft: await softIssue(second, c) });
      }
      const outcomes = await Promise.all(
        prepared.map(async ({ c, i, soft }) => {
          const [fob, sw] = await Promise.allSettled([registry.issue(`FK${i}`, c, ADMIN), soft.issue()]);
          return { c, fob, sw };
        }),
      );
      for (const { c, fob, sw } of outcomes) {
        expect([fob.status, sw.status].filter((s) => s === "fulfilled"), c).toHaveLength(1);
        const lost = fob.status === "rejected" ? fob.reason : (sw as PromiseRejectedResult).reason;
        expect(lost).toBeInstanceOf(RegistryError);
        expect((lost as RegistryError).code).toBe("customer_has_token");
        const live = await db.all("SELECT serial FROM tokens WHERE customer = ? AND state IN ('issued', 'active', 'locked')", [c]);
        expect(live).toHaveLength(1);
      }
    } finally {
      await other.close();
    }
  });

  it("soft issuances for one customer at once, from two registries: one live token in the end; each other one superseded or refused customer_has_token", async () => {
    const other = await openMigrated(url);
    try {
      const second = new Registry(other, { keys, now: clock.now });
      const tries = [];
      for (let i = 0; i < 6; i++) tries.push(await softIssue(i % 2 ? second : registry, "c1"));
      const results = await Promise.allSettled(tries.map((t) => t.issue()));
      const won = results.filter((r) => r.status === "fulfilled").length;
      for (const r of results) if (r.status === "rejected") expect((r.reason as RegistryError).code).toBe("customer_has_token");
      expect(won).toBeGreaterThanOrEqual(1);
      const live = await db.all<{ serial: string }>("SELECT serial FROM tokens WHERE customer = ? AND state IN ('issued', 'active', 'locked')", ["c1"]);
      expect(live).toHaveLength(1);
      const superseded = (await registry.auditTrail({ customer: "c1" })).filter((a) => a.action === "supersede");
      expect(superseded).toHaveLength(won - 1);
    } finally {
      await other.close();
    }
  });

  it.runIf(engine.name === "postgres")("soft issuances for one customer truly at once (all past their holder check before any commits): exactly one wins, the rest customer_has_token", async () => {
    const other = await openMigrated(url);
    try {
      const second = new Registry(other, { keys, now: clock.now });
      const tries = [];
      for (let i = 0; i < 6; i++) tries.push(await softIssue(i % 2 ? second : registry, "c1"));
      // A transaction holds an uncommitted live row for c1: every issuance reads no holder, then waits on the unique
      // index (tokens_one_per_customer) behind it. Once all six wait, it rolls back and they race for real.
      let results: PromiseSettledResult<unknown>[] = [];
      let waiting = 0;
      await db
        .tx(async (t) => {
          const me = Number((await t.get<{ pid: number }>("SELECT pg_backend_pid() AS pid"))!.pid);
          await t.run("INSERT INTO tokens (serial, manufacturer, algorithm, digits, period, t0, kek_id, seed, state, customer, origin, created_at, updated_at) VALUES ('BLOCK', 'x', 'SHA1', 8, 60, 0, ?, ?, 'issued', 'c1', 'test', 0, 0)", [keys.currentId, Buffer.alloc(40)]);
          const running = Promise.allSettled(tries.map((x) => x.issue()));
          for (let i = 0; i < 2000; i++) {
            const w = await db.get<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE ? = ANY(pg_blocking_pids(pid))", [me]);
            waiting = Number(w?.n);
            if (waiting >= tries.length) break;
            await new Promise((r) => setTimeout(r, 5));
          }
          // Rolled back, then the six go on.
          void running.then((r) => (results = r));
          throw new Error("rollback");
        })
        .catch((e) => {
          if ((e as Error).message !== "rollback") throw e;
        });
      expect(waiting).toBe(tries.length);
      for (let i = 0; i < 2000 && results.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(results.map((r) => (r.status === "fulfilled" ? "ok" : (r.reason as RegistryError).code)).sort()).toEqual(["customer_has_token", "customer_has_token", "customer_has_token", "customer_has_token", "customer_has_token", "ok"]);
      expect(await db.all("SELECT serial FROM tokens WHERE customer = ? AND state IN ('issued', 'active', 'locked')", ["c1"])).toHaveLength(1);
    } finally {
      await other.close();
    }
  });

  it("set-up starts at once through two servers on one database are each counted: attempts left 4..0 exactly once each, then voided", async () => {
    const a = await softIssue(registry, "c1");
    await a.issue();
    const other = await openMigrated(url);
    const b = await startServer({ db: other, keys, listen: "127.0.0.1:0", now: clock.now });
    try {
      await opaque.ready;
      const start = (base: string) =>
        fetch(base + SETUP_START_PATH, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ serviceId: CONFIG.serviceId, userId: a.userId, startLoginRequest: opaque.client.startLogin({ password: "Wrong-pass1" }).startLoginRequest, clientNonce: toB64u(randomNonce()) }),
        }).then((r) => r.json());
      const answers = await Promise.all([server.url, b.url, server.url, b.url, server.url].map(start));
      expect(answers.map((x) => x.attemptsLeft).sort()).toEqual([0, 1, 2, 3, 4]);
      expect((await db.get<{ fail_count: number }>("SELECT fail_count FROM tokens WHERE serial = ?", [softSerial(a.userId)]))?.fail_count).toBe(5);
      expect(await start(b.url)).toMatchObject({ error: { code: "voided" } });
      const audit = (await registry.auditTrail({ serial: softSerial(a.userId) })).map((x) => `${x.action}:${x.outcome}`);
      expect(audit.filter((x) => x === "setup_start:ok")).toHaveLength(5);
    } finally {
      await b.close();
      await other.close();
    }
  });

  it("keyfob-only actions on a soft row are refused not_keyfob; the factory may not register an SW serial", async () => {
    const a = await softIssue(registry, "c1");
    await a.issue();
    const serial = softSerial(a.userId);
    await expect(registry.resync(serial, ["12345678", "23456789"], ADMIN)).rejects.toMatchObject({ code: "not_keyfob" });
    await registry.withdraw("c1", "returned", ADMIN);
    await expect(registry.issue(serial, "c2", ADMIN)).rejects.toMatchObject({ code: "not_keyfob" });
    await expect(registry.register([{ serial: "SW123456789012", manufacturer: "x", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: randomBytes(20) }], ADMIN, "t")).rejects.toMatchObject({ code: "bad_serial" });
  });

  it("soft-config: the service ID never changes once set; bad values are refused and change nothing", async () => {
    await expect(registry.soft.configure({ serviceId: "99999999" }, ADMIN)).rejects.toMatchObject({ code: "service_id_set" });
    await expect(registry.soft.configure({ bankName: "x", timeZone: "Mars/Base" }, ADMIN)).rejects.toMatchObject({ code: "bad_time_zone" });
    expect(await registry.soft.config()).toMatchObject({ ...CONFIG, timeZone: "Asia/Tokyo", issuanceDays: 7 });
    await registry.soft.configure({ issuanceDays: 3 }, ADMIN);
    const a = await softIssue(registry, "c1");
    expect((await a.issue()).setupBeforeMs).toBe(START + 3 * 86_400_000);
  });
});

describe("the bank's calendar", () => {
  it("startOfNextDay: midnight after the instant, in the zone (JST has no DST; New York's spring-forward day)", () => {
    expect(new Date(startOfNextDay(Date.UTC(2027, 0, 15, 14, 59, 0), "Asia/Tokyo")).toISOString()).toBe("2027-01-15T15:00:00.000Z");
    expect(new Date(startOfNextDay(Date.UTC(2027, 0, 15, 15, 0, 0), "Asia/Tokyo")).toISOString()).toBe("2027-01-16T15:00:00.000Z");
    // 2027-03-14 is the US spring-forward day: midnight of the 15th is 04:00 UTC (EDT), of the 14th 05:00 UTC (EST).
    expect(new Date(startOfNextDay(Date.UTC(2027, 2, 14, 12, 0, 0), "America/New_York")).toISOString()).toBe("2027-03-15T04:00:00.000Z");
    expect(new Date(startOfNextDay(Date.UTC(2027, 2, 13, 12, 0, 0), "America/New_York")).toISOString()).toBe("2027-03-14T05:00:00.000Z");
  });

  it("startOfNextDay: the first instant of the next local date where the clocks jump at midnight or fall back (review R2)", () => {
    const at = (ms: number, tz: string) => new Date(startOfNextDay(ms, tz)).toISOString();
    // UTC and Tokyo: plain midnights, also from the day's last millisecond.
    expect(at(Date.UTC(2027, 0, 15, 23, 59, 59, 999), "UTC")).toBe("2027-01-16T00:00:00.000Z");
    expect(at(Date.UTC(2027, 0, 15, 0, 0, 0), "UTC")).toBe("2027-01-16T00:00:00.000Z");
    expect(at(Date.UTC(2027, 0, 15, 14, 59, 59, 999), "Asia/Tokyo")).toBe("2027-01-15T15:00:00.000Z");
    // Havana, 2026-03-08: 00:00 CST -> 01:00 CDT; the 8th begins at 01:00 CDT = 05:00 UTC (not 04:00, the 7th's 23:00).
    expect(at(Date.UTC(2026, 2, 8, 1, 0, 0), "America/Havana")).toBe("2026-03-08T05:00:00.000Z");
    // Santiago, 2026-09-06: 24:00 -04 -> 01:00 -03; the 6th begins at 04:00 UTC.
    expect(at(Date.UTC(2026, 8, 6, 0, 0, 0), "America/Santiago")).toBe("2026-09-06T04:00:00.000Z");
    // Havana falls back on 2026-11-01, 01:00 CDT -> 00:00 CST: midnight comes twice; the day begins at the first (04:00 UTC).
    expect(at(Date.UTC(2026, 10, 1, 0, 0, 0), "America/Havana")).toBe("2026-11-01T04:00:00.000Z");
    // Santiago falls back on 2026-04-05, 24:00 -03 -> 23:00 -04: the 4th's last hour comes twice; the 5th begins at 04:00 UTC.
    expect(at(Date.UTC(2026, 3, 4, 23, 0, 0), "America/Santiago")).toBe("2026-04-05T04:00:00.000Z");
    // Berlin's fall-back (03:00 -> 02:00) is not at midnight: the next day still begins at 00:00 CET.
    expect(at(Date.UTC(2026, 9, 25, 12, 0, 0), "Europe/Berlin")).toBe("2026-10-25T23:00:00.000Z");
  });
});
