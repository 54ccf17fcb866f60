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
 * (PostgreSQL restarting, a backend terminated, the network): a RegistryError
 * of kind "unavailable", so the API answers 503 with Retry-After and the CLI
 * exits 3. A statement the connection dropped under may or may not have
 * committed; retrying is safe for every decision: a code that did commit
 * answers "replayed" the second time, so it is never accepted twice, and
 * the audit holds one record for the one decision that was made.
 */
export class DatabaseUnavailableError extends RegistryError {
  constructor(where: string, cause: unknown) {
    const why = (cause as { code?: string; message?: string })?.code ?? (cause as Error)?.message ?? String(cause);
    super("database_unavailable", `the database ${where} is unavailable (${why}); retry shortly`, "unavailable", { retryable: true });
    this.name = "DatabaseUnavailableError";
  }
}

/** SQLSTATE classes and socket errors that mean the connection, not the statement, failed. */
export function connectionFailure(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  const message = String((e as Error)?.message ?? "");
  if (typeof code === "string") {
    if (/^08/.test(code)) return true; // connection_exception
    if (["57P01", "57P02", "57P03", "53300"].includes(code)) return true; // admin/crash shutdown, cannot connect now, too many connections
    if (["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH"].includes(code)) return true;
  }
  return /Connection terminated|connection error and is not queryable|Client was closed and is not queryable/.test(message);
}
