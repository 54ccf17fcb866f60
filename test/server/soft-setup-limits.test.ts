/**
 * The public set-up routes' HTTP hygiene (review follow-ups): their answers
 * (KE2, tickets, the token's parameters, refusals) and the bank's clock are
 * never cached (Cache-Control: no-store), and each client IP gets a limited
 * number of set-up requests per minute (`bank serve --setup-rate`, default
 * 30/min): the bank's count of five starts per issuance bounds guesses at one
 * user ID, the limit bounds probing many user IDs and voiding others'.
 */
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { SETUP_RATE_DEFAULT } from "../../host/server/app.js";
import { clientKey } from "../../host/registry/client-key.js";
import { parseSetupRate, startServer } from "../../host/server/serve.js";
import { finishCustomerRegistration, setUp, startCustomerRegistration } from "../../host/soft/client.js";
import { SETUP_FINISH_PATH, SETUP_START_PATH } from "../../host/soft/protocol.js";
import { ENGINES, TestClock, freshDb } from "../registry/support.js";
import { PassThrough } from "node:stream";
import { runCli } from "../../host/cli/main.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServeProcess } from "./spawn.js";

const SERVICE_ID = "10112235";
const PASSWORD = "Correct-horse9";
const ADMIN = { name: "staff:admin", source: "cli" };
const CHANNEL = { name: "channel:limits", source: "10.0.0.9" };

let db: Database | undefined;
let drop: (() => Promise<void>) | undefined;
let server: Awaited<ReturnType<typeof startServer>> | undefined;

async function boot(extra: { setupRate?: number | false; trustProxy?: string[] } = {}) {
  ({ db, drop } = await freshDb(ENGINES[0]));
  server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", ...extra });
  await server.registry.soft.configure({ serviceId: SERVICE_ID, bankName: "ふぉぶ信用金庫", appUrl: server.url + "/app/" }, ADMIN);
  return server;
}

afterEach(async () => {
  await server?.close();
  await drop?.();
  server = undefined;
  drop = undefined;
});

/** A start request with a malformed KE1 (answered 400 by the route, but counted by the limiter first). */
const junkStart = (base: string, headers: Record<string, string> = {}) =>
  fetch(base + SETUP_START_PATH, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ serviceId: SERVICE_ID, userId: "100000000009", startLoginRequest: "AA", clientNonce: "AA" }) });

describe("set-up answers are never cached", () => {
  it("Cache-Control: no-store on both set-up steps' answers (success and refusal) and on /app/time", async () => {
    const s = await boot();
    const { clientRegistrationState, request } = await startCustomerRegistration(PASSWORD);
    const response = await s.registry.soft.startIssuance("c1", request.registrationRequest, CHANNEL);
    await s.registry.soft.issue("c1", await finishCustomerRegistration(clientRegistrationState, PASSWORD, response, "t@example.jp"), CHANNEL);
    const seen: { path: string; status: number; cacheControl: string | null }[] = [];
    const recording: typeof fetch = async (input, init) => {
      const r = await fetch(input, init);
      seen.push({ path: new URL(String(input instanceof Request ? input.url : input)).pathname, status: r.status, cacheControl: r.headers.get("cache-control") });
      return r;
    };
    await setUp({ bankUrl: s.url, serviceId: SERVICE_ID, userId: response.userId, password: PASSWORD, seed: "bytes", fetch: recording });
    expect(seen.map((x) => x.path)).toEqual([SETUP_START_PATH, SETUP_FINISH_PATH]);
    for (const x of seen) expect(x, x.path).toEqual({ ...x, status: 200, cacheControl: "no-store" });
    const refused = await junkStart(s.url);
    expect(refused.status).toBe(400);
    expect(refused.headers.get("cache-control")).toBe("no-store");
    const time = await fetch(s.url + "/app/time");
    expect(time.status).toBe(200);
    expect(time.headers.get("cache-control")).toBe("no-store");
  }, 60_000);
});

describe("set-up requests are limited per client IP", () => {
  it("over the limit: 429 rate_limited with Retry-After, per IP (X-Forwarded-For from a trusted proxy), other routes untouched", async () => {
    const s = await boot({ setupRate: 3, trustProxy: ["127.0.0.1"] });
    const from = (ip: string) => ({ "x-forwarded-for": ip });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await junkStart(s.url, from("203.0.113.7"))).status);
    expect(statuses).toEqual([400, 400, 400, 429]);
    const limited = await junkStart(s.url, from("203.0.113.7"));
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(limited.headers.get("cache-control")).toBe("no-store");
    const body = (await limited.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("rate_limited");
    expect(body.error.message).toMatch(/3 per minute/);
    // The finish step shares the limit (one budget per IP for the set-up routes).
    expect((await fetch(s.url + SETUP_FINISH_PATH, { method: "POST", headers: { "content-type": "application/json", ...from("203.0.113.7") }, body: "{}" })).status).toBe(429);
    // Another client is not held up by the first; nor are the bank's other routes.
    expect((await junkStart(s.url, from("198.51.100.20"))).status).toBe(400);
    expect((await fetch(s.url + "/healthz", { headers: from("203.0.113.7") })).status).toBe(200);
    expect((await fetch(s.url + "/app/time", { headers: from("203.0.113.7") })).status).toBe(200);
  });

  it("an IPv6 client is counted by its /64 (it holds all 2^64 addresses), an IPv4 one by its address, an IPv4-mapped one as IPv4", async () => {
    const s = await boot({ setupRate: 3, trustProxy: ["127.0.0.1"] });
    const from = (ip: string) => junkStart(s.url, { "x-forwarded-for": ip });
    const statuses = async (ips: string[]) => {
      const out: number[] = [];
      for (const ip of ips) out.push((await from(ip)).status);
      return out;
    };
    // Four addresses of one /64, written four ways: one client.
    expect(await statuses(["2001:db8:1:2::1", "2001:db8:1:2:ffff:eeee:dddd:cccc", "2001:0DB8:0001:0002::ABCD", "2001:db8:1:2::dead:beef"])).toEqual([400, 400, 400, 429]);
    // The next /64 is another client.
    expect(await statuses(["2001:db8:1:3::1"])).toEqual([400]);
    // IPv4 by the address; the same address mapped into IPv6 is the same client, its neighbour another.
    expect(await statuses(["203.0.113.50", "203.0.113.50", "::ffff:203.0.113.50", "::ffff:203.0.113.50", "203.0.113.51"])).toEqual([400, 400, 400, 429, 400]);
    expect((await db!.all<{ key: string }>("SELECT key FROM rate_limits ORDER BY key")).map((r) => r.key)).toEqual(["2001:db8:1:2::/64", "2001:db8:1:3::/64", "203.0.113.50", "203.0.113.51"]);
  });

  it("clientKey: IPv4 as is, IPv6 as its /64 in one spelling, IPv4-mapped as IPv4", () => {
    expect(clientKey("198.51.100.7")).toBe("198.51.100.7");
    expect(clientKey("::ffff:198.51.100.7")).toBe("198.51.100.7");
    expect(clientKey("::FFFF:c633:6407")).toBe("198.51.100.7");
    expect(clientKey("2001:db8:a:b:c:d:e:f")).toBe("2001:db8:a:b::/64");
    expect(clientKey("2001:0db8:000a:000b::")).toBe("2001:db8:a:b::/64");
    expect(clientKey("2001:db8:a:c::1")).toBe("2001:db8:a:c::/64");
    expect(clientKey("::1")).toBe("::/64");
  });

  it(`the default (${SETUP_RATE_DEFAULT}/min) applies when nothing is configured; off turns it off`, async () => {
    const s = await boot();
    const statuses: number[] = [];
    for (let i = 0; i <= SETUP_RATE_DEFAULT; i++) statuses.push((await junkStart(s.url)).status);
    expect(statuses.slice(0, SETUP_RATE_DEFAULT).every((x) => x === 400)).toBe(true);
    expect(statuses[SETUP_RATE_DEFAULT]).toBe(429);
    await server!.close();
    await drop!();
    const open = await boot({ setupRate: false });
    for (let i = 0; i <= SETUP_RATE_DEFAULT; i++) expect((await junkStart(open.url)).status).toBe(400);
  }, 60_000);

  it("--setup-rate takes N/min or off and refuses anything else clearly", async () => {
    expect(parseSetupRate("30/min")).toBe(30);
    expect(parseSetupRate("5")).toBe(5);
    expect(parseSetupRate("off")).toBe(false);
    for (const bad of ["0/min", "ten", "30/s", "-1", "1000000"]) expect(() => parseSetupRate(bad), bad).toThrow(/--setup-rate must be N\/min/);
    const stderr = new PassThrough();
    let e = "";
    stderr.on("data", (d) => (e += d));
    const code = await runCli(["bank", "serve", "--db", "sqlite::memory:", "--setup-rate", "30/hour"], { stdout: new PassThrough(), stderr, stdin: new PassThrough(), env: {}, signal: AbortSignal.timeout(20_000) });
    expect(code).not.toBe(0);
    expect(e).toMatch(/--setup-rate must be N\/min/);
  });
});

describe.each(ENGINES)("the set-up limit holds across server processes on $name", (engine) => {
  const LIMIT = 3;

  it("two servers on one database (two hosts behind a balancer) share one count per client IP", async () => {
    const f = await freshDb(engine);
    const keys = KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]);
    const a = await startServer({ db: f.db, keys, listen: "127.0.0.1:0", setupRate: LIMIT, trustProxy: ["127.0.0.1"] });
    const b = await startServer({ db: f.db, keys, listen: "127.0.0.1:0", setupRate: LIMIT, trustProxy: ["127.0.0.1"] });
    try {
      const from = { "x-forwarded-for": "203.0.113.9" };
      const statuses: number[] = [];
      for (let i = 0; i <= LIMIT; i++) statuses.push((await junkStart((i % 2 ? b : a).url, from)).status);
      expect(statuses).toEqual([...Array(LIMIT).fill(400), 429]);
      // Another address still has its own count, at either server.
      expect((await junkStart(b.url, { "x-forwarded-for": "198.51.100.1" })).status).toBe(400);
    } finally {
      await a.close();
      await b.close();
      await f.drop();
    }
  });

  it("hosts whose clocks differ by minutes keep one count and one window (both on the database's clock)", async () => {
    const f = await freshDb(engine);
    const keys = KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]);
    const start = (skewMs: number) => startServer({ db: f.db, keys, listen: "127.0.0.1:0", setupRate: LIMIT, trustProxy: ["127.0.0.1"], now: () => Date.now() + skewMs });
    const behind = await start(-5 * 60_000);
    const ahead = await start(5 * 60_000);
    try {
      const from = { "x-forwarded-for": "203.0.113.10" };
      const answers: Response[] = [];
      // Behind first: a host ahead took its window for long over and started a new one at each of its requests.
      for (let i = 0; i <= LIMIT; i++) answers.push(await junkStart((i % 2 ? ahead : behind).url, from));
      expect(answers.map((r) => r.status)).toEqual([...Array(LIMIT).fill(400), 429]);
      const retry = Number(answers[LIMIT].headers.get("retry-after"));
      expect(retry).toBeGreaterThan(0);
      expect(retry).toBeLessThanOrEqual(60);
      // Neither host's sweep (each sweeps at its first request) took the live window for over.
      expect(await f.db.get("SELECT hits FROM rate_limits")).toEqual({ hits: LIMIT + 1 });
    } finally {
      await behind.close();
      await ahead.close();
      await f.drop();
    }
  });

  /**
   * A server on a fresh database with the set-up limit LIMIT and a clock the test moves; both gone after `fn`.
   * `advance` moves time for both clocks: this process's (its memory of refused keys) and the database's, which
   * the windows are on (rate-store.ts), by moving every window's start back as far.
   */
  async function withClockedServer(fn: (s: Awaited<ReturnType<typeof startServer>>, advance: (seconds: number) => Promise<void>, f: Awaited<ReturnType<typeof freshDb>>) => Promise<void>): Promise<void> {
    const f = await freshDb(engine);
    const clock = new TestClock(Date.now());
    const s = await startServer({ db: f.db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", setupRate: LIMIT, now: clock.now });
    const advance = async (seconds: number) => {
      clock.advance(seconds);
      await f.db.run("UPDATE rate_limits SET window_start = window_start - ?", [seconds * 1000]);
    };
    try {
      await fn(s, advance, f);
    } finally {
      await s.close();
      await f.drop();
    }
  }

  it("a flood of refused requests costs the database nothing more once it has refused one (the attack review: each 429 was an upsert)", () =>
    withClockedServer(async (s, advance, f) => {
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) statuses.push((await junkStart(s.url)).status);
      expect(statuses).toEqual([...Array(LIMIT).fill(400), ...Array(20 - LIMIT).fill(429)]);
      // The first refusal was counted in the database; the 16 after it were answered from memory.
      expect(await f.db.get("SELECT hits FROM rate_limits")).toEqual({ hits: LIMIT + 1 });
      // Still refused with the window's Retry-After, and the next window starts afresh in the database.
      await advance(30);
      const limited = await junkStart(s.url);
      // 30 s, less the real time the requests took since the window began (seconds, rounded up: 29 on a slow machine).
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(29);
      expect(Number(limited.headers.get("retry-after"))).toBeLessThanOrEqual(30);
      await advance(31);
      expect((await junkStart(s.url)).status).toBe(400);
      expect(await f.db.get("SELECT hits FROM rate_limits")).toEqual({ hits: 1 });
    }));

  it("the count is per minute: Retry-After says when the window ends, and a new window starts afresh", () =>
    withClockedServer(async (s, advance, f) => {
      for (let i = 0; i < LIMIT; i++) expect((await junkStart(s.url)).status).toBe(400);
      await advance(20);
      const limited = await junkStart(s.url);
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(39);
      expect(Number(limited.headers.get("retry-after"))).toBeLessThanOrEqual(40);
      await advance(40);
      expect((await junkStart(s.url)).status).toBe(400);
      expect(await f.db.get("SELECT hits FROM rate_limits")).toEqual({ hits: 1 });
    }));

  it("bank serve --workers 2: requests spread over both workers get the limit at N, not 2N", async () => {
    const f = await freshDb(engine);
    const dir = mkdtempSync(join(tmpdir(), "fobkit-rate-"));
    KeyRing.create(join(dir, "bank.kek"));
    const server = await startServeProcess(["--db", f.url, "--kek-file", join(dir, "bank.kek"), "--workers", "2", "--setup-rate", `${LIMIT}/min`, "--log"]);
    let out = "";
    server.proc.stdout!.on("data", (d) => (out += d));
    try {
      const statuses: number[] = [];
      // A fresh connection each (no keep-alive): the primary hands connections to its workers in turn (node:cluster round-robin).
      for (let i = 0; i < 2 * LIMIT; i++) statuses.push((await junkStart(server.url, { connection: "close" })).status);
      expect(statuses).toEqual([...Array(LIMIT).fill(400), ...Array(LIMIT).fill(429)]);
      // Both workers answered set-up requests (their request logs carry their pids).
      for (let i = 0; i < 100 && !out.includes('"statusCode":429'); i++) await new Promise((r) => setTimeout(r, 20));
      const pids = new Set(
        out
          .split("\n")
          .filter((l) => l.includes('"incoming request"') && l.includes(SETUP_START_PATH))
          .map((l) => JSON.parse(l).pid),
      );
      expect([...pids].sort()).toEqual([...(server.info.workers as number[])].sort());
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
      await f.drop();
    }
  }, 60_000);
});
