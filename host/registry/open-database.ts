/**
 * `--db` URLs: `sqlite:PATH` (or a bare path; `?synchronous=normal` trades
 * power-loss durability of the last commits for speed, see SqliteDatabase),
 * `sqlite::memory:`, and
 * `postgres://...` / `postgresql://...` (with an optional `?schema=NAME`).
 * Without one: $XDG_DATA_HOME/fobkit/bank.sqlite, else
 * ~/.local/share/fobkit/bank.sqlite (the XDG base-directory default).
 */
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { Database } from "./database.js";
import { migrate } from "./migrations.js";
import { PostgresDatabase } from "./postgres-database.js";
import { SqliteDatabase } from "./sqlite-database.js";

export function defaultDbUrl(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME && env.XDG_DATA_HOME.startsWith("/") ? env.XDG_DATA_HOME : join(env.HOME ?? homedir(), ".local", "share");
  return "sqlite:" + join(base, "fobkit", "bank.sqlite");
}

export function openDatabase(url: string): Database {
  if (/^postgres(ql)?:\/\//.test(url)) return new PostgresDatabase(url);
  if (url.startsWith("sqlite:")) {
    let path = url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "");
    let synchronous: "full" | "normal" | undefined;
    const q = /\?synchronous=(full|normal)$/i.exec(path);
    if (q) {
      synchronous = q[1].toLowerCase() as "full" | "normal";
      path = path.slice(0, q.index);
    }
    if (!path) throw new RangeError("--db sqlite: needs a path, e.g. sqlite:/var/lib/fobkit/bank.sqlite");
    return new SqliteDatabase(path === ":memory:" ? path : resolve(path), { synchronous });
  }
  if (/^[a-z]+:\/\//i.test(url)) throw new RangeError(`--db: unsupported database URL scheme in ${JSON.stringify(url.replace(/:[^:@/]*@/, ":***@"))}; use sqlite:PATH or postgres://...`);
  return new SqliteDatabase(resolve(url));
}

/** Opens and brings the schema up to date. */
export async function openMigrated(url: string): Promise<Database> {
  const db = openDatabase(url);
  try {
    await migrate(db);
  } catch (e) {
    await db.close().catch(() => undefined);
    throw e;
  }
  return db;
}
