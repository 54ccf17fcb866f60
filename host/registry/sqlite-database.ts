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
 *
 * Waiting for another process's lock never blocks the event loop (issue 11,
 * item 4: a 60,000-token import held the write lock 15-17 s, and
 * better-sqlite3's busy handler, which sleeps in C on the calling thread,
 * stalled every request of a server for 5-7 s). The connection's busy
 * timeout is 0, so SQLite answers SQLITE_BUSY at once; BEGIN IMMEDIATE (and
 * any statement outside a transaction) is then retried on a timer with
 * back-off of 1 to MAX_BACKOFF_MS, while the process serves other requests
 * and queues their transactions into the next group commit. Past
 * busyTimeoutMs the waiting transactions fail with DatabaseBusyError (the
 * API answers 503 with Retry-After). Long writers (imports) keep their
 * transactions short and pause between them (Registry.register), so a
 * poller always finds a gap.
 */
import BetterSqlite3 from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseBusyError, type Database, type Sql } from "./database.js";

/** Transactions per group commit: bounds how long the write lock is held. */
const MAX_BATCH = 256;
/** Longest pause between two tries for a lock another process holds. */
export const MAX_BACKOFF_MS = 4;
/** How long a transaction waits for another process's lock before failing (default). */
export const DEFAULT_BUSY_TIMEOUT_MS = 10_000;

function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return code === "SQLITE_BUSY" || code === "SQLITE_BUSY_SNAPSHOT" || code === "SQLITE_LOCKED";
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class SqliteDatabase implements Database {
  readonly dialect = "sqlite" as const;
  readonly forUpdate = "";
  readonly description: string;
  private readonly db: BetterSqlite3.Database;
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  private pending: { fn: (t: Sql) => Promise<unknown>; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  private running?: Promise<void>;
  private readonly direct: Sql;

  private readonly busyTimeoutMs: number;

  constructor(
    readonly path: string,
    options: { synchronous?: "full" | "normal"; busyTimeoutMs?: number } = {},
  ) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.description = "sqlite:" + path + (options.synchronous === "normal" ? " (synchronous=normal)" : "");
    this.busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    // timeout 0: never let SQLite's busy handler sleep on this thread (see above).
    this.db = new BetterSqlite3(path, { timeout: 0 });
    // WAL: readers never block the writer. synchronous=FULL (default): a
    // commit that returned is on disk, so an accepted code's step survives
    // power loss. `?synchronous=normal` skips the per-commit fsync (faster;
    // a power cut may forget the last commits: a code accepted just before
    // it could be accepted once more within its window). A process crash
    // loses nothing either way.
    this.retrying(() => this.db.pragma("journal_mode = WAL"), "open", true);
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

  // Outside a transaction: a statement that meets another process's lock is retried on a timer.
  all<T>(sql: string, params?: unknown[]): Promise<T[]> {
    return this.retryAsync(() => this.direct.all<T>(sql, params), "read");
  }
  get<T>(sql: string, params?: unknown[]): Promise<T | undefined> {
    return this.retryAsync(() => this.direct.get<T>(sql, params), "read");
  }
  run(sql: string, params?: unknown[]): Promise<number> {
    return this.retryAsync(() => this.direct.run(sql, params), "write");
  }

  /** Runs fn until it does not meet SQLITE_BUSY, waiting on timers, at most busyTimeoutMs. */
  private async retryAsync<T>(fn: () => Promise<T>, where: string): Promise<T> {
    const start = Date.now();
    for (let pause = 1; ; pause = Math.min(pause * 2, MAX_BACKOFF_MS)) {
      try {
        return await fn();
      } catch (e) {
        if (!isBusy(e)) throw e;
        const waited = Date.now() - start;
        if (waited >= this.busyTimeoutMs) throw new DatabaseBusyError(waited, `${this.path} (${where})`);
        await sleep(pause);
      }
    }
  }

  /** The constructor's few statements (no event loop to yield to yet): a short synchronous retry. */
  private retrying<T>(fn: () => T, where: string, sync: true): T {
    const start = Date.now();
    for (;;) {
      try {
        return fn();
      } catch (e) {
        if (!isBusy(e) || !sync || Date.now() - start >= this.busyTimeoutMs) throw e;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
      }
    }
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
        await this.retryAsync(async () => this.db.exec("BEGIN IMMEDIATE"), "write lock");
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
        // In WAL mode a COMMIT does not wait for readers; a BUSY here is retried like the BEGIN.
        await this.retryAsync(async () => this.db.exec("COMMIT"), "commit");
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
