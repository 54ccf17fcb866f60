/**
 * SQLite through better-sqlite3 (synchronous). The async Database shape is
 * kept so the registry has one code path; a promise-chain mutex keeps two
 * async transactions of this process from interleaving on the one connection,
 * and BEGIN IMMEDIATE plus busy_timeout serialise against other processes.
 */
import BetterSqlite3 from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Database, Sql } from "./database.js";

export class SqliteDatabase implements Database {
  readonly dialect = "sqlite" as const;
  readonly forUpdate = "";
  readonly description: string;
  private readonly db: BetterSqlite3.Database;
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly direct: Sql;

  constructor(readonly path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.description = "sqlite:" + path;
    this.db = new BetterSqlite3(path, { timeout: 10_000 });
    // WAL: readers never block the writer. synchronous=FULL: a commit that
    // returned is on disk, so an accepted code's step survives power loss
    // (NORMAL could forget it and let the code be replayed after a crash).
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.pragma("foreign_keys = ON");
    this.direct = {
      all: async (sql, params = []) => this.stmt(sql).all(...params) as any[],
      get: async (sql, params = []) => this.stmt(sql).get(...params) as any,
      run: async (sql, params = []) => this.stmt(sql).run(...params).changes,
    };
  }

  private stmt(sql: string): BetterSqlite3.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  all<T>(sql: string, params?: unknown[]): Promise<T[]> {
    return this.direct.all<T>(sql, params);
  }
  get<T>(sql: string, params?: unknown[]): Promise<T | undefined> {
    return this.direct.get<T>(sql, params);
  }
  run(sql: string, params?: unknown[]): Promise<number> {
    return this.direct.run(sql, params);
  }

  tx<T>(fn: (t: Sql) => Promise<T>): Promise<T> {
    const result = this.queue.then(async () => {
      this.db.exec("BEGIN IMMEDIATE");
      try {
        const value = await fn(this.direct);
        this.db.exec("COMMIT");
        return value;
      } catch (e) {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
        throw e;
      }
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  async script(sql: string): Promise<void> {
    this.db.exec(sql);
  }

  async close(): Promise<void> {
    await this.queue;
    if (this.db.open) this.db.close();
  }
}
