/**
 * Shared by the registry and server suites: the two engines (every suite
 * runs against both), codes from OATH Toolkit's oathtool (an implementation
 * we did not write), and a clock the test moves.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { Database } from "../../host/registry/database.js";
import { openMigrated } from "../../host/registry/open-database.js";

export const PG_BASE = process.env.FOBKIT_TEST_PG ?? "postgres://postgres@127.0.0.1:5432/test";

export interface Engine {
  name: "sqlite" | "postgres";
  /** A fresh, empty, migrated database URL; `drop` removes it. */
  fresh(): Promise<{ url: string; drop(): Promise<void> }>;
}

export const ENGINES: Engine[] = [
  {
    name: "sqlite",
    async fresh() {
      const dir = mkdtempSync(join(tmpdir(), "fobkit-bank-"));
      return { url: "sqlite:" + join(dir, "bank.sqlite"), drop: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: "postgres",
    async fresh() {
      const schema = "test_" + randomBytes(6).toString("hex");
      return {
        url: `${PG_BASE}?schema=${schema}`,
        drop: async () => {
          const pool = new pg.Pool({ connectionString: PG_BASE, max: 1 });
          try {
            await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
          } finally {
            await pool.end();
          }
        },
      };
    },
  },
];

export async function freshDb(engine: Engine): Promise<{ db: Database; url: string; drop(): Promise<void> }> {
  const f = await engine.fresh();
  const db = await openMigrated(f.url);
  return {
    db,
    url: f.url,
    drop: async () => {
      await db.close();
      await f.drop();
    },
  };
}

/** RFC 6238 Appendix B's SHA-1 seed, "12345678901234567890". */
export const RFC_SEED_SHA1 = Buffer.from("12345678901234567890");

/** The code oathtool computes for `secret` at unix time `unixSeconds`, 60-s step. */
export function oathtool(secret: Buffer, unixSeconds: number, opts: { algorithm?: "SHA1" | "SHA256" | "SHA512"; digits?: number; period?: number } = {}): string {
  return execFileSync("oathtool", [
    `--totp=${opts.algorithm ?? "SHA1"}`,
    "-d",
    String(opts.digits ?? 8),
    "-s",
    String(opts.period ?? 60),
    "-N",
    "@" + Math.floor(unixSeconds),
    secret.toString("hex"),
  ])
    .toString()
    .trim();
}

/** A clock tests move; `now()` is unix milliseconds. */
export class TestClock {
  constructor(public ms: number) {}
  now = (): number => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
  get seconds(): number {
    return Math.floor(this.ms / 1000);
  }
}

/**
 * Waits until the wall clock is in a later step than `afterMs`'s, for tests
 * against real server processes (whose clock is the wall clock): a keyfob
 * with a true clock shows a new code only then.
 */
export async function nextStep(afterMs: number, period: number): Promise<void> {
  const target = (Math.floor(afterMs / 1000 / period) + 1) * period * 1000 + 50;
  const wait = target - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
