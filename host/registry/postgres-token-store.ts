/**
 * PostgreSQL's TokenStore: one round trip per decision, or less (issue 14, item 2).
 *
 * A verification needs the token's seed to compute codes, and the seed is
 * sealed under a key the database never holds (key-ring.ts), so the HMACs
 * run in this process and no statement can both read the seed and decide.
 * The transaction the registry used (BEGIN; SELECT ... FOR UPDATE; decide;
 * UPDATE + INSERT; COMMIT) cost four round trips and held a row lock and a
 * pooled connection across all four. Instead:
 *
 * 1. The decision is made from a copy of the row: this process keeps the
 *    rows it has read or written (sealed seed included, never an opened
 *    one), at most MAX_CACHED, least recently used dropped first. A row not
 *    held is read first (a plain SELECT, no transaction, no lock; the reads
 *    of one event-loop turn share one SELECT ... = ANY).
 * 2. The decision is applied by ONE autocommitted statement, a
 *    compare-and-set: an UPDATE whose WHERE compares every column the
 *    decision read (DECISION_COLUMNS) with the copy, the audit INSERT joined
 *    to what the UPDATE returned (written if and only if the change is),
 *    and the row as the statement found it. A refusal that changes no row
 *    inserts its audit record only if the row still holds the values it was
 *    refused on. Under READ COMMITTED a concurrent committed change makes
 *    the UPDATE re-check its WHERE on the newest row version (PostgreSQL
 *    docs §13.2.1), so of 50 copies of one code exactly one UPDATE matches,
 *    and the 49 others see last_step moved. The decisions made in one
 *    event-loop turn share that statement (applyBatch, Coalescer: PostgreSQL's parse,
 *    plan and WAL flush shared, like SQLite's group commit), so under load
 *    a verification costs a fraction of a round trip.
 * 3. If nothing matched (another decision or process changed the row since
 *    the copy was taken), the decision is made again from the row as it is
 *    now, and applied the same way; after MAX_ATTEMPTS a transaction with
 *    FOR UPDATE decides instead, so a hot row cannot starve anyone.
 *
 * A decision is a pure function of the compared columns, the code and the
 * clock, so applying it to a row that went through other states and came
 * back to the same values is still the right decision. Cost, one at a time:
 * one round trip per decision on a row this process holds (a customer
 * verifying again, a token it issued or activated), two on a row it has not
 * read or that another process changed since (several server processes: a
 * load balancer that sends a customer to the same process keeps it at one);
 * less under load, when batches form. The bench prints the counts.
 *
 * Decisions on two rows (issue: the customer's other token) use the
 * transaction (SqlTokenStore.decideLocked).
 *
 * Errors: a statement that fails (connection lost, server restarting) is
 * not retried here, since a statement sent may or may not have committed.
 * It surfaces as PostgresDatabase's DatabaseUnavailableError (HTTP 503 with
 * Retry-After); a client that retries with the same code gets "replayed" if
 * the first one did commit, so no code is accepted twice.
 */
import type { PostgresDatabase } from "./postgres-database.js";
import type { KeyRing } from "./key-ring.js";
import { SqlTokenStore } from "./sql-token-store.js";
import { AUDIT_COLUMNS, DECISION_COLUMNS, LIVE, LIVE_STATES_SQL, ROW_COLUMNS, ROW_SELECT, auditValues, type AuditEntry, type DecideOptions, type Decide, type Decision, type TokenKey, type TokenRow } from "./token-store.js";
import { RegistryError, type Actor } from "./types.js";

/** Rows kept per process: ~1 KB each with the JS object overhead. */
export const MAX_CACHED = 50_000;
/** Compare-and-set tries before deciding under a row lock instead. */
const MAX_ATTEMPTS = 4;

const keyName = (key: TokenKey) => ("serial" in key ? "s\0" + key.serial : "c\0" + key.customer);

/**
 * The store's two batchers (reads; decisions): `flush` sends what is
 * waiting as one statement, once per event-loop turn (setImmediate), and
 * at most IN_FLIGHT statements at a time: what is asked for while they run
 * waits and goes out together in the next (group commit). Without the
 * bound, 32 requests in flight became ~2,000 statements a second of 1 to 8
 * decisions each, each a wake-up of a backend, a commit and a WAL flush
 * (bench --http: most batches held one decision).
 */
class Coalescer {
  private scheduled = false;
  /** Statements of `flush` sent and not yet answered. */
  private running = 0;

  constructor(private readonly waiting: () => boolean, private readonly flush: () => Promise<void>) {}

  schedule(): void {
    if (this.scheduled || this.running >= IN_FLIGHT || !this.waiting()) return;
    this.scheduled = true;
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    this.scheduled = false;
    this.running++;
    try {
      await this.flush();
    } finally {
      this.running--;
      this.schedule();
    }
  }
}

export class PostgresTokenStore extends SqlTokenStore {
  private readonly rows = new Map<string, TokenRow>();

  constructor(private readonly pg: PostgresDatabase, keys: KeyRing, now: () => number) {
    super(pg, keys, now);
  }

  override async decide<T>(key: TokenKey, actor: Actor, decide: Decide<T>, options: DecideOptions = {}): Promise<T> {
    // Two rows, a change beyond the batch's fixed columns (a soft token's set-up writes its seed), or statements that must commit with the decision: under the row lock, in a transaction.
    if (options.holderOf !== undefined || options.locked || options.within) return this.decideLocked(key, actor, decide, options);
    let held = this.rows.get(keyName(key));
    let row: TokenRow | undefined;
    if (held) {
      row = held;
    } else {
      row = await this.read(key);
    }
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      let d: Decision<T>;
      try {
        d = decide(row, undefined);
      } catch (e) {
        // A copy whose seed no longer opens (its key was pruned from the key file after a re-seal): read it again.
        if (held && !(e instanceof RegistryError)) {
          this.forget(key);
          held = undefined;
          row = await this.read(key);
          continue;
        }
        throw e;
      }
      held = undefined;
      if (!d.change && d.audit.length === 0) {
        if (d.outcome instanceof RegistryError) throw d.outcome;
        return d.outcome;
      }
      let current: TokenRow | undefined;
      if (row) {
        const r = await this.apply(row, actor, d);
        if (r.applied) {
          this.changed(key, row, d, r.next);
          if (d.outcome instanceof RegistryError) throw d.outcome;
          return d.outcome;
        }
        // The row as it is now; by customer, only if it is still that customer's live token.
        current = r.retry ? await this.read(key) : r.current;
        if (current && "customer" in key && (current.customer !== key.customer || !LIVE_STATE_NAMES.includes(current.state))) current = await this.read(key);
      } else {
        this.trips++;
        const r = await this.db.get<TokenRow & { applied: number }>(...this.statement(key, row, actor, d));
        if (r && r.applied > 0) {
          if (d.outcome instanceof RegistryError) throw d.outcome;
          return d.outcome;
        }
        current = r && r.serial !== null ? strip(r) : undefined;
      }
      this.remember(key, current);
      row = current;
    }
    return this.decideLocked(key, actor, decide);
  }

  /**
   * Decisions on rows this process holds, coalesced like the reads: the
   * decisions made while the event loop runs one turn are applied by one
   * statement, one compare-and-set per decision (UPDATE ... FROM the list),
   * and commit together: PostgreSQL's parse, plan and WAL flush are shared
   * by the batch, as SQLite's group commit shares its fsync. Two decisions
   * on one row in a batch: the UPDATE changes the row once, from one of
   * them (PostgreSQL docs, UPDATE: "only one of the join rows will be used
   * to update the target row"), so the other matches nothing and is decided
   * again on the row this statement returns. A decision that changes
   * nothing (a refusal) matches if the row still holds what it was refused
   * on. Audit records are inserted for the matched decisions only, in the
   * order the decisions made them (ORDER BY: a join does not keep it).
   */
  private queued: { row: TokenRow; actor: Actor; d: Decision<unknown>; next?: TokenRow; resolve(r: Applied): void; reject(e: unknown): void }[] = [];
  private readonly applies = new Coalescer(() => this.queued.length > 0, () => this.applyBatch(this.queued.splice(0, MAX_BATCH)));

  private apply(row: TokenRow, actor: Actor, d: Decision<unknown>): Promise<Applied> {
    return new Promise((resolve, reject) => {
      this.queued.push({ row, actor, d, resolve, reject });
      this.applies.schedule();
    });
  }

  private async applyBatch(batch: PostgresTokenStore["queued"]): Promise<void> {
    // Decisions beyond MAX_BATCH: the next statement, beside this one.
    this.applies.schedule();
    // One array of a row type per list (migration 14): the statement's text is the same for every batch, so each
    // pooled connection parses and plans it once (a named statement with a generic plan, PostgresDatabase.generic)
    // and then only binds the two arrays.
    // Everything after this point rejects the batch's callers if it throws: a throw escaping a batch would leave
    // them waiting for ever and reach the Coalescer as an unhandled rejection.
    try {
      const input: string[] = [];
      const audit: string[] = [];
      const at = this.now();
      let n = 0;
      batch.forEach((b, i) => {
        const { row, actor, d } = b;
        // The row the decision makes, built once: the literal below, madeHere and the store's copy (changed) share it.
        const next = (b.next = d.change ? { ...row, ...d.change } : row);
        // In the order of batch_decision's and batch_audit's attributes (migration 14): a change to DECISION_COLUMNS,
        // CHANGE_COLUMNS or AUDIT_COLUMNS needs a migration that changes those types (else every batch fails:
        // "malformed record literal").
        input.push(rowLiteral([i, row.serial, ...DECISION_COLUMNS.map((c) => row[c] ?? null), d.change !== undefined, ...CHANGE_COLUMNS.map((c) => next[c] ?? null)]));
        for (const e of d.audit) audit.push(rowLiteral([n++, i, ...auditValues(at, actor, e)]));
      });
      this.trips++;
      const rows = await this.pg.generic.all<TokenRow & { batch_i: number; applied: boolean }>(APPLY_SQL, [`{${input.join(",")}}`, `{${audit.join(",")}}`]);
      const out = new Map(rows.map((r) => [r.batch_i, r]));
      // The returned rows are the statement's snapshot, from before its own changes: a row this batch changed is what the applied decision made it.
      const madeHere = new Map<string, TokenRow>();
      batch.forEach((b, i) => {
        if (out.get(i)?.applied === true && b.d.change) madeHere.set(b.row.serial, b.next!);
      });
      batch.forEach((b, i) => {
        const r = out.get(i);
        if (r?.applied === true) return b.resolve({ applied: true, next: b.next });
        b.resolve({ applied: false, current: madeHere.get(b.row.serial) ?? (r && r.serial !== null ? strip(r) : undefined) });
      });
    } catch (e) {
      // A deadlock with a transaction holding two rows (issue) rolled the whole statement back: every decision is made again.
      const code = (e as { code?: string })?.code;
      if (code === "40P01" || code === "40001") for (const b of batch) b.resolve({ applied: false, retry: true });
      else for (const b of batch) b.reject(e);
    }
  }

  /**
   * Reads of rows this process does not hold, coalesced: the reads asked for
   * while the event loop runs one turn go out as one statement
   * (`= ANY(?)`), so under load a first contact costs a fraction of a round
   * trip for its read (the DataLoader pattern).
   */
  private pending = new Map<string, { key: TokenKey; waiters: { resolve(r: TokenRow | undefined): void; reject(e: unknown): void }[] }>();
  private readonly reads = new Coalescer(() => this.pending.size > 0, () => {
    const batch = [...this.pending.values()];
    this.pending.clear();
    return this.readBatch(batch);
  });

  private read(key: TokenKey): Promise<TokenRow | undefined> {
    return new Promise((resolve, reject) => {
      const k = keyName(key);
      let p = this.pending.get(k);
      if (!p) this.pending.set(k, (p = { key, waiters: [] }));
      p.waiters.push({ resolve, reject });
      this.reads.schedule();
    });
  }

  private async readBatch(batch: { key: TokenKey; waiters: { resolve(r: TokenRow | undefined): void; reject(e: unknown): void }[] }[]): Promise<void> {
    try {
      const customers = batch.flatMap((b) => ("customer" in b.key ? [b.key.customer] : []));
      const serials = batch.flatMap((b) => ("serial" in b.key ? [b.key.serial] : []));
      const byKey = new Map<string, TokenRow>();
      if (customers.length) {
        this.trips++;
        for (const r of await this.pg.generic.all<TokenRow>(`SELECT ${ROW_SELECT} FROM tokens WHERE customer = ANY(?) AND state IN ${LIVE_STATES_SQL}`, [customers])) byKey.set(keyName({ customer: r.customer! }), r);
      }
      if (serials.length) {
        this.trips++;
        for (const r of await this.pg.generic.all<TokenRow>(`SELECT ${ROW_SELECT} FROM tokens WHERE serial = ANY(?) AND ${LIVE}`, [serials])) byKey.set(keyName({ serial: r.serial }), r);
      }
      for (const b of batch) {
        const row = byKey.get(keyName(b.key));
        this.remember(b.key, row);
        for (const w of b.waiters) w.resolve(row);
      }
    } catch (e) {
      for (const b of batch) for (const w of b.waiters) w.reject(e);
    }
  }

  /**
   * The one statement: compare-and-set of the change (or of nothing, for a
   * refusal), the audit records if and only if it matched, and the row as
   * this statement's snapshot saw it, for deciding again.
   */
  private statement<T>(key: TokenKey, row: TokenRow | undefined, actor: Actor, d: Decision<T>): [string, unknown[]] {
    const params: unknown[] = [];
    let matched: string;
    if (row) {
      const cas = DECISION_COLUMNS.map((c) => `${c} IS NOT DISTINCT FROM ?`).join(" AND ");
      const casParams = DECISION_COLUMNS.map((c) => row[c] ?? null);
      if (d.change) {
        const cols = Object.keys(d.change) as (keyof typeof d.change)[];
        matched = `UPDATE tokens SET ${cols.map((c) => `${c} = ?`).join(", ")} WHERE serial = ? AND ${cas} RETURNING serial`;
        params.push(...cols.map((c) => d.change![c] ?? null), row.serial, ...casParams);
      } else {
        matched = `SELECT serial FROM tokens WHERE serial = ? AND ${cas}`;
        params.push(row.serial, ...casParams);
      }
    } else {
      if (d.change) throw new Error("a decision changed a token it did not read");
      // Refused for want of a token: only if there still is none.
      matched = "serial" in key
        ? `SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM tokens WHERE serial = ? AND ${LIVE})`
        : `SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM tokens WHERE customer = ? AND state IN ${LIVE_STATES_SQL})`;
      params.push("serial" in key ? key.serial : key.customer);
    }
    const at = this.now();
    const audit = d.audit.map((e: AuditEntry) => {
      params.push(...auditValues(at, actor, e));
      return AUDIT_SELECT;
    });
    const auditCte = audit.length ? `, audited AS (INSERT INTO audit (${AUDIT_COLUMNS.join(", ")}) ${audit.join(" UNION ALL ")})` : "";
    const now = "serial" in key ? `t.serial = ? AND (t.staged IS NULL OR t.staged IN (SELECT id FROM import_batches WHERE state = 'committed'))` : `t.customer = ? AND t.state IN ${LIVE_STATES_SQL}`;
    params.push("serial" in key ? key.serial : key.customer);
    return [`WITH matched AS (${matched})${auditCte} SELECT (SELECT count(*) FROM matched)::int AS applied, ${ROW_COLUMNS.map((c) => `t.${c}`).join(", ")} FROM (SELECT 1) AS one LEFT JOIN tokens t ON ${now}`, params];
  }

  protected override changed<T>(key: TokenKey, row: TokenRow | undefined, d: Decision<T>, made?: TokenRow): void {
    if (!row) return;
    const next: TokenRow = made ?? (d.change ? { ...row, ...d.change } : row);
    const live = next.state === "issued" || next.state === "active" || next.state === "locked";
    // What a read by each key would now return.
    this.remember({ serial: next.serial }, next);
    if ("customer" in key && key.customer !== next.customer) this.forget(key);
    if (row.customer && (row.customer !== next.customer || !live)) this.forget({ customer: row.customer });
    if (next.customer && live) this.remember({ customer: next.customer }, next);
  }

  private remember(key: TokenKey, row: TokenRow | undefined): void {
    const k = keyName(key);
    this.rows.delete(k);
    if (!row) return;
    this.rows.set(k, row);
    if (this.rows.size > MAX_CACHED) this.rows.delete(this.rows.keys().next().value!);
  }

  private forget(key: TokenKey): void {
    this.rows.delete(keyName(key));
  }
}

function strip(r: TokenRow & { applied?: unknown; batch_i?: unknown }): TokenRow {
  const { applied: _a, batch_i: _b, ...row } = r;
  return row;
}

const LIVE_STATE_NAMES = ["issued", "active", "locked"];
/** What applying a decision came to: applied (with the row it made), or not, with the row as it is now, or to be read again. */
type Applied = { applied: boolean; next?: TokenRow; current?: TokenRow; retry?: boolean };
/** Batch statements of each kind (applies; reads) one process has in flight at most (Coalescer). */
const IN_FLIGHT = 2;
/** Decisions applied by one statement, at most. */
const MAX_BATCH = 256;
/** The columns a decision may change, all set from the row the decision made (unchanged ones to what the compare-and-set found). */
const CHANGE_COLUMNS = ["state", "customer", "issuance", "drift", "last_step", "clock_obs", "fail_count", "activated_at", "withdrawn", "updated_at"] as const;
const AUDIT_TYPES = ["bigint", "text", "text", "text", "text", "text", "text", "text", "text"];
/** One audit row of `statement` (a decision on a row this process does not hold), selected once per matched decision. */
const AUDIT_SELECT = `SELECT ${AUDIT_TYPES.map((t) => `?::${t}`).join(", ")} FROM matched`;

/**
 * One element of an array of a row type, as PostgreSQL's text input reads
 * it (docs §8.16.6 "Composite Type Input", §8.15.6 "Array Value Input"):
 * null is an empty field; every text is double-quoted with `"` and `\`
 * backslash-escaped, so a comma, parenthesis, brace, quote, backslash or
 * space in a serial or an audit detail stays inside its field; the row is
 * quoted and escaped the same way once more as the array's element. Both
 * levels are written in one pass: a text's quotes become `\"` and its `"`
 * and `\` become `\\\"` and `\\\\` (escaped for the row, then that
 * escaped again for the array).
 */
export function rowLiteral(values: readonly (string | number | boolean | null)[]): string {
  let out = '"(';
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    if (k > 0) out += ",";
    if (v === null) continue;
    if (typeof v !== "string") out += String(v);
    else out += '\\"' + (NEEDS_ESCAPE.test(v) ? v.replace(ESCAPED, "\\\\\\$&") : v) + '\\"';
  }
  return out + ')"';
}
const NEEDS_ESCAPE = /["\\]/;
const ESCAPED = /["\\]/g;

/**
 * applyBatch's statement: the decisions of a batch as one array of
 * batch_decision, the audit records as one of batch_audit (unnest), so its
 * text never changes with the batch's size.
 */
const APPLY_SQL = (() => {
  const cas = DECISION_COLUMNS.map((c) => `t.${c} IS NOT DISTINCT FROM input.e_${c}`).join(" AND ");
  return (
    `WITH input AS (SELECT * FROM unnest(?::batch_decision[]) AS input), ` +
    // Rows locked in serial order before any is changed, so two batches (two processes) never deadlock.
    `locked AS MATERIALIZED (SELECT serial FROM tokens WHERE serial IN (SELECT serial FROM input WHERE change) ORDER BY serial FOR UPDATE), ` +
    `changed AS (UPDATE tokens t SET ${CHANGE_COLUMNS.map((c) => `${c} = input.n_${c}`).join(", ")} FROM input JOIN locked l ON l.serial = input.serial WHERE input.change AND t.serial = input.serial AND ${cas} RETURNING input.i), ` +
    `kept AS (SELECT input.i FROM input JOIN tokens t ON t.serial = input.serial AND ${cas} WHERE NOT input.change), ` +
    `matched AS (SELECT i FROM changed UNION ALL SELECT i FROM kept), ` +
    `audited AS (INSERT INTO audit (${AUDIT_COLUMNS.join(", ")}) SELECT ${AUDIT_COLUMNS.map((c) => `a.${c}`).join(", ")} FROM unnest(?::batch_audit[]) AS a JOIN matched m ON m.i = a.i ORDER BY a.n) ` +
    `SELECT input.i AS batch_i, (m.i IS NOT NULL) AS applied, ${ROW_COLUMNS.map((c) => `t.${c}`).join(", ")} FROM input LEFT JOIN matched m ON m.i = input.i LEFT JOIN tokens t ON t.serial = input.serial AND m.i IS NULL`
  );
})();
