/**
 * Attack review of the software token (issue 15), findings that FAIL on the
 * code as reviewed (branch soft-review, merge of soft-app and soft-bank at
 * 0c6d3c4). Each test names the finding of the review report it guards.
 *
 * R1 (anonymous audit writes): POST /app/v1/setup/finish is public. With a
 *    forged ticket and any user ID whose check digit is right (one try in
 *    ten), it writes an audit row (setup/ticket_expired) for a serial that
 *    does not exist: every anonymous request is a database write (SQLite's
 *    one writer lock, the audit table's growth). It should answer without
 *    writing, as unknown_user does on the start route.
 * R2 (next-day rule in zones whose clocks jump at midnight): startOfNextDay
 *    returns 23:00 of the SAME day in America/Havana, America/Santiago,
 *    America/Asuncion (DST begins at 00:00 there), so a customer who
 *    deactivated at 20:00 can set up again at 23:00 that day. soft-config
 *    accepts any IANA zone.
 * R3 (key file read per anonymous request): a set-up ticket names its key
 *    id; KeyRing.openTicket -> find() re-reads the key file from disk
 *    (refresh(true), readFileSync) for an id it does not hold. Anyone can
 *    send "<random id>.<anything>" to /app/v1/setup/finish: one synchronous
 *    file read of the bank's key file per request, past the ring's 1 s
 *    re-check throttle.
 * R5 (free existence probe): /app/v1/setup/start with a malformed KE1
 *    answers 404 unknown_user for a user ID that does not exist but 400
 *    bad_start_login_request for one awaiting set-up, and for the latter
 *    the decision throws inside the row transaction: no guess counted, no
 *    audit row. Anyone can test user IDs for live issuances without cost
 *    or trace (then void them with 5 starts each). The KE1 should be
 *    checked before the row is looked up, so both answer alike.
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { startOfNextDay } from "../../host/registry/soft-tokens.js";
import { startServer } from "../../host/server/serve.js";
import { SoftSetupError, finishCustomerRegistration, setUp, startCustomerRegistration } from "../../host/soft/client.js";
import { SETUP_FINISH_PATH, dammDigit, stepAt, totpFromKey } from "../../host/soft/protocol.js";
import { ENGINES, TestClock, freshDb } from "../registry/support.js";
import { call } from "../server/support.js";

const ADMIN = { name: "staff:admin", source: "cli" };
const CHANNEL = { name: "channel:review", source: "10.0.0.9" };
const PASSWORD = "Correct-horse9";
const SERVICE_ID = "10112235";

/** The calendar date (YYYY-MM-DD) of instant `ms` in `tz`. */
const dateIn = (ms: number, tz: string) => new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date(ms));

describe.each(ENGINES)("review R1: the public set-up finish on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  let server: Awaited<ReturnType<typeof startServer>>;

  beforeEach(async () => {
    ({ db, drop } = await freshDb(engine));
    server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
    await server.registry.soft.configure({ serviceId: SERVICE_ID, bankName: "ふぉぶ信用金庫", appUrl: "https://bank.example.jp/app/" }, ADMIN);
  });
  afterEach(async () => {
    await server.close();
    await drop();
  });

  it("review-R1: forged tickets for user IDs that do not exist write nothing (an anonymous request is not a database write)", async () => {
    const audits = async () => Number((await db.get<{ n: number }>("SELECT count(*) AS n FROM audit"))!.n);
    const before = await audits();
    const answers = [];
    for (let i = 0; i < 20; i++) {
      const body11 = String(10_000_000_000 + i * 7919).slice(0, 11);
      const userId = body11 + String(dammDigit(body11));
      const forged = { serviceId: SERVICE_ID, userId, ticket: "k1." + randomBytes(300).toString("base64url"), finishLoginRequest: randomBytes(64).toString("base64url"), clientConfirm: randomBytes(32).toString("base64url") };
      answers.push((await call(server.url, "POST", SETUP_FINISH_PATH, { body: forged })).status);
    }
    // Refused, of course...
    expect(answers.every((s) => s >= 400 && s < 500)).toBe(true);
    // ...but no row exists for any of these serials, and nothing should have been written.
    expect(await db.get("SELECT 1 AS x FROM tokens WHERE kind = 'soft'")).toBeUndefined();
    expect(await audits()).toBe(before);
  });
});

describe("review R2: the next-day rule where the clocks jump at midnight", () => {
  it("review-R2: startOfNextDay is on a later calendar day, and its previous millisecond is not (Havana, Santiago, Asuncion spring-forward days)", () => {
    const cases: [string, number][] = [
      // 2026-03-07 20:00 in Havana (CST, UTC-5); on 2026-03-08 the clock goes 00:00 -> 01:00 (CDT).
      ["America/Havana", Date.UTC(2026, 2, 8, 1, 0, 0)],
      // 2026-09-05 20:00 in Santiago (UTC-4); that night 24:00 -> 01:00 (UTC-3).
      ["America/Santiago", Date.UTC(2026, 8, 6, 0, 0, 0)],
      // Tokyo, no DST: the control case, passes today.
      ["Asia/Tokyo", Date.UTC(2026, 2, 7, 11, 0, 0)],
    ];
    for (const [tz, deactivatedAt] of cases) {
      const next = startOfNextDay(deactivatedAt, tz);
      expect(dateIn(next, tz) > dateIn(deactivatedAt, tz), `${tz}: ${new Date(next).toISOString()} is ${dateIn(next, tz)}, the deactivation's day`).toBe(true);
      expect(dateIn(next - 1, tz), tz).toBe(dateIn(deactivatedAt, tz));
    }
  });

  it("review-R2: a bank in America/Havana: deactivated at 20:00, the new issuance does not set up at 23:30 the same day", async () => {
    const { db, drop } = await freshDb(ENGINES[0]);
    // 2026-03-07 19:59:10 in Havana (UTC-5).
    const clock = new TestClock(Date.UTC(2026, 2, 8, 0, 59, 10));
    const server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", now: clock.now });
    const registry = server.registry;
    const issue = async (customer: string) => {
      const { clientRegistrationState, request } = await startCustomerRegistration(PASSWORD);
      const response = await registry.soft.startIssuance(customer, request.registrationRequest, CHANNEL);
      await registry.soft.issue(customer, await finishCustomerRegistration(clientRegistrationState, PASSWORD, response, "taro@example.jp"), CHANNEL);
      return response.userId;
    };
    try {
      await registry.soft.configure({ serviceId: SERVICE_ID, bankName: "Banco", appUrl: "https://bank.example/app/", timeZone: "America/Havana" }, ADMIN);
      const first = await issue("c1");
      const app = await setUp({ bankUrl: server.url, serviceId: SERVICE_ID, userId: first, password: PASSWORD, seed: "key" });
      await registry.activate({ customer: "c1" }, await totpFromKey(app.seedKey!, stepAt(clock.ms).step), CHANNEL);
      clock.advance(60);
      const offAt = clock.ms;
      await registry.deactivate("c1", await totpFromKey(app.seedKey!, stepAt(clock.ms).step), CHANNEL);
      const second = await issue("c1");
      clock.ms = Date.UTC(2026, 2, 8, 4, 30, 0); // 23:30 in Havana, the same calendar day
      expect(dateIn(clock.ms, "America/Havana")).toBe(dateIn(offAt, "America/Havana"));
      const refused = await setUp({ bankUrl: server.url, serviceId: SERVICE_ID, userId: second, password: PASSWORD, seed: "key" }).then(
        () => undefined,
        (e) => e as SoftSetupError,
      );
      expect(refused?.code, "set-up on the day of the deactivation (利用解除を行った翌日以降 only)").toBe("setup_not_yet");
    } finally {
      await server.close();
      await drop();
    }
  });
});

/**
 * Guards the review found sound (kept so a change cannot quietly break them):
 * starts from two registries at once (two pools: two server processes)
 * never answer more than SETUP_TRIES KE2s, and two finishes of one ticket
 * from two processes set up once.
 */
describe.each(ENGINES)("review guards: guesses and set-ups under concurrency on $name", (engine) => {
  it("review-G1: 12 starts at once from two processes answer at most 5 KE2s; then voided", async () => {
    const opaque = await import("@serenity-kit/opaque");
    const { openMigrated } = await import("../../host/registry/open-database.js");
    const { Registry } = await import("../../host/registry/registry.js");
    const { randomNonce, toB64u } = await import("../../host/soft/protocol.js");
    const { db, url, drop } = await freshDb(engine);
    const other = await openMigrated(url);
    const keys = KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]);
    try {
      const a = new Registry(db, { keys });
      const b = new Registry(other, { keys });
      await a.soft.configure({ serviceId: SERVICE_ID, bankName: "B", appUrl: "https://bank.example/app/" }, ADMIN);
      const { clientRegistrationState, request } = await startCustomerRegistration(PASSWORD);
      const response = await a.soft.startIssuance("c1", request.registrationRequest, CHANNEL);
      await a.soft.issue("c1", await finishCustomerRegistration(clientRegistrationState, PASSWORD, response, "t@example.jp"), CHANNEL);
      await opaque.ready;
      const starts = Array.from({ length: 12 }, (_, i) => {
        const { startLoginRequest } = opaque.client.startLogin({ password: "wrong-" + i + "-guess" });
        return (i % 2 ? b : a).soft.setupStart({ serviceId: SERVICE_ID, userId: response.userId, startLoginRequest, clientNonce: toB64u(randomNonce()) }, { name: "app", source: "10.9.9.9" });
      });
      const results = await Promise.allSettled(starts);
      const answered = results.filter((r) => r.status === "fulfilled").length;
      expect(answered).toBe(5);
      for (const r of results) if (r.status === "rejected") expect((r.reason as { code: string }).code).toBe("voided");
      const row = await db.get<{ state: string; fail_count: number }>("SELECT state, fail_count FROM tokens WHERE kind = 'soft'");
      expect(row).toEqual({ state: "retired", fail_count: 5 });
    } finally {
      await other.close();
      await drop();
    }
  });
});

describe.each(ENGINES)("review guards: the registration ticket on $name", (engine) => {
  it("review-G2: a registration ticket issues once, for its customer, within 10 minutes (replay, another customer, expiry)", async () => {
    const { Registry } = await import("../../host/registry/registry.js");
    const { db, drop } = await freshDb(engine);
    const clock = new TestClock(Date.UTC(2027, 0, 15, 3, 0, 10));
    try {
      const registry = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), now: clock.now });
      await registry.soft.configure({ serviceId: SERVICE_ID, bankName: "B", appUrl: "https://bank.example/app/" }, ADMIN);
      const prepare = async (customer: string) => {
        const { clientRegistrationState, request } = await startCustomerRegistration(PASSWORD);
        const response = await registry.soft.startIssuance(customer, request.registrationRequest, CHANNEL);
        return finishCustomerRegistration(clientRegistrationState, PASSWORD, response, "t@example.jp");
      };
      const code = (p: Promise<unknown>) => p.then(() => "ok", (e) => (e as { code: string }).code);
      const c1 = await prepare("c1");
      // Another customer's ticket (sealed for c1) issues nothing for c2.
      expect(await code(registry.soft.issue("c2", c1, CHANNEL))).toBe("ticket_expired");
      expect(await code(registry.soft.issue("c1", c1, CHANNEL))).toBe("ok");
      // Replayed (even with another record): refused, the first token stays live, no second row.
      const again = { ...c1, registrationRecord: (await prepare("c1")).registrationRecord };
      expect(await code(registry.soft.issue("c1", again, CHANNEL))).toBe("ticket_used");
      expect(await db.all("SELECT serial, state FROM tokens WHERE customer = 'c1'")).toHaveLength(1);
      expect((await db.get<{ state: string }>("SELECT state FROM tokens WHERE customer = 'c1'"))?.state).toBe("issued");
      // Expired after 10 minutes.
      const late = await prepare("c3");
      clock.advance(10 * 60);
      expect(await code(registry.soft.issue("c3", late, CHANNEL))).toBe("ticket_expired");
      expect(await db.get("SELECT 1 AS x FROM tokens WHERE customer = 'c3'")).toBeUndefined();
    } finally {
      await drop();
    }
  });
});

describe("review R3: tickets under an unknown key id", () => {
  it("review-R3: opening a ticket with an unknown key id does not re-read the key file (the 1 s throttle holds)", async () => {
    const { mkdtempSync, writeFileSync, readFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { formatKeyFile } = await import("../../host/registry/key-ring.js");
    const dir = mkdtempSync(join(tmpdir(), "fobkit-review-"));
    const path = join(dir, "keys");
    const first = { id: "k1", key: randomBytes(32) };
    writeFileSync(path, formatKeyFile([first]), { mode: 0o600 });
    const ring = KeyRing.fromFile(path, { recheckMs: 3_600_000 });
    expect(ring.ids).toEqual(["k1"]);
    // The file changes on disk (as a rotation by another process would); the ring may see it within its throttle only.
    writeFileSync(path, formatKeyFile([{ id: "k2", key: randomBytes(32) }, first]), { mode: 0o600 });
    expect(readFileSync(path, "utf8")).toContain("k2 ");
    // An anonymous caller's forged ticket under a made-up key id:
    expect(ring.openTicket("fobkit-setup-ticket", "SW100000000009", "made-up-id." + randomBytes(64).toString("base64url"))).toBeUndefined();
    // Nothing but the forged ticket happened, yet the ring has read the file again.
    expect(ring.ids, "the key file was read from disk for an anonymous request's made-up key id").toEqual(["k1"]);
  });
});

describe.each(ENGINES)("review R5: probing user IDs with a malformed KE1 on $name", (engine) => {
  it("review-R5: a malformed KE1 answers alike for an awaiting user ID and an unknown one", async () => {
    const { SETUP_START_PATH, randomNonce, toB64u } = await import("../../host/soft/protocol.js");
    const { db, drop } = await freshDb(engine);
    const server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
    try {
      await server.registry.soft.configure({ serviceId: SERVICE_ID, bankName: "B", appUrl: "https://bank.example/app/" }, ADMIN);
      const { clientRegistrationState, request } = await startCustomerRegistration(PASSWORD);
      const response = await server.registry.soft.startIssuance("c1", request.registrationRequest, CHANNEL);
      await server.registry.soft.issue("c1", await finishCustomerRegistration(clientRegistrationState, PASSWORD, response, "t@example.jp"), CHANNEL);
      const body11 = response.userId.startsWith("9") ? "10000000000" : "90000000000";
      const unknown = body11 + String(dammDigit(body11));
      const probe = async (userId: string) => {
        const r = await call(server.url, "POST", SETUP_START_PATH, { body: { serviceId: SERVICE_ID, userId, startLoginRequest: toB64u(new Uint8Array(96).fill(0xff)), clientNonce: toB64u(randomNonce()) } });
        return { status: r.status, code: (r.body as { error?: { code?: string } }).error?.code };
      };
      const live = await probe(response.userId);
      const none = await probe(unknown);
      expect(live, "an awaiting user ID is told apart from an unknown one without a guess counted").toEqual(none);
    } finally {
      await server.close();
      await drop();
    }
  });
});
