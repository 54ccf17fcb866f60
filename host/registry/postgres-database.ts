/**
 * PostgreSQL through a pg Pool. Transactions run on one pooled client;
 * correctness across server processes comes from row locks (`forUpdate`)
 * taken inside them, never from anything held in this process.
 *
 * Lost connections (a terminated backend, a restart, a failover) never
 * crash the process and never leave a transaction open: a pooled client
 * that dies while checked out emits 'error' with no query to fail (pg's
 * Client._handleErrorEvent), so every checkout listens for it, and a client
 * whose connection failed is destroyed, not returned to the pool. Such
 * failures surface as DatabaseUnavailableError: "none" when nothing was
 * done, "unknown" only when the connection died during COMMIT and the
 * database could not be asked afterwards (pg_xact_status) how it ended.
 */
import { createHash } from "node:crypto";
import pg, { type PoolClient, type PoolConfig, type QueryConfig, type QueryResult } from "pg";
import { DatabaseUnavailableError, connectionFailure, type Database, type Sql } from "./database.js";

const INT8_OID = 20;
/** Stands for the empty host of `postgres://user@/db?host=/socket/dir` while the URL is parsed. */
const NO_HOST = "fobkit-no-host.invalid";

/** `?` placeholders to PostgreSQL's `$n` (our SQL has no `?` inside literals). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => "$" + ++n);
}

/** The first line of a connection failure's message (for DatabaseUnavailableError), or undefined if `e` is not one. */
function connectionProblem(e: unknown): string | undefined {
  if (!connectionFailure(e)) return undefined;
  const err = e as { code?: unknown; message?: unknown };
  const message = typeof err?.message === "string" ? err.message.split("\n")[0] : "";
  return typeof err?.code === "string" && !message.includes(err.code) ? `${err.code}: ${message}` : message;
}

/** How long a transaction whose COMMIT lost its connection keeps asking how it ended. */
const COMMIT_CHECK_MS = 5000;
/** How long a request waits for a connection before it is told the database is unavailable. */
const CONNECT_TIMEOUT_MS = 5000;

type Query = (q: { text: string; values: unknown[]; name?: string }) => Promise<{ rows: any[]; rowCount: number | null }>;

/**
 * Named (prepared) statements: PostgreSQL parses and plans a named statement
 * once per connection and then only binds and executes it; the registry's
 * few statement shapes are run thousands of times a second. Every statement
 * with parameters and a text of at most MAX_NAMED_LENGTH characters is
 * named, up to MAX_NAMED distinct texts per process (node-postgres keeps a
 * connection's prepared statements until it closes, and the server a plan
 * for each; longer texts, e.g. imports' IN lists, run unnamed: their parse
 * is shared by the rows they carry). The token store's batches pass arrays,
 * so one text serves every batch size (postgres-token-store.ts, APPLY_SQL).
 */
const MAX_NAMED = 100;
const MAX_NAMED_LENGTH = 4000;
/**
 * More parameters than this: a list (`serial IN (?, ?, ...)`, an import's chunk), run unnamed so it is planned for the
 * table as it is at each call. Named, PostgreSQL keeps a generic plan from the 6th execution on (plancache.c
 * choose_custom_plan), made for the table as it was then, until a relcache invalidation (ANALYZE, DDL): an import's
 * 500-serial lookup planned while the table was small stayed a sequential scan as the table grew, 1-3 s per 500
 * serials at 145,000 tokens on a server with autovacuum off (seen in make bench: 633 sequential scans of tokens,
 * 44.5 million rows read, pg_stat_user_tables). A 500-placeholder text is ~3,400 characters, under MAX_NAMED_LENGTH.
 */
const MAX_NAMED_PARAMS = 64;
const names = new Map<string, string>();
function nameOf(text: string, params: number): string | undefined {
  if (params > MAX_NAMED_PARAMS) return undefined;
  let name = names.get(text);
  if (name === undefined && names.size < MAX_NAMED && text.length <= MAX_NAMED_LENGTH) names.set(text, (name = "fobkit_" + createHash("sha1").update(text).digest("hex").slice(0, 20)));
  return name;
}

/** numbered() of the texts that get a name: the batch statement is ~2,000 characters, rewritten on every call before. */
const numberedTexts = new Map<string, string>();

function over(q: Query): Sql {
  const run = async (sql: string, params: unknown[]) => {
    let text = numberedTexts.get(sql);
    if (text === undefined) {
      text = numbered(sql);
      if (params.length && nameOf(text, params.length) !== undefined) numberedTexts.set(sql, text);
    }
    const name = params.length ? nameOf(text, params.length) : undefined;
    try {
      return await q(name ? { text, values: params, name } : { text, values: params });
    } catch (e) {
      // A migration run by another process changed a table under a prepared SELECT *: nothing ran; run it unprepared.
      if (name && /cached plan must not change result type/.test(String((e as Error)?.message))) return q({ text, values: params });
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
  /**
   * false: `generic` runs on the main pool, its statements planned as any
   * other (PostgreSQL's default, plan_cache_mode=auto). Only the bench sets
   * it, to measure what the generic plans save (bench-bank.ts --one-at-a-time).
   */
  genericPlans?: boolean;
}

/**
 * Connections of the `generic` pool. The token store has at most
 * IN_FLIGHT (2) apply and 2 read statements out at a time per store
 * (postgres-token-store.ts Coalescer), so 4 serve one store without
 * waiting; more stores on one database (bench, tests) wait their turn.
 */
const GENERIC_MAX = 4;

export class PostgresDatabase implements Database {
  readonly dialect = "postgres" as const;
  readonly forUpdate = " FOR UPDATE";
  readonly description: string;
  readonly schema?: string;
  private readonly pool: InstanceType<typeof pg.Pool>;
  private readonly direct: Sql;
  /** The pool of `generic`, or the main pool when genericPlans is false. */
  private readonly genericPool: InstanceType<typeof pg.Pool>;
  /**
   * Statements PostgreSQL should plan once per connection and then only
   * execute: the token store's decision and read statements (arrays of any
   * length, postgres-token-store.ts). They run on their own small pool whose
   * connections start with plan_cache_mode=force_generic_plan. Why: a named
   * statement is planned for its parameters (a custom plan) for its first 5
   * executions, then the generic plan is used only if its estimated cost is
   * no higher than the custom plans' average (PostgreSQL docs, PREPARE,
   * "Notes"; plancache.c choose_custom_plan). unnest() over an array
   * parameter is estimated at 100 rows in a generic plan and at the array's
   * true length in a custom one, so the generic plan of the decision
   * statement always looks dearer and PostgreSQL planned it again on every
   * call: 0.4-0.6 ms of planning for 0.1-0.2 ms of execution, measured with
   * EXPLAIN (ANALYZE, SUMMARY) (bench-bank.ts --one-at-a-time prints both).
   * Its generic plan is index scans on tokens_pkey throughout (checked at
   * 120,000 tokens). Forced for these statements only: a generic plan of
   * the console's `LIKE ?` searches could not use an index.
   */
  readonly generic: Sql;

  constructor(url: string, options: PostgresOptions = {}) {
    // A Unix socket: `postgres:///db?host=/var/run/postgresql&user=u`, or `postgres://u@/db?host=...`
    // (libpq's form; WHATWG URL rejects a user without a host, node-postgres accepts it: pg-connection-string index.js:26-31).
    const noHost = /^postgres(ql)?:\/\/[^/@]*@\//.test(url);
    const u = new URL(noHost ? url.replace("@/", "@" + NO_HOST + "/") : url);
    const href = (x: URL) => (noHost ? x.href.replace("@" + NO_HOST + "/", "@/") : x.href);
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
    this.description = href(shown) + (schema ? ` (schema ${schema})` : "") + (syncCommit === "off" ? " (synchronous_commit=off)" : "");
    const settings = [schema ? `-c search_path=${schema}` : "", syncCommit === "off" ? "-c synchronous_commit=off" : ""].filter(Boolean);
    const poolConfig = (max: number, extra: string[] = []): PoolConfig => ({
      connectionString: href(u),
      // Enough connections for the requests one process has in flight; PostgreSQL's
      // own group commit shares a WAL flush among the transactions committing together.
      max,
      // Never wait forever for a server that accepts connections but does not answer.
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      // Which process a backend serves, in pg_stat_activity (the bench sums those backends' CPU).
      application_name: `fobkit ${process.pid}`,
      // Startup parameters: set before the first query on every pooled connection.
      options: [...settings, ...extra].join(" ") || undefined,
      // BIGINT columns hold steps and millisecond times, both far below 2^53.
      types: { getTypeParser: (oid, format) => (oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) },
    });
    this.pool = new pg.Pool(poolConfig(options.max ?? 20));
    this.genericPool = options.genericPlans === false ? this.pool : new pg.Pool(poolConfig(GENERIC_MAX, ["-c plan_cache_mode=force_generic_plan"]));
    // An idle client dying (server restart) must not crash the process; the pool drops it.
    this.pool.on("error", () => undefined);
    this.genericPool.on("error", () => undefined);
    this.direct = over((c) => this.query(c));
    this.generic = over((c) => this.query(c, this.genericPool));
  }

  /** A pooled client, listening for the 'error' a dying connection emits while it is checked out. */
  private async checkout(pool = this.pool): Promise<{ client: PoolClient; lost: () => unknown; release(destroy: boolean): void }> {
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (e) {
      throw new DatabaseUnavailableError(this.description, connectionProblem(e) ?? (e as Error).message);
    }
    let lost: unknown;
    const onError = (e: unknown) => (lost ??= e);
    client.on("error", onError);
    return {
      client,
      lost: () => lost,
      release: (destroy) => {
        // A destroyed client keeps the listener: its socket may still report errors while it closes.
        if (!destroy) client.off("error", onError);
        client.release(destroy || undefined);
      },
    };
  }

  /** One statement outside a transaction (autocommit). */
  private async query(config: QueryConfig, pool = this.pool): Promise<QueryResult> {
    const c = await this.checkout(pool);
    try {
      const r = await c.client.query(config);
      c.release(false);
      return r;
    } catch (e) {
      const problem = connectionProblem(c.lost() ?? e) ?? (c.lost() ? String((c.lost() as Error).message) : undefined);
      c.release(!!problem);
      if (!problem) throw e;
      // Sent, then the connection died: an autocommitted write may have committed.
      throw new DatabaseUnavailableError(this.description, problem, "unknown");
    }
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
    const c = await this.checkout();
    const { client } = c;
    let xid: string | undefined;
    let started: string | undefined;
    let committing = false;
    let value: T | undefined;
    try {
      // The transaction's id and the server's start time in the same round trip as BEGIN: if COMMIT loses its
      // connection, pg_xact_status on the same server instance tells how it ended.
      const begun = (await client.query("BEGIN; SELECT pg_current_xact_id()::text AS xid, pg_postmaster_start_time()::text AS started")) as unknown as QueryResult[];
      xid = begun[1].rows[0].xid;
      started = begun[1].rows[0].started;
      value = await fn(over((q) => client.query(q)));
      // A client already known dead does not send COMMIT (pg rejects the query at once): nothing committed.
      committing = c.lost() === undefined;
      await client.query("COMMIT");
      c.release(false);
      return value;
    } catch (e) {
      const problem = connectionProblem(c.lost() ?? e) ?? (c.lost() ? String((c.lost() as Error).message) : undefined);
      if (!problem) {
        try {
          await client.query("ROLLBACK");
          c.release(false);
        } catch {
          c.release(true);
        }
        throw e;
      }
      // The connection is gone: PostgreSQL rolls back whatever had not committed.
      c.release(true);
      if (!committing || xid === undefined || started === undefined) throw new DatabaseUnavailableError(this.description, problem);
      // It did commit: the decision stands, and the caller gets it.
      if (await this.committed(xid, started)) return value as T;
      throw new DatabaseUnavailableError(this.description, problem);
    }
  }

  /**
   * After COMMIT lost its connection: did transaction `xid` commit? Asks on
   * a fresh connection until the database answers, for up to
   * COMMIT_CHECK_MS; DatabaseUnavailableError "unknown" if it never does.
   * Only the server instance that ran the transaction can say: after a
   * crash or a failover another transaction may carry the same xid (an xid
   * whose WAL was never flushed or replicated is handed out again), so if
   * pg_postmaster_start_time changed the answer is "unknown".
   */
  private async committed(xid: string, started: string): Promise<boolean> {
    const deadline = Date.now() + COMMIT_CHECK_MS;
    let problem = "no answer";
    for (;;) {
      try {
        const r = await this.pool.query("SELECT pg_xact_status($1::xid8) AS s, pg_postmaster_start_time()::text AS started", [xid]);
        if (r.rows[0]?.started !== started) throw new DatabaseUnavailableError(this.description, "the database server restarted or failed over while the transaction committed", "unknown");
        const s = r.rows[0]?.s;
        if (s === "committed") return true;
        if (s === "aborted") return false;
        // "in progress": the dying backend has not finished aborting; NULL: too old to tell (not after seconds).
        problem = `transaction ${s ?? "status unknown"}`;
      } catch (e) {
        if (e instanceof DatabaseUnavailableError && e.outcome === "unknown") throw e;
        problem = connectionProblem(e) ?? (e as Error).message;
      }
      if (Date.now() >= deadline) throw new DatabaseUnavailableError(this.description, problem, "unknown");
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async script(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  /**
   * Fresh statistics for a table after a bulk change, as PostgreSQL's manual asks ("Populating a Database", run
   * ANALYZE afterwards): the planner's row counts, and a relcache invalidation that makes every connection's cached
   * plans on the table be planned again (plancache.c PlanCacheRelCallback), whether or not the server runs autovacuum.
   */
  async analyze(table: string): Promise<void> {
    if (!/^[a-z_][a-z0-9_]*$/.test(table)) throw new RangeError(`not a table name: ${JSON.stringify(table)}`);
    await this.pool.query(`ANALYZE ${table}`);
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.end(), this.genericPool !== this.pool ? this.genericPool.end() : undefined]);
  }
}
