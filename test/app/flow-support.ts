/**
 * A whole bank for the software-token flows, every part real and every byte
 * it lets out recorded for the seed search:
 * - the bank's server in process (buildApp on SQLite, the real registry), on
 *   a clock the test moves, its request log written to `logs`;
 * - a recording HTTP proxy in front of it: the app (CLI or Chromium) talks
 *   only to the proxy, which keeps every request and response body;
 * - a real SMTP server (test/support/smtp.ts: smtp-server, mails parsed by
 *   mailparser) receiving the issuance mail;
 * - the real CLI as subprocesses (bank soft-config / soft-issue / activate /
 *   verify / unlock / deactivate, app setup / code), their output kept, on
 *   the same clock through FOBKIT_CLOCK_OFFSET (host/clock.ts: every CLI
 *   command that reads the time honours it; the in-process server gets the
 *   same offset injected, as `bank serve` ignores the variable).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer, request as httpRequest, type Server } from "node:http";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { KeyRing } from "../../host/registry/key-ring.js";
import { openMigrated } from "../../host/registry/open-database.js";
import { Registry } from "../../host/registry/registry.js";
import type { Database } from "../../host/registry/database.js";
import { buildApp } from "../../host/server/app.js";
import { softSerial } from "../../host/soft/protocol.js";
import { runFobkit } from "../server/spawn.js";
import { startTestSmtp } from "../support/smtp.js";
import { PG_BASE } from "../registry/support.js";
import type { Page } from "playwright-core";
import { launchChromium } from "../../tools/chromium.js";

export const SERVICE_ID = "10112235";
export const BANK_NAME = "テスト信用金庫";
const JST_MS = 9 * 3600_000;

export interface Mail {
  to: string[];
  raw: Buffer;
  subject: string;
  text: string;
}

export interface Bank {
  /** The proxy's origin: what the app is given. */
  url: string;
  dir: string;
  env: NodeJS.ProcessEnv;
  smtpUrl: string;
  mails: Mail[];
  /** Every request and response body through the proxy, and every CLI output. */
  captured: Buffer[];
  logs: Buffer[];
  now(): number;
  /** Moves the bank's clock (server and CLI) by whole seconds. */
  advance(seconds: number): void;
  /** Sets the clock to unix ms `ms` (rounded to a whole second of offset). */
  setNow(ms: number): void;
  fobkit(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** fobkit, exit 0 expected; --json output parsed. */
  ok(...args: string[]): Promise<any>;
  /** The seed the bank holds for `userId`, opened from its row with the bank's key (for the search only; never printed). */
  seedOf(userId: string): Promise<Buffer>;
  row(userId: string): Promise<Record<string, unknown> | undefined>;
  /** Whether the proxy answers: false cuts every connection, as a network that is down. */
  setReachable(up: boolean): void;
  /** The database file(s) as bytes. */
  dbBytes(): Buffer;
  close(): Promise<void>;
}

/** Unix ms of 12:00 today in Tokyo: the flow starts at noon so "the same day" cannot cross midnight by accident. */
export function tokyoNoonToday(): number {
  const now = Date.now();
  const dayStart = Math.floor((now + JST_MS) / 86_400_000) * 86_400_000 - JST_MS;
  return dayStart + 12 * 3600_000;
}

/** Unix ms of the next midnight in Tokyo after `ms`. */
export function nextTokyoMidnight(ms: number): number {
  return Math.floor((ms + JST_MS) / 86_400_000 + 1) * 86_400_000 - JST_MS;
}

export async function startBank(opts: { startAt?: number; engine?: "sqlite" | "postgres" } = {}): Promise<Bank> {
  const dir = mkdtempSync(join(tmpdir(), "fobkit-soft-flow-"));
  const dbPath = join(dir, "bank.sqlite");
  // PostgreSQL: a schema of this test's own in the shared test database (parallel helpers never collide).
  const schema = opts.engine === "postgres" ? "soft_app_" + randomBytes(6).toString("hex") : undefined;
  const dbUrl = schema ? `${PG_BASE}?schema=${schema}` : "sqlite:" + dbPath;
  let offset = opts.startAt === undefined ? 0 : Math.round((opts.startAt - Date.now()) / 1000);
  const now = () => Date.now() + offset * 1000;
  const baseEnv = { FOBKIT_BANK_DB: dbUrl, FOBKIT_BANK_KEK_FILE: join(dir, "bank.kek"), USER: "flow" };
  const env = (): NodeJS.ProcessEnv => ({ ...baseEnv, FOBKIT_CLOCK_OFFSET: String(offset) });
  const captured: Buffer[] = [];
  const logs: Buffer[] = [];

  const fobkit = async (...args: string[]) => {
    const r = await runFobkit(args, env());
    captured.push(Buffer.from(r.stdout), Buffer.from(r.stderr));
    return r;
  };
  const ok = async (...args: string[]) => {
    const r = await fobkit(...args);
    if (r.code !== 0) throw new Error(`fobkit ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return args.includes("--json") ? JSON.parse(r.stdout) : r.stdout;
  };

  const smtp = await startTestSmtp();
  const smtpUrl = smtp.url;

  // The recording proxy; its target is set once the bank listens.
  let target = 0;
  let reachable = true;
  const proxy: Server = createServer((req, res) => {
    if (!reachable) {
      req.socket.destroy();
      return;
    }
    const body: Buffer[] = [];
    req.on("data", (d: Buffer) => body.push(d));
    req.on("end", () => {
      const reqBody = Buffer.concat(body);
      captured.push(reqBody, Buffer.from(req.url ?? ""));
      const out = httpRequest({ host: "127.0.0.1", port: target, method: req.method, path: req.url, headers: req.headers }, (up) => {
        const parts: Buffer[] = [];
        up.on("data", (d: Buffer) => parts.push(d));
        up.on("end", () => {
          const resBody = Buffer.concat(parts);
          captured.push(resBody);
          res.writeHead(up.statusCode ?? 502, up.headers);
          res.end(resBody);
        });
      });
      out.on("error", () => {
        res.writeHead(502);
        res.end();
      });
      out.end(reqBody);
    });
  });
  await new Promise<void>((res) => proxy.listen(0, "127.0.0.1", () => res()));
  const url = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;

  await ok("bank", "init-kek");
  const keys = KeyRing.fromFile(baseEnv.FOBKIT_BANK_KEK_FILE);
  const db: Database = await openMigrated(baseEnv.FOBKIT_BANK_DB);
  const registry = new Registry(db, { keys, now });
  const logStream = new PassThrough();
  logStream.on("data", (d: Buffer) => logs.push(Buffer.from(d)));
  const app: FastifyInstance = buildApp({ registry, now, logStream });
  await app.listen({ host: "127.0.0.1", port: 0 });
  target = (app.server.address() as { port: number }).port;

  const row = async (userId: string) => (await db.get<Record<string, unknown>>("SELECT * FROM tokens WHERE serial = ?", [softSerial(userId)])) ?? undefined;

  return {
    url,
    dir,
    get env() {
      return env();
    },
    smtpUrl,
    get mails(): Mail[] {
      return smtp.mails.map((m) => ({ to: m.to, raw: m.raw, subject: m.parsed.subject ?? "", text: m.parsed.text ?? "" }));
    },
    captured,
    logs,
    now,
    advance: (s) => (offset += s),
    setNow: (ms) => (offset = Math.round((ms - Date.now()) / 1000)),
    fobkit,
    ok,
    async seedOf(userId) {
      const r = await row(userId);
      if (!r?.seed) throw new Error(`no seed in the row of ${userId}`);
      return keys.open(softSerial(userId), { kekId: String(r.kek_id), blob: Buffer.from(r.seed as Uint8Array) });
    },
    row,
    setReachable: (up) => (reachable = up),
    dbBytes() {
      // PostgreSQL: everything in the schema as pg_dump writes it (bytea as \\x hex in COPY data).
      if (schema) return execFileSync("pg_dump", ["--dbname", PG_BASE, "--schema", schema]);
      return Buffer.concat(readdirSync(dir).filter((f) => f.startsWith("bank.sqlite")).map((f) => (statSync(join(dir, f)).isFile() ? readFileSync(join(dir, f)) : Buffer.alloc(0))));
    },
    async close() {
      await app.close();
      await db.close();
      if (schema) {
        const pool = new pg.Pool({ connectionString: PG_BASE, max: 1 });
        await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => pool.end());
      }
      await new Promise<void>((res) => proxy.close(() => res()));
      await smtp.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A wrong code: the right one with its last digit changed. */
export function wrongCode(code: string): string {
  return code.slice(0, 7) + String((Number(code[7]) + 5) % 10);
}

/**
 * A bank configured for software tokens (SERVICE_ID, BANK_NAME) at Tokyo's noon today, and Debian's Chromium in
 * Japanese with one page on the bank's clock: what the web app's browser tests start from. Page errors are kept.
 */
export async function appInChromium(): Promise<{ bank: Bank; browser: Awaited<ReturnType<typeof launchChromium>>; page: Page; pageErrors: string[]; close(): Promise<void> }> {
  const bank = await startBank({ startAt: tokyoNoonToday() });
  await bank.ok("bank", "soft-config", "--service-id", SERVICE_ID, "--bank-name", BANK_NAME, "--app-url", bank.url + "/app/", "--json");
  const browser = await launchChromium({ locale: "ja-JP" });
  const page = await browser.context.newPage();
  const pageErrors: string[] = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.clock.install({ time: bank.now() });
  return {
    bank,
    browser,
    page,
    pageErrors,
    close: async () => {
      await browser.close();
      await bank.close();
    },
  };
}
