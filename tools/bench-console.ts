/**
 * The staff console's list pages at 100,000 keyfobs (issue 13: goal under
 * 100 ms of server time per page), on SQLite and PostgreSQL. Writes
 * bench/results/console.json.
 *
 *   node build/node/tools/bench-console.js   (PostgreSQL at $FOBKIT_BENCH_PG,
 *                                             default postgres://postgres@127.0.0.1:5432/test)
 *
 * Method: a fresh database (SQLite file in a temp directory; a fresh
 * PostgreSQL schema, dropped after) gets 100,000 keyfobs through
 * Registry.register (real sealing and seed index, 500 per transaction). The
 * spread of states (70% in use with a customer each, 1% locked, 4% retired,
 * 25% in stock) is then written with one UPDATE per state (then ANALYZE;
 * on PostgreSQL VACUUM ANALYZE, the state autovacuum keeps): a fixture for
 * the list queries, which read only state, customer and times. Each page is
 * requested in process (Fastify inject, a signed-in supervisor's session
 * cookie) 5 times to warm up, then RUNS times; "server" is the page's own
 * Server-Timing (queries and rendering, from the route handler's start), "inject" adds
 * session check, routing and serialisation.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { Database } from "../host/registry/database.js";
import { KeyRing } from "../host/registry/key-ring.js";
import { openMigrated } from "../host/registry/open-database.js";
import { Registry } from "../host/registry/registry.js";
import { addStaff, signIn } from "../host/registry/staff.js";
import type { NewToken } from "../host/registry/types.js";
import { buildApp } from "../host/server/app.js";
import { SESSION_COOKIE } from "../host/console/console.js";

const PG_URL = process.env.FOBKIT_BENCH_PG ?? "postgres://postgres@127.0.0.1:5432/test";
const ACTOR = { name: "staff:bench", source: "bench" };
const TOKENS = Number(process.env.FOBKIT_BENCH_CONSOLE_TOKENS ?? 100_000);
const RUNS = 30;
export const GOAL_MS = 100;

const PAGES: { name: string; url: string }[] = [
  { name: "all, by serial, page 1", url: "/console/keyfobs" },
  { name: "locked now", url: "/console/keyfobs?state=locked" },
  { name: "in stock, page 400", url: "/console/keyfobs?state=in_stock&page=400" },
  { name: "locked, last change first", url: "/console/keyfobs?state=locked&sort=updated&dir=desc" },
  { name: "all, last change first", url: "/console/keyfobs?sort=updated&dir=desc" },
  { name: "all, by customer, page 1000", url: "/console/keyfobs?sort=customer&page=1000" },
  { name: "customer ID prefix C-0004", url: "/console/keyfobs?q=C-0004" },
];

export interface PageFigure {
  name: string;
  url: string;
  rows: number;
  serverMedianMs: number;
  serverP95Ms: number;
  injectMedianMs: number;
}

export interface ConsoleBench {
  tokens: number;
  goalMs: number;
  machine: { cpus: number; model: string; node: string; loadavg: number[] };
  engines: Record<string, { fillSeconds: number; pages: PageFigure[] } | { skipped: string }>;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return Number(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2));
};

async function fill(db: Database, registry: Registry): Promise<void> {
  const now = Date.now();
  for (let start = 0; start < TOKENS; start += 500) {
    const batch: NewToken[] = [];
    for (let i = start; i < Math.min(TOKENS, start + 500); i++) {
      batch.push({ serial: `FK${String(i).padStart(7, "0")}`, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: randomBytes(20) });
    }
    await registry.register(batch, ACTOR, "bench");
  }
  // Fixture states by serial number (i mod 100): 0..69 active, 70 locked, 71..74 retired, rest in stock.
  const mod = "(CAST(substr(serial, 3) AS INTEGER) % 100)";
  const customer = "'C-' || substr(serial, 3)";
  await db.run(`UPDATE tokens SET state = 'active', customer = ${customer}, issuance = 1, activated_at = CAST(? AS BIGINT), updated_at = CAST(? AS BIGINT) + CAST(substr(serial, 3) AS INTEGER) WHERE ${mod} < 70`, [now, now]);
  await db.run(`UPDATE tokens SET state = 'locked', customer = ${customer}, issuance = 1, fail_count = 5, activated_at = CAST(? AS BIGINT), updated_at = CAST(? AS BIGINT) + CAST(substr(serial, 3) AS INTEGER) WHERE ${mod} = 70`, [now, now]);
  await db.run(`UPDATE tokens SET state = 'retired', customer = ${customer}, issuance = 1, withdrawn = 'lost', updated_at = CAST(? AS BIGINT) + CAST(substr(serial, 3) AS INTEGER) WHERE ${mod} BETWEEN 71 AND 74`, [now]);
  // PostgreSQL: VACUUM as autovacuum would have by now (index-only scans need the visibility map).
  if (db.dialect === "postgres") await db.run("VACUUM ANALYZE tokens");
  else await db.run("ANALYZE");
}

async function measure(engine: "sqlite" | "postgres", dir: string): Promise<{ fillSeconds: number; pages: PageFigure[] }> {
  const schema = "bench_console_" + randomBytes(4).toString("hex");
  const url = engine === "sqlite" ? "sqlite:" + join(dir, "console.sqlite") : `${PG_URL}?schema=${schema}`;
  const db = await openMigrated(url);
  try {
    const registry = new Registry(db, { keys: KeyRing.fromKeys([{ id: "bench", key: randomBytes(32) }]) });
    const t0 = Date.now();
    await fill(db, registry);
    const fillSeconds = (Date.now() - t0) / 1000;
    // A session comes only from a sign-in (staff.ts makes it in the transaction that audits the sign-in).
    const password = randomBytes(18).toString("base64");
    await addStaff(db, "bench", "supervisor", password, ACTOR);
    const signedIn = await signIn(db, "bench", password, "bench");
    if (!signedIn.ok) throw new Error(`bench: the bench member could not sign in (${signedIn.reason})`);
    const session = signedIn.session;
    const app = buildApp({ registry });
    await app.ready();
    const pages: PageFigure[] = [];
    for (const p of PAGES) {
      const server: number[] = [];
      const inject: number[] = [];
      let rows = 0;
      for (let i = 0; i < 5 + RUNS; i++) {
        const t = process.hrtime.bigint();
        const r = await app.inject({ method: "GET", url: p.url, headers: { cookie: `${SESSION_COOKIE}=${session.id}`, "accept-language": "ja" } });
        const took = Number(process.hrtime.bigint() - t) / 1e6;
        if (r.statusCode !== 200) throw new Error(`${p.url}: HTTP ${r.statusCode}`);
        rows = (r.body.match(/<tr>/g) ?? []).length - 1;
        if (i < 5) continue;
        server.push(Number(/app;dur=([0-9.]+)/.exec(String(r.headers["server-timing"]))![1]));
        inject.push(took);
      }
      pages.push({ name: p.name, url: p.url, rows, serverMedianMs: pct(server, 50), serverP95Ms: pct(server, 95), injectMedianMs: pct(inject, 50) });
    }
    await app.close();
    return { fillSeconds, pages };
  } finally {
    await db.close();
    if (engine === "postgres") {
      const pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => pool.end());
    }
  }
}

export async function runConsoleBench(): Promise<ConsoleBench> {
  const dir = mkdtempSync(join(tmpdir(), "fobkit-bench-console-"));
  const out: ConsoleBench = {
    tokens: TOKENS,
    goalMs: GOAL_MS,
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "?", node: process.version, loadavg: loadavg() },
    engines: {},
  };
  try {
    for (const engine of ["sqlite", "postgres"] as const) {
      process.stderr.write(`bench console: ${engine}: filling ${TOKENS} keyfobs...\n`);
      try {
        out.engines[engine] = await measure(engine, dir);
      } catch (e) {
        if (engine === "postgres" && /ECONNREFUSED|connect/i.test((e as Error).message)) out.engines[engine] = { skipped: `no PostgreSQL at ${PG_URL.replace(/\/\/[^@]*@/, "//")}` };
        else throw e;
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

export function formatConsoleBench(r: ConsoleBench): string {
  const lines = [`console list pages at ${r.tokens.toLocaleString("en")} keyfobs (goal: median under ${r.goalMs} ms of server time; load average ${r.machine.loadavg[0].toFixed(1)} on ${r.machine.cpus} cores)`];
  for (const [engine, e] of Object.entries(r.engines)) {
    if ("skipped" in e) {
      lines.push(`  ${engine}: skipped (${e.skipped})`);
      continue;
    }
    lines.push(`  ${engine} (filled in ${e.fillSeconds.toFixed(0)} s):`);
    for (const p of e.pages) {
      lines.push(`    ${p.name.padEnd(30)} server ${p.serverMedianMs.toFixed(1).padStart(6)} ms median, ${p.serverP95Ms.toFixed(1).padStart(6)} ms p95  (${p.rows} rows; in-process request ${p.injectMedianMs.toFixed(1)} ms)${p.serverMedianMs < r.goalMs ? "" : "  OVER GOAL"}`);
    }
  }
  return lines.join("\n");
}

if (process.argv[1]?.endsWith("bench-console.js")) {
  const r = await runConsoleBench();
  process.stdout.write(formatConsoleBench(r) + "\n");
}
