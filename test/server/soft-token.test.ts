/**
 * The software token's bank side (issue 15; SOFT-DESIGN.md) through the real
 * HTTP API on SQLite and PostgreSQL, with the protocol client
 * host/soft/client.ts as the customer's side and the app: issuance in two
 * steps, one token per customer, supersede, set-up deriving the same seed on
 * both sides (codes checked with oathtool, an implementation we did not
 * write), wrong passwords voiding, expiry, single-use tickets, the next-day
 * rule on an injected clock, a second bank that cannot finish a set-up, and
 * the keyfob lifecycle (activate, replay, lock, unlock, deactivate) on a soft
 * token.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import * as opaque from "@serenity-kit/opaque";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createApiKey } from "../../host/registry/api-keys.js";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { OPAQUE_SETUP_SECRET } from "../../host/registry/soft-tokens.js";
import { startServer } from "../../host/server/serve.js";
import { KEY_STRETCHING, SoftSetupError, issueOnCustomerSide, setUp } from "../../host/soft/client.js";
import { smtpMailer } from "../../host/soft/mail.js";
import { startTestSmtp, type TestSmtp } from "../support/smtp.js";
import {
  SETUP_FINISH_PATH,
  SETUP_START_PATH,
  confirmTag,
  fromB64u,
  issuePath,
  opaqueIdentifiers,
  randomNonce,
  registrationPath,
  setupBase,
  softSerial,
  stepAt,
  toB64u,
  totpFromKey,
  type SetupTranscript,
} from "../../host/soft/protocol.js";
import { ENGINES, RFC_SEED_SHA1, TestClock, freshDb, oathtool } from "../registry/support.js";
import { call } from "./support.js";
import { base32 } from "../support/seed-forms.js";

/** 2027-01-15 12:00:10 JST (03:00:10 UTC), 10 s into a step. */
const START = Date.UTC(2027, 0, 15, 3, 0, 10);
const SERVICE_ID = "10112235";
const BANK = "ふぉぶ信用金庫";
const PASSWORD = "Correct-horse9";
const ADMIN = { name: "staff:admin", source: "cli" };

describe.each(ENGINES)("software token over the API on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  let clock: TestClock;
  let server: Awaited<ReturnType<typeof startServer>>;
  let base: string;
  let smtp: TestSmtp;
  const key: Record<"factory" | "staff" | "channel", string> = { factory: "", staff: "", channel: "" };
  const extra: (() => Promise<void>)[] = [];
  /** What the mailer throws next instead of sending (one per issuance). */
  let mailThrows: unknown[] = [];

  beforeEach(async () => {
    ({ db, drop } = await freshDb(engine));
    clock = new TestClock(START);
    smtp = await startTestSmtp();
    const smtpMail = smtpMailer({ smtpUrl: smtp.url, from: "otp@bank.example.jp", timeoutMs: 5_000 });
    mailThrows = [];
    const mailer = { send: async (m: Parameters<typeof smtpMail.send>[0]) => (mailThrows.length ? Promise.reject(mailThrows.shift()) : smtpMail.send(m)) };
    server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", now: clock.now, mailer });
    base = server.url;
    for (const role of ["factory", "staff", "channel"] as const) key[role] = (await createApiKey(db, role, "test " + role)).key;
    await server.registry.soft.configure({ serviceId: SERVICE_ID, bankName: BANK, appUrl: "https://bank.example.jp/app/" }, ADMIN);
  });
  afterEach(async () => {
    for (const f of extra.splice(0)) await f();
    await server.close();
    await smtp.close();
    await drop();
  });

  const issue = (customer: string, password = PASSWORD, mail = "taro@example.jp") => issueOnCustomerSide({ bankUrl: base, apiKey: key.channel, customer, mail, password });
  const registration = async (customer: string) => (await call(base, "GET", `/v1/customers/${customer}/registration`, { key: key.channel })).body;
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e) => e as SoftSetupError);
  const codeAt = (seed: Uint8Array, seconds = clock.seconds) => oathtool(Buffer.from(seed), seconds, { algorithm: "SHA256", digits: 8, period: 60 });
  const registerKeyfob = (serial: string, seed = RFC_SEED_SHA1) =>
    call(base, "POST", "/v1/tokens", { key: key.factory, body: { serial, algorithm: "SHA1", digits: 8, period: 60, t0: 0, seed: seed.toString("hex") } });
  const row = (serial: string) => db.get<{ state: string; setup_at: number | null; fail_count: number; seed_index: unknown; kind: string }>("SELECT state, setup_at, fail_count, seed_index, kind FROM tokens WHERE serial = ?", [serial]);

  it("issues in two steps: user ID with a check digit, status 発行済 not set up, the mail handed the IDs, nothing secret in the audit", async () => {
    expect(await registration("c1")).toMatchObject({ status: "not_registered", label: "未登録", kind: null, otpRequired: false });
    const r = await issue("c1");
    expect(r).toMatchObject({ serviceId: SERVICE_ID, state: "issued", setUp: false, setupFrom: null, mailSent: true });
    expect(r.userId).toMatch(/^[0-9]{12}$/);
    expect(new Date(r.setupBefore).getTime()).toBe(START + 7 * 86_400_000);
    expect(await registration("c1")).toMatchObject({ status: "issued", label: "発行済", kind: "soft", setUp: false, otpRequired: false, userId: r.userId, serviceId: SERVICE_ID });
    // The mail, as the SMTP server received it: the two IDs, the app's URL and the expiry in Japan time; no password.
    const mail = await smtp.waitFor(1);
    expect(mail.to).toEqual(["taro@example.jp"]);
    expect(mail.parsed.subject).toBe(`【${BANK}】トークン発行のご案内`);
    for (const s of [SERVICE_ID, r.userId, "https://bank.example.jp/app/", "2027年1月22日 12:00"]) expect(mail.parsed.text).toContain(s);
    expect(mail.raw.toString("utf8") + mail.parsed.text).not.toContain(PASSWORD);
    const audit = (await call(base, "GET", "/v1/audit?customer=c1", { key: key.staff })).body.records;
    expect(audit.map((a: { action: string; outcome: string }) => `${a.action}:${a.outcome}`)).toEqual(["soft-issue:ok", "mail:ok"]);
    expect(JSON.stringify(audit)).toContain("t***@example.jp");
    expect(JSON.stringify(audit)).not.toContain("taro@");
    expect(JSON.stringify(audit)).not.toContain(PASSWORD);
    const status = (await call(base, "GET", `/v1/tokens/${softSerial(r.userId)}`, { key: key.staff })).body;
    expect(status).toMatchObject({ kind: "soft", setUp: false, state: "issued", algorithm: "SHA256", digits: 8, period: 60, manufacturer: "fobkit", model: "soft" });
    // Step 1 alone writes nothing: an abandoned registration leaves no row and no audit.
    const before = await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM tokens");
    await opaque.ready;
    const request = opaque.client.startRegistration({ password: PASSWORD }).registrationRequest;
    expect((await call(base, "POST", registrationPath("c2"), { key: key.channel, body: { registrationRequest: request } })).status).toBe(200);
    // Not an OPAQUE registration request (not a ristretto255 element): 400, named.
    expect(await call(base, "POST", registrationPath("c2"), { key: key.channel, body: { registrationRequest: toB64u(new Uint8Array(32).fill(0xff)) } })).toMatchObject({ status: 400, body: { error: { code: "bad_registration_request" } } });
    expect(await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM tokens")).toEqual(before);
  });

  it("the OpenAPI document describes the soft-token routes from the route table: public set-up, refusal codes, 404 and 503", async () => {
    const doc = (await call(base, "GET", "/openapi.json")).body;
    const start = doc.paths[SETUP_START_PATH].post;
    expect(start.security).toEqual([]);
    expect(start.responses["404"].description).toContain("unknown_user");
    expect(start.responses["409"].description).toMatch(/voided.*setup_expired.*setup_not_yet/);
    expect(start.responses["503"].description).toContain("not_configured");
    const finish = doc.paths[SETUP_FINISH_PATH].post;
    expect(finish.responses["409"].description).toMatch(/wrong_password.*ticket_expired/);
    const issueOp = doc.paths["/v1/customers/{customer}/soft-tokens"].post;
    expect(issueOp.security).toEqual([{ apiKey: [] }]);
    expect(issueOp.responses["409"].description).toContain("customer_has_token");
    expect(doc.paths["/v1/customers/{customer}/registration"].get.responses["200"].content["application/json"].schema.properties.status.enum).toEqual(["not_registered", "issued", "in_use", "locked"]);
  });

  it("refuses bad input clearly and changes nothing; refuses before soft-config with 503 not_configured", async () => {
    const r1 = await call(base, "POST", registrationPath("c1"), { key: key.channel, body: { registrationRequest: "not base64!" } });
    expect(r1).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
    const r2 = await call(base, "POST", issuePath("c1"), { key: key.channel, body: { mail: "no-at-sign", ticket: "k1.AAAA", registrationRecord: toB64u(randomBytes(192)) } });
    expect(r2).toMatchObject({ status: 400 });
    const forged = await call(base, "POST", issuePath("c1"), { key: key.channel, body: { mail: "a@example.jp", ticket: "k1." + toB64u(randomBytes(80)), registrationRecord: toB64u(randomBytes(192)) } });
    expect(forged).toMatchObject({ status: 409, body: { error: { code: "ticket_expired" } } });
    // The app's routes need no key; a user ID with a wrong check digit is 400 bad_user_id, an unknown one 404.
    await opaque.ready;
    const ke1 = opaque.client.startLogin({ password: "any-guess-1" }).startLoginRequest;
    const start = (userId: string, serviceId = SERVICE_ID, startLoginRequest = ke1) => call(base, "POST", SETUP_START_PATH, { body: { serviceId, userId, startLoginRequest, clientNonce: toB64u(randomNonce()) } });
    expect(await start("123456789012")).toMatchObject({ status: 400, body: { error: { code: "bad_user_id" } } });
    expect(await start("123456789018")).toMatchObject({ status: 404, body: { error: { code: "unknown_user" } } });
    // A malformed KE1 is 400 before any user ID is looked up (review R5: the same answer for live and missing IDs).
    expect(await start("123456789018", SERVICE_ID, toB64u(new Uint8Array(96).fill(0xff)))).toMatchObject({ status: 400, body: { error: { code: "bad_start_login_request" } } });
    const r = await issue("c1");
    // Another deployment's service ID: the same answer as an unknown user.
    expect(await start(r.userId, "99999999")).toMatchObject({ status: 404, body: { error: { code: "unknown_user" } } });
    expect((await call(base, "POST", SETUP_START_PATH, { raw: JSON.stringify({ serviceId: SERVICE_ID, userId: r.userId, startLoginRequest: "A".repeat(9000), clientNonce: "x" }) })).status).toBe(413);
    expect((await row(softSerial(r.userId)))?.fail_count).toBe(0);
    // Unconfigured bank: 503 not_configured, no row.
    const other = await freshDb(engine);
    const bare = await startServer({ db: other.db, keys: KeyRing.fromKeys([{ id: "k2", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
    try {
      const channel = (await createApiKey(other.db, "channel")).key;
      const e = await failure(issueOnCustomerSide({ bankUrl: bare.url, apiKey: channel, customer: "c1", mail: "a@example.jp", password: PASSWORD }));
      expect(e).toMatchObject({ code: "not_configured", status: 503 });
    } finally {
      await bare.close();
      await other.drop();
    }
  });

  it("one token per customer: no soft token while a keyfob is live, no keyfob while a soft token is live", async () => {
    expect((await registerKeyfob("FK0001")).status).toBe(201);
    expect((await call(base, "POST", "/v1/tokens/FK0001/issue", { key: key.staff, body: { customer: "c1" } })).status).toBe(200);
    const e = await failure(issue("c1"));
    expect(e).toMatchObject({ code: "customer_has_token", status: 409, detail: { heldSerial: "FK0001", heldKind: "keyfob" } });
    // Step 1 already refuses (before the customer's side computes a record), and audits it.
    await opaque.ready;
    const early = await call(base, "POST", registrationPath("c1"), { key: key.channel, body: { registrationRequest: opaque.client.startRegistration({ password: PASSWORD }).registrationRequest } });
    expect(early).toMatchObject({ status: 409, body: { error: { code: "customer_has_token" } } });
    // Step 2 refuses too when the keyfob came between the steps.
    const req = await call(base, "POST", registrationPath("c2"), { key: key.channel, body: { registrationRequest: opaque.client.startRegistration({ password: PASSWORD }).registrationRequest } });
    expect(req.status).toBe(200);
    expect((await registerKeyfob("FK0002", randomBytes(20))).status).toBe(201);
    expect((await call(base, "POST", "/v1/tokens/FK0002/issue", { key: key.staff, body: { customer: "c2" } })).status).toBe(200);
    const late = await call(base, "POST", issuePath("c2"), { key: key.channel, body: { mail: "b@example.jp", ticket: req.body.ticket, registrationRecord: toB64u(randomBytes(192)) } });
    expect(late).toMatchObject({ status: 409, body: { error: { code: "customer_has_token" } } });
    // A live soft token refuses a keyfob.
    const r = await issue("c3");
    expect((await registerKeyfob("FK0003", randomBytes(20))).status).toBe(201);
    expect(await call(base, "POST", "/v1/tokens/FK0003/issue", { key: key.staff, body: { customer: "c3" } })).toMatchObject({ status: 409, body: { error: { code: "customer_has_token", detail: { heldSerial: softSerial(r.userId) } } } });
    // A soft row is never issued again as a keyfob would be.
    expect(await call(base, "POST", `/v1/tokens/${softSerial(r.userId)}/issue`, { key: key.staff, body: { customer: "c4" } })).toMatchObject({ status: 409, body: { error: { code: "not_keyfob" } } });
  });

  it("a new issuance supersedes a soft token never used (forgotten password); the old user ID is void", async () => {
    const first = await issue("c1", "Forgotten-1");
    const second = await issue("c1");
    expect(second.userId).not.toBe(first.userId);
    expect((await row(softSerial(first.userId)))?.state).toBe("retired");
    const audit = (await call(base, "GET", "/v1/audit?customer=c1", { key: key.staff })).body.records.map((a: { action: string; serial: string }) => `${a.action}:${a.serial}`);
    expect(audit).toContain(`supersede:${softSerial(first.userId)}`);
    expect(await failure(setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: first.userId, password: "Forgotten-1", seed: "bytes" }))).toMatchObject({ code: "voided" });
    const done = await setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: second.userId, password: PASSWORD, seed: "bytes" });
    expect(done.params.userId).toBe(second.userId);
    // Set up but not yet in use: still superseded by a new issuance (the set-up answer may have been lost).
    const third = await issue("c1");
    expect((await row(softSerial(second.userId)))?.state).toBe("retired");
    // In use: refused.
    const s3 = await setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: third.userId, password: PASSWORD, seed: "bytes" });
    expect((await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, body: { code: codeAt(s3.seedBytes!) } })).status).toBe(200);
    expect(await failure(issue("c1"))).toMatchObject({ code: "customer_has_token" });
  });

  it("set-up derives the same seed on both sides: the app's code (its key, and oathtool on its bytes) activates; replay, 5 wrong lock, unlock, deactivate", async () => {
    const r = await issue("c1");
    const app = await setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: r.userId, password: PASSWORD, seed: "key" });
    expect(app.params).toEqual({ bank: BANK, serviceId: SERVICE_ID, userId: r.userId, algorithm: "SHA256", digits: 8, period: 60, t0: 0 });
    expect(app.seedBytes).toBeUndefined();
    expect(await registration("c1")).toMatchObject({ status: "issued", setUp: true, otpRequired: false });
    const serial = softSerial(r.userId);
    const stored = await row(serial);
    expect(stored).toMatchObject({ state: "issued", fail_count: 0 });
    expect(stored?.setup_at).toBe(START);
    expect(stored?.seed_index).not.toBeNull();
    // Activation window ±1 for a soft token (a keyfob gets ±15): a code 3 steps ahead is wrong.
    const ahead = await totpFromKey(app.seedKey!, stepAt(clock.ms).step + 3);
    expect(await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, body: { code: ahead } })).toMatchObject({ status: 409, body: { error: { code: "wrong_code" } } });
    const code = await totpFromKey(app.seedKey!, stepAt(clock.ms).step);
    expect(await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, body: { code } })).toMatchObject({ status: 200, body: { state: "active", serial } });
    expect(await registration("c1")).toMatchObject({ status: "in_use", label: "利用中", otpRequired: true });
    expect(await call(base, "POST", "/v1/customers/c1/verify", { key: key.channel, body: { code } })).toMatchObject({ status: 409, body: { error: { code: "replayed" } } });
    clock.advance(60);
    for (let i = 1; i <= 5; i++) {
      expect(await call(base, "POST", "/v1/customers/c1/verify", { key: key.channel, body: { code: "00000000" } })).toMatchObject({ status: 409, body: { error: { code: "wrong_code", detail: { failures: i } } } });
    }
    expect(await registration("c1")).toMatchObject({ status: "locked", label: "停止中", otpRequired: true });
    expect(await call(base, "POST", "/v1/customers/c1/unlock", { key: key.staff })).toMatchObject({ status: 200, body: { state: "active", kind: "soft" } });
    clock.advance(60);
    expect(await call(base, "POST", "/v1/customers/c1/verify", { key: key.channel, body: { code: await totpFromKey(app.seedKey!, stepAt(clock.ms).step) } })).toMatchObject({ status: 200 });
    clock.advance(60);
    expect(await call(base, "POST", "/v1/customers/c1/deactivate", { key: key.channel, body: { code: await totpFromKey(app.seedKey!, stepAt(clock.ms).step) } })).toMatchObject({ status: 200, body: { state: "retired" } });
    expect(await registration("c1")).toMatchObject({ status: "not_registered", otpRequired: false });
    // Resync is a keyfob's.
    expect(await call(base, "POST", `/v1/tokens/${serial}/resync`, { key: key.staff, body: { codes: ["00000000", "11111111"] } })).toMatchObject({ status: 409, body: { error: { code: "not_keyfob" } } });
  });

  it("the seed as bytes gives oathtool's codes (RFC 6238, SHA-256, 8 digits, 60 s); a user ID sets up once", async () => {
    const r = await issue("c1");
    const app = await setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: r.userId, password: PASSWORD, seed: "bytes" });
    expect(app.seedBytes).toHaveLength(32);
    // Set up, not yet in use: a second set-up (another phone, or someone who learned the password) is refused and changes nothing.
    expect(await failure(setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: r.userId, password: PASSWORD, seed: "bytes" }))).toMatchObject({ code: "already_set_up", status: 409 });
    expect(await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, body: { code: codeAt(app.seedBytes!) } })).toMatchObject({ status: 200 });
    expect(await failure(setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: r.userId, password: PASSWORD, seed: "bytes" }))).toMatchObject({ code: "already_set_up", status: 409 });
  });

  it("activation before set-up is refused not_set_up, and no record is ever tried as a seed", async () => {
    await issue("c1");
    expect(await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, body: { code: "12345678" } })).toMatchObject({ status: 409, body: { error: { code: "not_set_up" } } });
  });

  it("five wrong passwords void the issuance: each start counts before it answers, the 6th start answers voided", async () => {
    const r = await issue("c1");
    for (let i = 1; i <= 5; i++) {
      const e = await failure(setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: r.userId, password: `Wrong-pass${i}`, seed: "bytes" }));
      expect(e).toMatchObject({ code: "wrong_password_local", detail: { attemptsLeft: 5 - i } });
    }
    expect((await row(softSerial(r.userId)))).toMatchObject({ state: "issued", fail_count: 5 });
    expect(await failure(setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: r.userId, password: PASSWORD, seed: "bytes" }))).toMatchObject({ code: "voided", status: 409 });
    expect((await row(softSerial(r.userId)))?.state).toBe("retired");
    expect(await registration("c1")).toMatchObject({ status: "not_registered" });
    const audit = (await call(base, "GET", `/v1/audit?serial=${softSerial(r.userId)}`, { key: key.staff })).body.records.map((a: { action: string; outcome: string }) => `${a.action}:${a.outcome}`);
    expect(audit).toEqual(["soft-issue:ok", "mail:ok", ...Array(5).fill("setup_start:ok"), "setup_start:voided", "void:ok"]);
    // The customer issues again and sets up.
    const again = await issue("c1");
    expect((await setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: again.userId, password: PASSWORD, seed: "bytes" })).params.userId).toBe(again.userId);
  });

  it("set-up's audit records carry the app's X-Request-Id, as every API request's do", async () => {
    const r = await issue("c9");
    let n = 0;
    const tagged = ((input: string, init?: RequestInit) =>
      fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), "x-request-id": `app-test.${++n}` } })) as unknown as Parameters<typeof setUp>[0]["fetch"];
    await setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: r.userId, password: PASSWORD, seed: "bytes", fetch: tagged });
    const recs = await db.all<{ action: string; request_id: string | null }>("SELECT action, request_id FROM audit WHERE serial = ? AND action LIKE 'setup%' ORDER BY id", [softSerial(r.userId)]);
    expect(recs).toEqual([
      { action: "setup_start", request_id: "app-test.1" },
      { action: "setup", request_id: "app-test.2" },
    ]);
  });

  it("an issuance expires after 7 days unless set up (void, setup_expired)", async () => {
    const r = await issue("c1");
    clock.advance(7 * 86_400 - 1);
    const e = await failure(setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: r.userId, password: "Wrong-pass1", seed: "bytes" }));
    expect(e?.code).toBe("wrong_password_local");
    clock.advance(1);
    expect(await failure(setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: r.userId, password: PASSWORD, seed: "bytes" }))).toMatchObject({ code: "setup_expired" });
    expect((await row(softSerial(r.userId)))?.state).toBe("retired");
    expect(await failure(setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: r.userId, password: PASSWORD, seed: "bytes" }))).toMatchObject({ code: "voided" });
  });

  /** The app's two steps by hand, to replay and reorder them. */
  async function rawStart(userId: string, password = PASSWORD) {
    await opaque.ready;
    const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
    const clientNonce = randomNonce();
    const res = await call(base, "POST", SETUP_START_PATH, { body: { serviceId: SERVICE_ID, userId, startLoginRequest, clientNonce: toB64u(clientNonce) } });
    expect(res.status).toBe(200);
    const fin = opaque.client.finishLogin({ clientLoginState, loginResponse: res.body.loginResponse, password, identifiers: opaqueIdentifiers(SERVICE_ID, userId), keyStretching: KEY_STRETCHING })!;
    const t: SetupTranscript = { serviceId: SERVICE_ID, userId, startLoginRequest, loginResponse: res.body.loginResponse, finishLoginRequest: fin.finishLoginRequest, clientNonce, serverNonce: fromB64u(res.body.serverNonce)! };
    const b = await setupBase(fromB64u(fin.sessionKey)!, t);
    const body = { serviceId: SERVICE_ID, userId, ticket: res.body.ticket, finishLoginRequest: fin.finishLoginRequest, clientConfirm: toB64u(await confirmTag(b, t, "client")) };
    return { body, finish: (over: Partial<typeof body> = {}) => call(base, "POST", SETUP_FINISH_PATH, { body: { ...body, ...over } }) };
  }

  it("tickets: only the latest start can finish, a finish is single use, a wrong confirmation is wrong_password, a ticket expires in 5 minutes", async () => {
    const r = await issue("c1");
    const a = await rawStart(r.userId);
    const b = await rawStart(r.userId);
    expect(await a.finish()).toMatchObject({ status: 409, body: { error: { code: "ticket_expired" } } });
    // A wrong MAC (a client that did not derive the keys) fails and kills the ticket.
    expect(await b.finish({ clientConfirm: toB64u(randomBytes(32)) })).toMatchObject({ status: 409, body: { error: { code: "wrong_password" } } });
    expect(await b.finish()).toMatchObject({ status: 409, body: { error: { code: "ticket_expired" } } });
    // Another user's ticket does not open for this one.
    const r2 = await issue("c2");
    const other = await rawStart(r2.userId);
    const c = await rawStart(r.userId);
    expect(await c.finish({ ticket: other.body.ticket })).toMatchObject({ status: 409, body: { error: { code: "ticket_expired" } } });
    const d = await rawStart(r.userId);
    clock.advance(5 * 60);
    expect(await d.finish()).toMatchObject({ status: 409, body: { error: { code: "ticket_expired" } } });
    clock.advance(-1);
    const e = await rawStart(r.userId);
    const ok = await e.finish();
    expect(ok).toMatchObject({ status: 200, body: { params: expect.any(String), serverConfirm: expect.any(String) } });
    expect(await e.finish()).toMatchObject({ status: 409, body: { error: { code: "already_set_up" } } });
    // Six starts in all, but set up: the count is reset.
    expect((await row(softSerial(r.userId)))?.fail_count).toBe(0);
  });

  it("next-day rule: deactivated at 23:59 JST, a new issuance sets up not at 23:59:30, but from 00:00 JST", async () => {
    const first = await issue("c1");
    const app = await setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: first.userId, password: PASSWORD, seed: "bytes" });
    clock.ms = Date.UTC(2027, 0, 15, 14, 59, 0); // 23:59:00 JST
    expect((await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, body: { code: codeAt(app.seedBytes!) } })).status).toBe(200);
    clock.advance(10);
    expect((await call(base, "POST", "/v1/customers/c1/deactivate", { key: key.channel, body: { code: codeAt(app.seedBytes!, clock.seconds + 60) } })).status).toBe(200);
    clock.advance(5); // 23:59:15
    const next = await issue("c1");
    const midnight = Date.UTC(2027, 0, 15, 15, 0, 0);
    expect(next.setupFrom).toBe(new Date(midnight).toISOString());
    expect((await smtp.waitFor(2)).parsed.text).toContain("2027年1月16日 00:00");
    clock.ms = Date.UTC(2027, 0, 15, 14, 59, 30);
    const e = await failure(setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: next.userId, password: PASSWORD, seed: "bytes" }));
    expect(e).toMatchObject({ code: "setup_not_yet", detail: { setupFrom: new Date(midnight).toISOString() } });
    expect((await row(softSerial(next.userId)))?.fail_count).toBe(0); // not a guess
    clock.ms = midnight;
    expect((await setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: next.userId, password: PASSWORD, seed: "bytes" })).params.userId).toBe(next.userId);
    // An issuance the day after the deactivation has no such limit.
    expect((await issue("c1")).setupFrom).toBeNull();
  });

  it("a second bank (own database and OPAQUE setup, same service ID, the same user ID registered with another password) cannot complete a set-up", async () => {
    const r = await issue("c1");
    const other = await freshDb(engine);
    const otherKeys = KeyRing.fromKeys([{ id: "b1", key: randomBytes(32) }]);
    const b = await startServer({ db: other.db, keys: otherKeys, listen: "127.0.0.1:0", now: clock.now });
    extra.push(async () => {
      await b.close();
      await other.drop();
    });
    await b.registry.soft.configure({ serviceId: SERVICE_ID, bankName: "偽銀行", appUrl: "https://evil.example/app/" }, ADMIN);
    // Bank B registers the same user ID, with a password it chose, under its own OPAQUE setup.
    await opaque.ready;
    const sealed = (await other.db.get<{ kek_id: string; sealed: Uint8Array }>("SELECT kek_id, sealed FROM registry_secrets WHERE name = ?", [OPAQUE_SETUP_SECRET]))!;
    const serverSetup = otherKeys.openSecret(OPAQUE_SETUP_SECRET, { kekId: sealed.kek_id, blob: Buffer.from(sealed.sealed) }).toString("utf8");
    const reg = opaque.client.startRegistration({ password: "Impostor-99" });
    const { registrationResponse } = opaque.server.createRegistrationResponse({ serverSetup, userIdentifier: softSerial(r.userId), registrationRequest: reg.registrationRequest });
    const { registrationRecord } = opaque.client.finishRegistration({ clientRegistrationState: reg.clientRegistrationState, registrationResponse, password: "Impostor-99", identifiers: opaqueIdentifiers(SERVICE_ID, r.userId), keyStretching: KEY_STRETCHING });
    const ticket = otherKeys.sealTicket("fobkit-soft-ticket", "c1", Buffer.from(JSON.stringify({ customer: "c1", userId: r.userId, exp: clock.ms + 60_000 })));
    await b.registry.soft.issue("c1", { mail: "taro@example.jp", ticket, registrationRecord }, ADMIN);
    // The customer's app, pointed at bank B, with the customer's password: fails on the phone, no finish sent.
    const seen: string[] = [];
    const spy = (url: string, init: { method: string; headers: Record<string, string>; body?: string }) => {
      seen.push(new URL(url).pathname);
      return fetch(url, init);
    };
    const e = await failure(setUp({ bankUrl: b.url, serviceId: SERVICE_ID, userId: r.userId, password: PASSWORD, seed: "bytes", fetch: spy }));
    expect(e).toMatchObject({ code: "wrong_password_local" });
    expect(seen).toEqual([SETUP_START_PATH]);
    const stored = await other.db.get<{ setup_at: number | null; seed_index: unknown }>("SELECT setup_at, seed_index FROM tokens WHERE serial = ?", [softSerial(r.userId)]);
    expect(stored).toEqual({ setup_at: null, seed_index: null });
    const actions = (await b.registry.auditTrail({ serial: softSerial(r.userId) })).map((a) => a.action);
    expect(actions).not.toContain("setup");
    // And bank A's record does not let bank B's password in either: the real bank is still awaiting its customer.
    expect((await row(softSerial(r.userId)))?.setup_at).toBeNull();
    expect((await setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: r.userId, password: PASSWORD, seed: "bytes" })).params.bank).toBe(BANK);
  });

  it("a mail that cannot be sent leaves the issuance standing: mailSent false, audit mail failed", async () => {
    smtp.refuse(true);
    const r = await issueOnCustomerSide({ bankUrl: base, apiKey: key.channel, customer: "c1", mail: "taro@example.jp", password: PASSWORD });
    expect(r).toMatchObject({ state: "issued", mailSent: false });
    expect(await registration("c1")).toMatchObject({ status: "issued", userId: r.userId });
    const audit = (await call(base, "GET", "/v1/audit?customer=c1", { key: key.staff })).body.records;
    expect(audit.at(-1)).toMatchObject({ action: "mail", outcome: "failed", detail: { mail: "t***@example.jp" } });
  });
  it("a mailer that throws something other than an Error (a string, an object, null) is handled as an Error: issuance stands, audited failed with a kind that quotes nothing", async () => {
    const address = "hanako.secret@example.jp";
    const thrown: [unknown, string][] = [
      [`550 mailbox ${address} unavailable`, "non_error_string"],
      [{ message: `rejected ${address}`, code: `BAD ${address}` }, "non_error_object"],
      [null, "non_error_null"],
      [undefined, "non_error_undefined"],
      [Object.assign(new Error(`to ${address}: refused`), { code: "EENVELOPE" }), "EENVELOPE"],
      [Object.assign(new TypeError(`to ${address}`), { code: { address } }), "TypeError"],
    ];
    const logged: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => (logged.push(String(chunk)), (write as any).call(process.stderr, chunk, ...rest))) as typeof write;
    try {
      for (const [i, [value, kind]] of thrown.entries()) {
        mailThrows.push(value);
        const r = await issueOnCustomerSide({ bankUrl: base, apiKey: key.channel, customer: `cm${i}`, mail: address, password: PASSWORD });
        expect(r, String(kind)).toMatchObject({ state: "issued", mailSent: false });
        const audit = (await call(base, "GET", `/v1/audit?customer=cm${i}`, { key: key.staff })).body.records;
        expect(audit.at(-1), kind).toMatchObject({ action: "mail", outcome: "failed", detail: { error: kind, mail: "h***@example.jp" } });
      }
    } finally {
      process.stderr.write = write;
    }
    for (const [, kind] of thrown) expect(logged.join(""), kind).toMatch(new RegExp(`issuance mail for SW\\d+ failed: ${kind}\\b`));
    expect(logged.join("")).not.toContain("hanako");
    expect(JSON.stringify(await server.registry.auditTrail())).not.toContain("hanako");
  });
  it("the seed and the activation password appear nowhere on the bank's side: database, audit, mail, HTTP bodies (raw, hex, base32, base64)", async () => {
    const bodies: Buffer[] = [];
    const spy = async (url: string, init: { method: string; headers: Record<string, string>; body?: string }) => {
      if (init.body) bodies.push(Buffer.from(init.body));
      const res = await fetch(url, init);
      const text = await res.text();
      bodies.push(Buffer.from(text));
      return { status: res.status, text: async () => text };
    };
    const r = await issueOnCustomerSide({ bankUrl: base, apiKey: key.channel, customer: "c1", mail: "taro@example.jp", password: PASSWORD, fetch: spy });
    const app = await setUp({ bankUrl: base, serviceId: SERVICE_ID, userId: r.userId, password: PASSWORD, seed: "bytes", fetch: spy });
    const seed = Buffer.from(app.seedBytes!);
    expect((await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, body: { code: codeAt(seed) } })).status).toBe(200);
    const blobs: { name: string; data: Buffer }[] = [{ name: "HTTP bodies", data: Buffer.concat(bodies) }, { name: "mail", data: (await smtp.waitFor(1)).raw }];
    for (const table of ["tokens", "audit", "settings", "registry_secrets", "schema_migrations"]) {
      const rows = await db.all<Record<string, unknown>>(`SELECT * FROM ${table}`);
      const parts = rows.flatMap((row) => Object.values(row).map((v) => (v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(String(v)))));
      blobs.push({ name: `table ${table}`, data: Buffer.concat(parts) });
    }
    if (engine.name === "sqlite") {
      const file = (db as unknown as { path?: string }).path ?? db.description.replace(/^sqlite:/, "");
      expect(existsSync(file), file).toBe(true);
      for (const f of [file, file + "-wal"]) if (existsSync(f)) blobs.push({ name: f, data: readFileSync(f) });
    }
    const forms = [seed, Buffer.from(seed.toString("hex")), Buffer.from(seed.toString("hex").toUpperCase()), Buffer.from(base32(seed)), Buffer.from(seed.toString("base64").replace(/=+$/, "")), Buffer.from(seed.toString("base64url"))];
    const pw = [Buffer.from(PASSWORD), Buffer.from(Buffer.from(PASSWORD).toString("hex")), Buffer.from(Buffer.from(PASSWORD).toString("base64").replace(/=+$/, ""))];
    expect(blobs.length).toBeGreaterThan(6);
    for (const b of blobs) {
      expect(b.data.length, b.name).toBeGreaterThan(0);
      for (const f of forms) expect(b.data.includes(f), `a seed form in ${b.name}`).toBe(false);
      for (const f of pw) expect(b.data.includes(f), `the password in ${b.name}`).toBe(false);
    }
  });
});

