/**
 * The storage boundary: the two SQL engines behind one small async shape.
 * SQL is written once with `?` placeholders; where the dialects differ
 * (row locks, DDL) the caller asks `dialect` and says so explicitly.
 */
import { RegistryError } from "./types.js";

export type Dialect = "sqlite" | "postgres";

/** A connection, or a transaction on one. Values: string, number, Buffer, null. */
export interface Sql {
  all<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  get<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T | undefined>;
  /** Returns the number of rows changed. */
  run(sql: string, params?: unknown[]): Promise<number>;
}

export interface Database extends Sql {
  readonly dialect: Dialect;
  /** Where it lives, with any password removed (for messages). */
  readonly description: string;
  /**
   * Runs fn in one transaction, committed when fn resolves, rolled back when
   * it throws. SQLite: BEGIN IMMEDIATE (the write lock is taken up front, so
   * two processes on one file serialise instead of deadlocking on upgrade).
   * PostgreSQL: READ COMMITTED plus `forUpdate` on the rows read for change.
   */
  tx<T>(fn: (t: Sql) => Promise<T>): Promise<T>;
  /** " FOR UPDATE" on PostgreSQL, "" on SQLite (whose transaction already holds the write lock). */
  readonly forUpdate: string;
  /** Runs a multi-statement DDL script (migrations). */
  script(sql: string): Promise<void>;
  /** After a bulk change to `table`: fresh planner statistics, where the engine keeps plans by them (PostgreSQL). */
  analyze?(table: string): Promise<void>;
  close(): Promise<void>;
}

/** What a unique-constraint violation looked like, whichever engine raised it. */
export function uniqueViolation(e: unknown): { constraint: string } | undefined {
  const err = e as { code?: string; constraint?: string; message?: string };
  if (err && err.code === "23505") return { constraint: err.constraint ?? "" };
  if (err && typeof err.code === "string" && err.code.startsWith("SQLITE_CONSTRAINT") && /UNIQUE|PRIMARYKEY/.test(err.code)) {
    // better-sqlite3: "UNIQUE constraint failed: tokens.serial" / index name not given for columns
    return { constraint: err.message ?? "" };
  }
  return undefined;
}

/**
 * A write refused because it sealed under a key-encryption key the database
 * records as retired or pruned (migration 3's triggers): the writer's key
 * file is older than the rotation; re-read it and seal again.
 */
export function kekRetired(e: unknown): boolean {
  return typeof (e as { message?: unknown })?.message === "string" && (e as Error).message.includes("kek_retired");
}

/**
 * The database stayed locked by another program (SQLite: another process's
 * write transaction) for longer than this process waits. Nothing was done;
 * the caller may retry (HTTP 503 with Retry-After, CLI exit 3).
 */
export class DatabaseBusyError extends Error {
  constructor(
    readonly waitedMs: number,
    readonly where: string,
  ) {
    super(`the database ${where} stayed locked by another program for ${waitedMs} ms; nothing was done, try again`);
    this.name = "DatabaseBusyError";
  }
}

/**
 * The database server could not be reached, or dropped the connection
 * (PostgreSQL restarting or failing over, a backend terminated, the
 * network): a RegistryError of kind "unavailable", so the API answers 503
 * with Retry-After and the CLI exits 3. `outcome`: "none" when nothing was
 * done (the connection failed before the change committed, or the database
 * confirmed the transaction aborted): code database_unavailable, retry.
 * "unknown" when the connection was lost while a change was committing and
 * the database could not say afterwards how it ended: code outcome_unknown;
 * a retried verification then answers "replayed" if the first was accepted.
 */
export class DatabaseUnavailableError extends RegistryError {
  constructor(
    where: string,
    cause: unknown,
    readonly outcome: "none" | "unknown" = "none",
  ) {
    const why = (cause as { code?: string; message?: string })?.code ?? (cause as Error)?.message ?? String(cause);
    super(
      outcome === "none" ? "database_unavailable" : "outcome_unknown",
      outcome === "none"
        ? `the database ${where} is unavailable (${why}); nothing was done, retry shortly`
        : `the connection to the database ${where} was lost while the change was committing (${why}); it may or may not have been made: check before doing it again`,
      "unavailable",
      { retryable: true, outcome },
    );
    this.name = "DatabaseUnavailableError";
  }
}

/**
 * SQLSTATEs and socket errors that mean the connection, not the statement,
 * failed: class 08 (connection exception), 57P01-57P03 (admin shutdown,
 * crash shutdown, cannot connect now) and 53300 (too many connections),
 * from PostgreSQL's Appendix A; and pg's own messages for a connection that
 * ended (pg/lib/client.js: "Connection terminated unexpectedly", "Client
 * has encountered a connection error and is not queryable"; pg-pool:
 * "timeout exceeded when trying to connect").
 */
export function connectionFailure(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  const message = String((e as Error)?.message ?? "");
  if (typeof code === "string") {
    if (/^08/.test(code)) return true;
    if (["57P01", "57P02", "57P03", "53300"].includes(code)) return true;
    if (["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"].includes(code)) return true;
  }
  return /Connection terminated|not queryable|timeout exceeded when trying to connect/.test(message);
}

/**
 * The database's clock, unix milliseconds, as an SQL expression: what times
 * compared across processes are written and judged by (an import's heartbeat
 * and its staleness, the set-up rate limit's windows). Why not the process's
 * clock: on one PostgreSQL, hosts' clocks differ, and a host whose clock runs
 * ahead took a live import on another host for dead, and reset or swept rate
 * windows early; one clock for every writer and judge leaves no skew to
 * mind. PostgreSQL: statement_timestamp(), the same within one statement
 * (src/backend/utils/adt/timestamp.c statement_timestamp, which returns
 * xact.c's GetCurrentStatementStartTimestamp).
 * SQLite: its 'now', the machine's clock (every process on a SQLite file is
 * on one machine), the same within one statement (src/date.c
 * setDateTimeToCurrent, via sqlite3StmtCurrentTime in vdbeapi.c).
 */
export function clockSql(dialect: Dialect): string {
  return dialect === "postgres"
    ? "CAST(FLOOR(EXTRACT(EPOCH FROM statement_timestamp()) * 1000) AS BIGINT)"
    : "CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)";
}
