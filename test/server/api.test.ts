/**
 * The HTTP API in process (a real listener on loopback, real fetch), on
 * SQLite and PostgreSQL: the lifecycle through the three roles, and every
 * kind of bad request answered with a JSON error and no change.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createApiKey, revokeApiKey } from "../../host/registry/api-keys.js";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { parseTrustProxy, startServer } from "../../host/server/serve.js";
import { ROUTES } from "../../host/server/routes.js";
import { ENGINES, RFC_SEED_SHA1, TestClock, freshDb, oathtool } from "../registry/support.js";
import { call, selfSignedCert } from "./support.js";

const START = 1_800_000_040_000 - (1_800_000_040_000 % 60_000) + 10_000;

describe.each(ENGINES)("bank API on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  let clock: TestClock;
  let server: Awaited<ReturnType<typeof startServer>>;
  let base: string;
  const key: Record<"factory" | "staff" | "channel", string> = { factory: "", staff: "", channel: "" };

  beforeEach(async () => {
    ({ db, drop } = await freshDb(engine));
    clock = new TestClock(START);
    server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", now: clock.now });
    base = server.url;
    for (const role of ["factory", "staff", "channel"] as const) key[role] = (await createApiKey(db, role, "test " + role)).key;
  });
  afterEach(async () => {
    await server.close();
    await drop();
  });

  const register = (serial: string, seed = RFC_SEED_SHA1) =>
    call(base, "POST", "/v1/tokens", { key: key.factory, body: { serial, algorithm: "SHA1", digits: 8, period: 60, t0: 0, seed: seed.toString("hex"), model: "FK-1" } });

  it("serves an OpenAPI 3 document covering every route, with no key", async () => {
    const r = await call(base, "GET", "/openapi.json");
    expect(r.status).toBe(200);
    expect(r.body.openapi).toMatch(/^3\./);
    for (const route of ROUTES) {
      const op = r.body.paths[route.url.replace(/:([a-z]+)/gi, "{$1}")][route.method.toLowerCase()];
      expect(op.operationId).toBe(route.operationId);
      // The app's set-up routes are public (no API key); every other route needs one.
      expect(op.security).toEqual(route.public ? [] : [{ apiKey: [] }]);
      expect(op.responses["401"] === undefined).toBe(!!route.public);
    }
  });

  it("answers router errors in the API's error shape: a bad % escape 400, an over-long parameter 414 (issue 11, item 7)", async () => {
    const bad = await call(base, "GET", "/v1/tokens/FK%E0%A4%A", { key: key.staff });
    expect(bad).toEqual({ status: 400, body: { error: { code: "bad_url", message: expect.stringMatching(/% escape/) } } });
    const long = await call(base, "GET", "/v1/tokens/" + "F".repeat(101), { key: key.staff });
    expect(long).toEqual({ status: 414, body: { error: { code: "uri_too_long", message: expect.stringMatching(/too long/) } } });
    const doc = (await call(base, "GET", "/openapi.json")).body;
    expect(JSON.stringify(doc)).toContain("uri_too_long");
  });

  it("runs the lifecycle through the three roles", async () => {
    expect(await register("FK0001")).toMatchObject({ status: 201, body: { registered: ["FK0001"], alreadyRegistered: false } });
    // A retry whose first reply was lost: same content, answered as done.
    expect(await register("FK0001")).toMatchObject({ status: 201, body: { registered: ["FK0001"], alreadyRegistered: true } });
    expect(await call(base, "POST", "/v1/tokens/FK0001/issue", { key: key.staff, body: { customer: "999800000001" } })).toMatchObject({ status: 200, body: { state: "issued" } });
    const first = oathtool(RFC_SEED_SHA1, clock.seconds);
    expect(await call(base, "POST", "/v1/customers/999800000001/activate", { key: key.channel, body: { code: first } })).toMatchObject({
      status: 200,
      body: { result: "accepted", state: "active", serial: "FK0001" },
    });
    clock.advance(60);
    const code = oathtool(RFC_SEED_SHA1, clock.seconds);
    expect(await call(base, "POST", "/v1/customers/999800000001/verify", { key: key.channel, body: { code } })).toMatchObject({ status: 200, body: { result: "accepted" } });
    expect(await call(base, "POST", "/v1/customers/999800000001/verify", { key: key.channel, body: { code } })).toMatchObject({
      status: 409,
      body: { error: { code: "replayed" } },
    });
    // Lock and unlock.
    for (let i = 1; i <= 5; i++) {
      const r = await call(base, "POST", "/v1/customers/999800000001/verify", { key: key.channel, body: { code: "00000000" } });
      expect(r).toMatchObject({ status: 409, body: { error: { code: "wrong_code", detail: { failures: i, locked: i === 5 } } } });
    }
    expect(await call(base, "POST", "/v1/customers/999800000001/verify", { key: key.channel, body: { code: oathtool(RFC_SEED_SHA1, clock.seconds + 60) } })).toMatchObject({
      status: 409,
      body: { error: { code: "locked" } },
    });
    expect(await call(base, "POST", "/v1/customers/999800000001/unlock", { key: key.staff })).toMatchObject({ status: 200, body: { state: "active", failCount: 0 } });
    // Resync from two consecutive codes of a keyfob an hour fast.
    clock.advance(60);
    const fob = clock.seconds + 3600;
    const c1 = oathtool(RFC_SEED_SHA1, fob);
    clock.advance(60);
    expect(await call(base, "POST", "/v1/tokens/FK0001/resync", { key: key.staff, body: { codes: [c1, oathtool(RFC_SEED_SHA1, fob + 60)] } })).toMatchObject({ status: 200, body: { drift: 60 } });
    clock.advance(60);
    expect(await call(base, "POST", "/v1/customers/999800000001/deactivate", { key: key.channel, body: { code: oathtool(RFC_SEED_SHA1, fob + 120) } })).toMatchObject({
      status: 200,
      body: { state: "retired" },
    });
    clock.advance(60);
    expect(await call(base, "POST", "/v1/customers/999800000001/activate", { key: key.channel, body: { code: oathtool(RFC_SEED_SHA1, fob + 180) } })).toMatchObject({
      status: 409,
      body: { error: { code: "no_token" } },
    });
    const status = await call(base, "GET", "/v1/tokens/FK0001", { key: key.staff });
    expect(status).toMatchObject({ status: 200, body: { state: "retired", customer: "999800000001", drift: 60 } });
    expect(JSON.stringify(status.body)).not.toContain(RFC_SEED_SHA1.toString("hex"));
    // The audit names the key and the address of every step.
    const audit = await call(base, "GET", "/v1/audit?serial=FK0001", { key: key.staff });
    expect(audit.status).toBe(200);
    const actions = audit.body.records.map((r: { action: string; outcome: string }) => `${r.action}:${r.outcome}`);
    expect(actions).toEqual([
      "register:ok",
      "register:already_registered",
      "issue:ok",
      "activate:ok",
      "verify:ok",
      "verify:replayed",
      "verify:wrong_code",
      "verify:wrong_code",
      "verify:wrong_code",
      "verify:wrong_code",
      "verify:wrong_code",
      "lock:ok",
      "verify:locked",
      "unlock:ok",
      "resync:ok",
      "deactivate:ok",
    ]);
    for (const r of audit.body.records) {
      expect(r.source).toBe("127.0.0.1");
      expect(r.actor).toMatch(/^(factory|staff|channel):[0-9a-f]{12}$/);
    }
  });

  it("staff withdraw a lost keyfob without its code; the customer gets another; the lost one is barred", async () => {
    await register("FK0001");
    await register("FK0002", randomBytes(20));
    await call(base, "POST", "/v1/tokens/FK0001/issue", { key: key.staff, body: { customer: "c1" } });
    await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, body: { code: oathtool(RFC_SEED_SHA1, clock.seconds) } });
    expect(await call(base, "POST", "/v1/customers/c1/withdraw", { key: key.staff, body: { reason: "lost" } })).toMatchObject({
      status: 200,
      body: { serial: "FK0001", state: "retired", withdrawn: "lost" },
    });
    expect(await call(base, "POST", "/v1/tokens/FK0002/issue", { key: key.staff, body: { customer: "c1" } })).toMatchObject({ status: 200, body: { state: "issued", withdrawn: null } });
    expect(await call(base, "POST", "/v1/tokens/FK0001/issue", { key: key.staff, body: { customer: "c2" } })).toMatchObject({ status: 409, body: { error: { code: "barred" } } });
    // Bad input changes nothing; only staff may withdraw.
    expect(await call(base, "POST", "/v1/customers/c1/withdraw", { key: key.staff, body: { reason: "misplaced" } })).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
    expect(await call(base, "POST", "/v1/customers/c1/withdraw", { key: key.channel, body: { reason: "lost" } })).toMatchObject({ status: 403, body: { error: { code: "wrong_role" } } });
    expect((await call(base, "GET", "/v1/tokens/FK0002", { key: key.staff })).body).toMatchObject({ state: "issued", customer: "c1", withdrawn: null });
  });

  it("staff list tokens by state with paging, and count them by state", async () => {
    for (const s of ["FK0003", "FK0001", "FK0002"]) await register(s, randomBytes(20));
    await call(base, "POST", "/v1/tokens/FK0002/issue", { key: key.staff, body: { customer: "c2" } });
    expect(await call(base, "GET", "/v1/token-counts", { key: key.staff })).toMatchObject({ status: 200, body: { counts: { in_stock: 2, issued: 1, active: 0, locked: 0, retired: 0 } } });
    const page = await call(base, "GET", "/v1/tokens?state=in_stock&limit=1", { key: key.staff });
    expect(page).toMatchObject({ status: 200, body: { tokens: [{ serial: "FK0001", state: "in_stock", withdrawn: null }], next: "FK0001" } });
    expect(await call(base, "GET", "/v1/tokens?state=in_stock&limit=1&after=FK0001", { key: key.staff })).toMatchObject({ body: { tokens: [{ serial: "FK0003" }], next: null } });
    expect(await call(base, "GET", "/v1/tokens?state=in_stock&after=FK0003", { key: key.staff })).toMatchObject({ body: { tokens: [], next: null } });
    expect(await call(base, "GET", "/v1/tokens?state=lost", { key: key.staff })).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
    expect(await call(base, "GET", "/v1/tokens", { key: key.channel })).toMatchObject({ status: 403 });
    expect(await call(base, "GET", "/v1/token-counts", { key: key.factory })).toMatchObject({ status: 403 });
  });

  describe("authentication and roles", () => {
    it("401 missing_key without a key, bad_key with a wrong or revoked one", async () => {
      expect(await call(base, "GET", "/v1/tokens/FK0001")).toMatchObject({ status: 401, body: { error: { code: "missing_key" } } });
      expect(await call(base, "GET", "/v1/tokens/FK0001", { key: "fbk_000000000000_" + "A".repeat(43) })).toMatchObject({ status: 401, body: { error: { code: "bad_key" } } });
      expect(await call(base, "GET", "/v1/tokens/FK0001", { key: key.staff.slice(0, -1) + (key.staff.endsWith("A") ? "B" : "A") })).toMatchObject({ status: 401, body: { error: { code: "bad_key" } } });
      expect(await call(base, "GET", "/v1/tokens/FK0001", { key: "not a key" })).toMatchObject({ status: 401 });
      const k = await createApiKey(db, "staff");
      await revokeApiKey(db, k.id);
      expect(await call(base, "GET", "/v1/audit", { key: k.key })).toMatchObject({ status: 401, body: { error: { code: "bad_key" } } });
    });

    it.each([
      ["channel", "POST", "/v1/tokens/FK0001/issue", { customer: "c1" }],
      ["factory", "POST", "/v1/customers/c1/verify", { code: "12345678" }],
      ["staff", "POST", "/v1/customers/c1/verify", { code: "12345678" }],
      ["channel", "POST", "/v1/tokens", { serial: "X" }],
      ["channel", "GET", "/v1/audit", undefined],
      ["factory", "POST", "/v1/customers/c1/unlock", undefined],
    ] as const)("403 wrong_role: a %s key on %s %s", async (role, method, path, body) => {
      const r = await call(base, method, path, { key: key[role], body });
      expect(r).toMatchObject({ status: 403, body: { error: { code: "wrong_role" } } });
      expect((await call(base, "GET", "/v1/audit", { key: key.staff })).body.records).toEqual([]);
    });
  });

  describe("bad input: a clear JSON error and no change", () => {
    beforeEach(async () => {
      await register("FK0001");
      await call(base, "POST", "/v1/tokens/FK0001/issue", { key: key.staff, body: { customer: "c1" } });
    });
    const unchanged = async () => {
      const s = await call(base, "GET", "/v1/tokens/FK0001", { key: key.staff });
      expect(s.body).toMatchObject({ state: "issued", failCount: 0, customer: "c1" });
    };

    it("malformed JSON", async () => {
      expect(await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, raw: '{"code": "1234' })).toMatchObject({ status: 400, body: { error: { code: "malformed_json" } } });
      await unchanged();
    });

    it("a huge body", async () => {
      const r = await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, raw: JSON.stringify({ code: "12345678", pad: "x".repeat(2_000_000) }) });
      expect(r).toMatchObject({ status: 413, body: { error: { code: "body_too_large" } } });
      await unchanged();
    });

    it.each([
      ["a number for the code", { code: 12345678 }],
      ["an array for the code", { code: ["12345678"] }],
      ["no code", {}],
      ["an extra field", { code: "12345678", customer: "c2" }],
      ["letters", { code: "1234567x" }],
      ["a JSON string body", "12345678"],
    ])("wrong types: %s", async (_, body) => {
      const r = await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, body });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe("bad_request");
      expect(r.body.error.message).toMatch(/body/);
      await unchanged();
    });

    it("a code of the wrong length is bad input, not a wrong code", async () => {
      expect(await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, body: { code: "1234567" } })).toMatchObject({ status: 400, body: { error: { code: "bad_code" } } });
      await unchanged();
    });

    it("not JSON at all", async () => {
      expect(await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, raw: "code=12345678", contentType: "application/x-www-form-urlencoded" })).toMatchObject({
        status: 415,
        body: { error: { code: "unsupported_media_type" } },
      });
      expect(await call(base, "POST", "/v1/customers/c1/activate", { key: key.channel, raw: "12345678", contentType: "text/plain" })).toMatchObject({ status: 415 });
      await unchanged();
    });

    it("unknown serial, unknown customer, unknown route", async () => {
      expect(await call(base, "GET", "/v1/tokens/NOPE", { key: key.staff })).toMatchObject({ status: 404, body: { error: { code: "unknown_serial" } } });
      expect(await call(base, "POST", "/v1/tokens/NOPE/issue", { key: key.staff, body: { customer: "c9" } })).toMatchObject({ status: 404, body: { error: { code: "unknown_serial" } } });
      expect(await call(base, "POST", "/v1/customers/c9/verify", { key: key.channel, body: { code: "12345678" } })).toMatchObject({ status: 409, body: { error: { code: "no_token" } } });
      expect(await call(base, "GET", "/v1/nothing", { key: key.staff })).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
      await unchanged();
    });

    it("registration: duplicate serial, bad seed, wrong types", async () => {
      expect(await register("FK0001", randomBytes(20))).toMatchObject({ status: 409, body: { error: { code: "duplicate_serial" } } });
      // The same seed under another serial (issue 11, item 6a): refused, and the reply never carries the seed.
      const copied = await register("FK0003");
      expect(copied).toMatchObject({ status: 409, body: { error: { code: "duplicate_seed", detail: { serials: [["FK0003", "FK0001"]] } } } });
      expect(JSON.stringify(copied.body)).not.toContain(RFC_SEED_SHA1.toString("hex"));
      const bad = (body: object) => call(base, "POST", "/v1/tokens", { key: key.factory, body: { serial: "FK0002", algorithm: "SHA1", digits: 8, period: 60, t0: 0, seed: "00".repeat(20), ...body } });
      expect(await bad({ seed: "zz".repeat(20) })).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
      expect(await bad({ seed: "00".repeat(8) })).toMatchObject({ status: 400 });
      expect(await bad({ digits: "8" })).toMatchObject({ status: 400 });
      expect(await bad({ algorithm: "MD5" })).toMatchObject({ status: 400 });
      expect(await bad({ t0: 1.5 })).toMatchObject({ status: 400 });
      expect(await call(base, "GET", "/v1/tokens/FK0002", { key: key.staff })).toMatchObject({ status: 404 });
      // The error never echoes the seed.
      const r = await bad({ seed: "ab".repeat(20) + "z" });
      expect(JSON.stringify(r.body)).not.toContain("abab");
    });
  });
});

describe("listening", () => {
  let db: Database;
  let drop: () => Promise<void>;
  let tls: ReturnType<typeof selfSignedCert>;
  beforeAll(async () => {
    ({ db, drop } = await freshDb(ENGINES[0]));
    tls = selfSignedCert();
  });
  afterAll(async () => {
    await drop();
    rmSync(tls.dir, { recursive: true, force: true });
  });

  it("believes X-Forwarded-For only from a --trust-proxy peer, so a client cannot choose its audited address", async () => {
    const keys = KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]);
    const staff = (await createApiKey(db, "staff")).key;
    const forwarded = { "x-forwarded-for": "203.0.113.7" };
    const sources = async (trustProxy?: string[]) => {
      const server = await startServer({ db, keys, listen: "127.0.0.1:0", trustProxy });
      try {
        const before = (await call(server.url, "GET", "/v1/audit", { key: staff })).body.records.length;
        // A refused withdrawal is audited with its source.
        expect(await call(server.url, "POST", "/v1/customers/nobody/withdraw", { key: staff, body: { reason: "lost" }, headers: forwarded })).toMatchObject({ status: 409 });
        const records = (await call(server.url, "GET", "/v1/audit", { key: staff })).body.records;
        return records.slice(before).map((r: { source: string }) => r.source);
      } finally {
        await server.close();
      }
    };
    expect(await sources(["127.0.0.1"])).toEqual(["203.0.113.7"]);
    expect(await sources(["10.0.0.0/8"])).toEqual(["127.0.0.1"]); // the peer is not a listed proxy
    expect(await sources(undefined)).toEqual(["127.0.0.1"]);
  });

  it("--trust-proxy takes IPs and CIDR ranges only, with a clear error", () => {
    expect(parseTrustProxy("127.0.0.1, 10.0.0.0/8,fd00::/8")).toEqual(["127.0.0.1", "10.0.0.0/8", "fd00::/8"]);
    for (const bad of ["", "true", "*", "10.0.0.0/33", "0.0.0.0/0", "::/0", "lb.example", "::1/129"]) {
      expect(() => parseTrustProxy(bad), bad).toThrow(/--trust-proxy/);
    }
  });

  it("refuses to start with FOBKIT_STAFF_SCRYPT_LOGN out of range, naming it, rather than fail at the first sign-in", async () => {
    const before = process.env.FOBKIT_STAFF_SCRYPT_LOGN;
    process.env.FOBKIT_STAFF_SCRYPT_LOGN = "30";
    try {
      await expect(startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" })).rejects.toThrow(/FOBKIT_STAFF_SCRYPT_LOGN must be an integer from 15 to 18.*got "30"/);
    } finally {
      if (before === undefined) delete process.env.FOBKIT_STAFF_SCRYPT_LOGN;
      else process.env.FOBKIT_STAFF_SCRYPT_LOGN = before;
    }
  });

  it("refuses plain HTTP off loopback", async () => {
    await expect(startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "0.0.0.0:0" })).rejects.toThrow(/only over HTTPS/);
  });

  it("serves HTTPS with a certificate, and registration works over it", async () => {
    const server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", tlsCert: tls.cert, tlsKey: tls.key });
    try {
      expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const factory = (await createApiKey(db, "factory")).key;
      const body = JSON.stringify({ serial: "TLS0001", algorithm: "SHA1", digits: 8, period: 60, t0: 0, seed: randomBytes(20).toString("hex") });
      const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const u = new URL(server.url + "/v1/tokens");
        const req = request(
          { host: u.hostname, port: u.port, path: u.pathname, method: "POST", ca: readFileSync(tls.cert), headers: { authorization: `Bearer ${factory}`, "content-type": "application/json" } },
          (res) => {
            let text = "";
            res.on("data", (d) => (text += d));
            res.on("end", () => resolve({ status: res.statusCode!, body: text }));
          },
        );
        req.on("error", reject);
        req.end(body);
      });
      expect(reply.status).toBe(201);
      expect(JSON.parse(reply.body)).toEqual({ registered: ["TLS0001"], alreadyRegistered: false });
    } finally {
      await server.close();
    }
  });
});
