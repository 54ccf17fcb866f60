/**
 * SQLite through better-sqlite3 (synchronous). The async Database shape is
 * kept so the registry has one code path. Transactions of this process run
 * one at a time on the one connection; BEGIN IMMEDIATE plus busy_timeout
 * serialise them against other processes.
 *
 * Group commit: with synchronous=FULL every COMMIT waits for an fsync
 * (~3.5 ms on the bench machine, so at most ~280 commits/s). Transactions
 * that queue up while one is running are run together inside one BEGIN
 * IMMEDIATE ... COMMIT, each in its own SAVEPOINT (a failing one rolls back
 * alone), and none of them is answered before that COMMIT returns. Each is
 * as durable as if committed alone; one fsync covers the batch.
 */
import BetterSqlite3 from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Database, Sql } from "./database.js";

/** Transactions per group commit: bounds how long the write lock is held. */
const MAX_BATCH = 256;

export class SqliteDatabase implements Database {
  readonly dialect = "sqlite" as const;
  readonly forUpdate = "";
  readonly description: string;
  private readonly db: BetterSqlite3.Database;
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  private pending: { fn: (t: Sql) => Promise<unknown>; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  private running?: Promise<void>;
  private readonly direct: Sql;

  constructor(
    readonly path: string,
    options: { synchronous?: "full" | "normal" } = {},
  ) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.description = "sqlite:" + path + (options.synchronous === "normal" ? " (synchronous=normal)" : "");
    this.db = new BetterSqlite3(path, { timeout: 10_000 });
    // WAL: readers never block the writer. synchronous=FULL (default): a
    // commit that returned is on disk, so an accepted code's step survives
    // power loss. `?synchronous=normal` skips the per-commit fsync (faster;
    // a power cut may forget the last commits: a code accepted just before
    // it could be accepted once more within its window). A process crash
    // loses nothing either way.
    this.db.pragma("journal_mode = WAL");
    this.db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
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
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn: fn as (t: Sql) => Promise<unknown>, resolve: resolve as (v: unknown) => void, reject });
      if (!this.running) {
        this.running = this.drainBatches().catch((e) => {
          // Only a failing SAVEPOINT/RELEASE gets here: fail what waits rather than hang it.
          this.running = undefined;
          if (this.db.inTransaction) this.db.exec("ROLLBACK");
          for (const b of this.pending.splice(0)) b.reject(e);
        });
      }
    });
  }

  private async drainBatches(): Promise<void> {
    for (;;) {
      if (this.pending.length === 0) {
        // Synchronously with the emptiness check (no await between): a tx()
        // queued later by a continuation of the last batch starts a new drain.
        this.running = undefined;
        return;
      }
      const batch: typeof this.pending = [];
      const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
      try {
        this.db.exec("BEGIN IMMEDIATE");
      } catch (e) {
        for (const b of this.pending.splice(0, MAX_BATCH)) b.reject(e);
        continue;
      }
      for (;;) {
        const take = this.pending.splice(0, MAX_BATCH - batch.length);
        for (const b of take) {
          batch.push(b);
          // Prepared once: exec() would parse the text on every transaction.
          this.stmt("SAVEPOINT fobkit_tx").run();
          try {
            const value = await b.fn(this.direct);
            this.stmt("RELEASE fobkit_tx").run();
            outcomes.push({ ok: true, value });
          } catch (error) {
            this.stmt("ROLLBACK TO fobkit_tx").run();
            this.stmt("RELEASE fobkit_tx").run();
            outcomes.push({ ok: false, error });
          }
        }
        if (batch.length >= MAX_BATCH) break;
        // The transactions above ran on microtasks, so nothing else has had a
        // turn: let the event loop deliver the requests already waiting (one
        // check-phase hop), and take any transaction they start into this
        // commit. Without this hop every commit would carry one transaction.
        await new Promise<void>((r) => setImmediate(r));
        if (this.pending.length === 0) break;
      }
      try {
        this.db.exec("COMMIT");
      } catch (e) {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
        for (const b of batch) b.reject(e);
        continue;
      }
      batch.forEach((b, i) => {
        const o = outcomes[i];
        if (o.ok) b.resolve(o.value);
        else b.reject(o.error);
      });
    }
  }

  async script(sql: string): Promise<void> {
    this.db.exec(sql);
  }

  async close(): Promise<void> {
    while (this.running) await this.running;
    if (this.db.open) this.db.close();
  }
}
