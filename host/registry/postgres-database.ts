/**
 * PostgreSQL through a pg Pool. Transactions run on one pooled client;
 * correctness across server processes comes from row locks (`forUpdate`)
 * taken inside them, never from anything held in this process.
 */
import { createHash } from "node:crypto";
import pg from "pg";
import { DatabaseUnavailableError, connectionFailure, type Database, type Sql } from "./database.js";

const INT8_OID = 20;

/** `?` placeholders to PostgreSQL's `$n` (our SQL has no `?` inside literals). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => "$" + ++n);
}

type Query = (q: { text: string; values: unknown[]; name?: string }) => Promise<{ rows: any[]; rowCount: number | null }>;

/**
 * Named (prepared) statements: PostgreSQL parses and plans a named statement
 * once per connection and then only binds and executes it; the registry's
 * few statement shapes are run thousands of times a second. Every statement
 * with parameters and a text of at most MAX_NAMED_LENGTH characters is
 * named, up to MAX_NAMED distinct texts per process (node-postgres keeps a
 * connection's prepared statements until it closes, and the server a plan
 * for each; longer texts, e.g. batches of many decisions or imports' IN
 * lists, run unnamed: their parse is shared by the rows they carry).
 */
const MAX_NAMED = 100;
const MAX_NAMED_LENGTH = 4000;
const names = new Map<string, string>();
function nameOf(text: string): string | undefined {
  let name = names.get(text);
  if (name === undefined && names.size < MAX_NAMED && text.length <= MAX_NAMED_LENGTH) names.set(text, (name = "fobkit_" + createHash("sha1").update(text).digest("hex").slice(0, 20)));
  return name;
}

function over(q: Query, where: string): Sql {
  const run = async (sql: string, params: unknown[]) => {
    const text = numbered(sql);
    const name = params.length ? nameOf(text) : undefined;
    try {
      return await q(name ? { text, values: params, name } : { text, values: params });
    } catch (e) {
      // A migration run by another process changed a table under a prepared SELECT *: nothing ran; run it unprepared.
      if (name && /cached plan must not change result type/.test(String((e as Error)?.message))) return q({ text, values: params });
      if (connectionFailure(e)) throw new DatabaseUnavailableError(where, e);
      throw e;
    }
  };
  return {
    all: async (sql, params = []) => (await run(sql, params)).rows,
    get: async (sql, params = []) => (await run(sql, params)).rows[0],
    run: async (sql, params = []) => (await run(sql, params)).rowCount ?? 0,
  };
}

export interface PostgresOptions {
  /** Schema to use (created by the first migration run if absent); tests use a fresh one each. */
  schema?: string;
  max?: number;
}

export class PostgresDatabase implements Database {
  readonly dialect = "postgres" as const;
  readonly forUpdate = " FOR UPDATE";
  readonly description: string;
  readonly schema?: string;
  private readonly pool: InstanceType<typeof pg.Pool>;
  private readonly direct: Sql;

  constructor(url: string, options: PostgresOptions = {}) {
    const u = new URL(url);
    const schema = options.schema ?? u.searchParams.get("schema") ?? undefined;
    u.searchParams.delete("schema");
    // ?synchronous_commit=off: commits return before their WAL is flushed
    // (PostgreSQL §30.4 "Asynchronous Commit"): a server crash may forget the
    // last ~0.6 s of commits, so a code accepted just before could be
    // accepted once more within its window. Off only by explicit choice.
    const syncCommit = u.searchParams.get("synchronous_commit");
    u.searchParams.delete("synchronous_commit");
    if (syncCommit !== null && !/^(on|off)$/.test(syncCommit)) throw new RangeError(`synchronous_commit must be on or off, got ${JSON.stringify(syncCommit)}`);
    if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
      throw new RangeError(`PostgreSQL schema name must match [a-z_][a-z0-9_]*, got ${JSON.stringify(schema)}`);
    }
    this.schema = schema;
    const shown = new URL(u.href);
    if (shown.password) shown.password = "***";
    this.description = shown.href + (schema ? ` (schema ${schema})` : "") + (syncCommit === "off" ? " (synchronous_commit=off)" : "");
    this.pool = new pg.Pool({
      connectionString: u.href,
      // Enough connections for the requests one process has in flight; PostgreSQL's
      // own group commit shares a WAL flush among the transactions committing together.
      max: options.max ?? 20,
      // Startup parameters: set before the first query on every pooled connection.
      options: [schema ? `-c search_path=${schema}` : "", syncCommit === "off" ? "-c synchronous_commit=off" : ""].filter(Boolean).join(" ") || undefined,
      // BIGINT columns hold steps and millisecond times, both far below 2^53.
      types: { getTypeParser: (oid, format) => (oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) },
    });
    // An idle client dying (server restart) must not crash the process.
    this.pool.on("error", () => undefined);
    this.direct = over((q) => this.pool.query(q), this.description);
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

  async tx<T>(fn: (t: Sql) => Promise<T>): Promise<T> {
    const client = await this.pool.connect().catch((e) => {
      throw connectionFailure(e) ? new DatabaseUnavailableError(this.description, e) : e;
    });
    try {
      await client.query("BEGIN");
      const value = await fn(over((q) => client.query(q), this.description));
      await client.query("COMMIT");
      client.release();
      return value;
    } catch (e) {
      try {
        await client.query("ROLLBACK");
        client.release();
      } catch {
        client.release(true);
      }
      if (!(e instanceof DatabaseUnavailableError) && connectionFailure(e)) throw new DatabaseUnavailableError(this.description, e);
      throw e;
    }
  }

  async script(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
