/**
 * Request ids (app.ts X-Request-Id, migration 8's audit.request_id): every
 * audit record an API request writes holds its id, and an answer that
 * leaves the client unsure whether its change was made (503
 * outcome_unknown) names the id, so the audit says which it was.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createApiKey } from "../../host/registry/api-keys.js";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { openMigrated } from "../../host/registry/open-database.js";
import { startServer } from "../../host/server/serve.js";
import { ENGINES, RFC_SEED_SHA1, TestClock, freshDb, oathtool } from "../registry/support.js";
import { startPgCluster, type PgCluster } from "../support/pg-cluster.js";

const START = 1_800_000_000_000 + 10_000;
const CLI = { name: "staff:test", source: "cli" };

async function send(base: string, method: string, path: string, key: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, requestId: res.headers.get("x-request-id"), body: (await res.json()) as any };
}

async function serve(db: Database, clock: TestClock) {
  const server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", now: clock.now });
  await server.registry.registerOne({ serial: "RQ1", manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: RFC_SEED_SHA1 }, CLI, "test");
  await server.registry.issue("RQ1", "C1", CLI);
  await server.registry.activate({ customer: "C1" }, oathtool(RFC_SEED_SHA1, clock.seconds), CLI);
  clock.advance(60);
  return { server, channel: (await createApiKey(db, "channel")).key, staff: (await createApiKey(db, "staff")).key };
}

describe.each(ENGINES)("request ids on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  let clock: TestClock;
  let s: Awaited<ReturnType<typeof serve>>;

  beforeEach(async () => {
    ({ db, drop } = await freshDb(engine));
    clock = new TestClock(START);
    s = await serve(db, clock);
  });
  afterEach(async () => {
    await s.server.close();
    await drop();
  });

  it("keeps the client's X-Request-Id in the audit records its request wrote, answers with it, and finds them by it", async () => {
    const code = oathtool(RFC_SEED_SHA1, clock.seconds);
    const ok = await send(s.server.url, "POST", "/v1/customers/C1/verify", s.channel, { code }, { "x-request-id": "app-4711:verify.1" });
    expect(ok).toMatchObject({ status: 200, requestId: "app-4711:verify.1" });
    // A replay under another id: its own record, its own id.
    const again = await send(s.server.url, "POST", "/v1/customers/C1/verify", s.channel, { code }, { "x-request-id": "app-4711:verify.2" });
    expect(again).toMatchObject({ status: 409, requestId: "app-4711:verify.2", body: { error: { code: "replayed" } } });
    // The channel that sent it reconciles it (its own key's records only).
    const found = await send(s.server.url, "GET", "/v1/audit?customer=C1&request=app-4711:verify.1", s.channel);
    expect(found.status).toBe(200);
    expect(found.body.records.map((r: any) => [r.action, r.outcome, r.requestId])).toEqual([["verify", "ok", "app-4711:verify.1"]]);
    const all = (await s.server.registry.auditTrail({ customer: "C1" })).map((r) => [r.action, r.outcome, r.requestId]);
    // Records from the CLI carry none.
    expect(all).toEqual([
      ["issue", "ok", null],
      ["activate", "ok", null],
      ["verify", "ok", "app-4711:verify.1"],
      ["verify", "replayed", "app-4711:verify.2"],
    ]);
  });

  it("makes an id when the client sends none, and refuses a malformed one before doing anything", async () => {
    const wrong = await send(s.server.url, "POST", "/v1/customers/C1/verify", s.channel, { code: "00000000" });
    expect(wrong.status).toBe(409);
    expect(wrong.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect((await s.server.registry.auditTrail({ customer: "C1", request: wrong.requestId! })).map((r) => r.outcome)).toEqual(["wrong_code"]);
    const before = (await s.server.registry.auditTrail({ customer: "C1" })).length;
    for (const bad of ["has space", "x".repeat(65), "quote\"", "ünïcode"]) {
      const r = await send(s.server.url, "POST", "/v1/customers/C1/verify", s.channel, { code: oathtool(RFC_SEED_SHA1, clock.seconds) }, { "x-request-id": encodeURI(bad) === bad ? bad : bad.replace(/[^\x20-\x7e]/g, "?") });
      expect(r, bad).toMatchObject({ status: 400, body: { error: { code: "bad_request_id" } } });
    }
    expect((await s.server.registry.auditTrail({ customer: "C1" })).length).toBe(before);
    expect((await send(s.server.url, "GET", "/v1/audit?customer=C1&request=has%20space", s.staff)).status).toBe(400);
  });
  it("scopes a lookup by request id to the calling key: two keys that chose the same id see only their own records", async () => {
    const other = await createApiKey(db, "channel");
    const otherStaff = await createApiKey(db, "staff");
    // Key A's verification commits under id "same-1"; key B's, under the same id, is refused.
    const ok = await send(s.server.url, "POST", "/v1/customers/C1/verify", s.channel, { code: oathtool(RFC_SEED_SHA1, clock.seconds) }, { "x-request-id": "same-1" });
    expect(ok.status).toBe(200);
    const wrong = await send(s.server.url, "POST", "/v1/customers/C1/verify", other.key, { code: "00000000" }, { "x-request-id": "same-1" });
    expect(wrong).toMatchObject({ status: 409, body: { error: { code: "wrong_code" } } });
    const outcomes = async (key: string) => {
      const r = await send(s.server.url, "GET", "/v1/audit?customer=C1&request=same-1", key);
      expect(r.status).toBe(200);
      return r.body.records.map((x: any) => [x.actor, x.outcome]);
    };
    const channelA = `channel:${s.channel.split("_")[1]}`;
    expect(await outcomes(s.channel)).toEqual([[channelA, "ok"]]);
    expect(await outcomes(other.key)).toEqual([[`channel:${other.id}`, "wrong_code"]]);
    // A staff key is an API caller too: it wrote none of them.
    expect(await outcomes(otherStaff.key)).toEqual([]);
    // The staff CLI (the registry, no actor scope) sees both, each naming its key.
    expect((await s.server.registry.auditTrail({ customer: "C1", request: "same-1" })).map((r) => [r.actor, r.outcome])).toEqual([
      [channelA, "ok"],
      [`channel:${other.id}`, "wrong_code"],
    ]);
    // A channel key reads no more of the audit than its own requests' records.
    expect(await send(s.server.url, "GET", "/v1/audit?customer=C1", s.channel)).toMatchObject({ status: 403, body: { error: { code: "wrong_role" } } });
  });

  it("a staff key (a teller's authority, which reads the whole audit) looks up another key's request by naming the key; a channel key only its own", async () => {
    const other = await createApiKey(db, "channel");
    const ok = await send(s.server.url, "POST", "/v1/customers/C1/verify", s.channel, { code: oathtool(RFC_SEED_SHA1, clock.seconds) }, { "x-request-id": "asked-1" });
    expect(ok.status).toBe(200);
    const wrong = await send(s.server.url, "POST", "/v1/customers/C1/verify", other.key, { code: "00000000" }, { "x-request-id": "asked-1" });
    expect(wrong.status).toBe(409);
    const channelA = `channel:${s.channel.split("_")[1]}`;
    const lookup = (key: string, whose: string) => send(s.server.url, "GET", `/v1/audit?customer=C1&request=asked-1&actor=${encodeURIComponent(whose)}`, key);
    const named = await lookup(s.staff, channelA);
    expect(named.status, JSON.stringify(named.body)).toBe(200);
    expect(named.body.records.map((x: any) => [x.actor, x.outcome, x.requestId])).toEqual([[channelA, "ok", "asked-1"]]);
    expect((await lookup(s.staff, `channel:${other.id}`)).body.records.map((x: any) => [x.actor, x.outcome])).toEqual([[`channel:${other.id}`, "wrong_code"]]);
    // Unnamed, a staff key's lookup is its own key's, as before.
    expect((await send(s.server.url, "GET", "/v1/audit?customer=C1&request=asked-1", s.staff)).body.records).toEqual([]);
    // A channel key may name itself, never another key.
    expect((await lookup(s.channel, channelA)).body.records.map((x: any) => x.actor)).toEqual([channelA]);
    expect(await lookup(other.key, channelA)).toMatchObject({ status: 403, body: { error: { code: "wrong_role" } } });
    // actor without request is not a lookup.
    expect(await send(s.server.url, "GET", `/v1/audit?customer=C1&actor=${channelA}`, s.staff)).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
  });

  it("refuses a lookup by request id without a customer or serial (it would walk the whole audit) with 400 bad_request naming the rule", async () => {
    for (const key of [s.staff, s.channel]) {
      const r = await send(s.server.url, "GET", "/v1/audit?request=some-id", key);
      expect(r).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
      expect(r.body.error.message).toMatch(/request.*customer.*serial/);
    }
    await expect(s.server.registry.auditTrail({ request: "some-id" })).rejects.toMatchObject({ code: "bad_request" });
    expect((await send(s.server.url, "GET", "/v1/audit?serial=RQ1&request=some-id", s.staff)).status).toBe(200);
  });
});

describe("a verification whose connection is lost mid-statement (PostgreSQL, a cluster of the test's own)", () => {
  let cluster: PgCluster | undefined;
  let direct: pg.Pool;

  beforeAll(async () => {
    cluster = await startPgCluster();
    direct = new pg.Pool({ connectionString: cluster.url, max: 3 });
    direct.on("error", () => undefined);
  });
  afterAll(async () => {
    await direct?.end().catch(() => undefined);
    cluster?.stop();
  });

  it("answers 503 outcome_unknown naming the request, whose audit then tells that nothing was made", async () => {
    const clock = new TestClock(START);
    const db = await openMigrated(cluster!.url);
    const s = await serve(db, clock);
    const holder = await direct.connect();
    try {
      const code = oathtool(RFC_SEED_SHA1, clock.seconds);
      // The keyfob's row held by another transaction: the verification's one statement waits for it.
      await holder.query("BEGIN");
      await holder.query("SELECT serial FROM tokens WHERE serial = 'RQ1' FOR UPDATE");
      const answer = send(s.server.url, "POST", "/v1/customers/C1/verify", s.channel, { code }, { "x-request-id": "app-9:lost" });
      let pid: number | undefined;
      for (let i = 0; i < 500 && pid === undefined; i++) {
        const r = await direct.query("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH input AS%'");
        pid = r.rows[0]?.pid;
        if (pid === undefined) await new Promise((res) => setTimeout(res, 10));
      }
      expect(pid, "the verification never waited on the row").toBeDefined();
      // Its connection dies while the statement is out: the server cannot know whether it committed.
      await direct.query("SELECT pg_terminate_backend($1)", [pid]);
      const lost = await answer;
      expect(lost).toMatchObject({ status: 503, requestId: "app-9:lost", body: { error: { code: "outcome_unknown", detail: { requestId: "app-9:lost" } } } });
      await holder.query("ROLLBACK");
      // Reconciling: no record of that request, so nothing was made, and the code is still good.
      const audit = await send(s.server.url, "GET", "/v1/audit?customer=C1&request=app-9:lost", s.channel);
      expect(audit).toMatchObject({ status: 200, body: { records: [] } });
      const retry = await send(s.server.url, "POST", "/v1/customers/C1/verify", s.channel, { code }, { "x-request-id": "app-9:retry" });
      expect(retry.status).toBe(200);
      expect((await send(s.server.url, "GET", "/v1/audit?customer=C1&request=app-9:retry", s.channel)).body.records.map((r: any) => r.outcome)).toEqual(["ok"]);
    } finally {
      holder.release();
      await s.server.close();
      await db.close();
    }
  });
});
