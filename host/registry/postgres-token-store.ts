/**
 * PostgreSQL's TokenStore: one round trip per decision (issue 14, item 2).
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
 *    held is read first (one plain SELECT, no transaction, no lock).
 * 2. The decision is applied by ONE autocommitted statement: an UPDATE whose
 *    WHERE compares every column the decision read (DECISION_COLUMNS) with
 *    the copy (compare-and-set), the audit INSERT reading the UPDATE's
 *    RETURNING (so it is written if and only if the change is), and a final
 *    SELECT of the row as it is now. A refusal that changes no row inserts
 *    its audit record only if the row still holds the values it was refused
 *    on. Under READ COMMITTED a concurrent committed change makes the
 *    UPDATE re-check its WHERE on the newest row version (PostgreSQL docs
 *    §13.2.1), so of 50 copies of one code exactly one UPDATE matches, and
 *    the 49 others see last_step moved.
 * 3. If nothing matched (another process changed the row since the copy was
 *    taken), the decision is made again from the row that statement
 *    returned, and applied the same way; after MAX_ATTEMPTS a transaction
 *    with FOR UPDATE decides instead, so a hot row cannot starve anyone.
 *
 * A decision is a pure function of the compared columns, the code and the
 * clock, so applying it to a row that went through other states and came
 * back to the same values is still the right decision. Cost: one round trip
 * per decision on a row this process holds (a customer verifying again, a
 * token it issued or activated), two on a row it has not read or that
 * another process changed since; the bench prints the count.
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
import { DECISION_COLUMNS, LIVE, LIVE_STATES_SQL, type AuditEntry, type Decide, type Decision, type TokenKey, type TokenRow } from "./token-store.js";
import { RegistryError, type Actor } from "./types.js";

/** Rows kept per process: ~1 KB each with the JS object overhead. */
export const MAX_CACHED = 50_000;
/** Compare-and-set tries before deciding under a row lock instead. */
const MAX_ATTEMPTS = 4;

const keyName = (key: TokenKey) => ("serial" in key ? "s\0" + key.serial : "c\0" + key.customer);

export class PostgresTokenStore extends SqlTokenStore {
  private readonly rows = new Map<string, TokenRow>();

  constructor(db: PostgresDatabase, keys: KeyRing, now: () => number) {
    super(db, keys, now);
  }

  override async decide<T>(key: TokenKey, actor: Actor, decide: Decide<T>, options: { holderOf?: string } = {}): Promise<T> {
    if (options.holderOf !== undefined) return this.decideLocked(key, actor, decide, options);
    let held = this.rows.get(keyName(key));
    let row: TokenRow | undefined;
    if (held) {
      row = held;
    } else {
      this.trips++;
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
          this.trips++;
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
      this.trips++;
      const r = await this.db.get<TokenRow & { applied: number }>(...this.statement(key, row, actor, d));
      if (r && r.applied > 0) {
        this.changed(key, row, d);
        if (d.outcome instanceof RegistryError) throw d.outcome;
        return d.outcome;
      }
      const current = r && r.serial !== null ? (strip(r) as TokenRow) : undefined;
      this.remember(key, current);
      row = current;
    }
    return this.decideLocked(key, actor, decide);
  }

  private async read(key: TokenKey): Promise<TokenRow | undefined> {
    const row = "serial" in key
      ? await this.db.get<TokenRow>(`SELECT * FROM tokens WHERE serial = ? AND ${LIVE}`, [key.serial])
      : await this.db.get<TokenRow>(`SELECT * FROM tokens WHERE customer = ? AND state IN ${LIVE_STATES_SQL}`, [key.customer]);
    this.remember(key, row);
    return row;
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
      params.push(at, actor.name, actor.source, e.action, e.outcome, e.serial, e.customer, e.detail ? JSON.stringify(e.detail) : null);
      return "SELECT ?::bigint, ?::text, ?::text, ?::text, ?::text, ?::text, ?::text, ?::text FROM matched";
    });
    const auditCte = audit.length ? `, audited AS (INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail) ${audit.join(" UNION ALL ")})` : "";
    const now = "serial" in key ? `t.serial = ? AND (t.staged IS NULL OR t.staged IN (SELECT id FROM import_batches WHERE state = 'committed'))` : `t.customer = ? AND t.state IN ${LIVE_STATES_SQL}`;
    params.push("serial" in key ? key.serial : key.customer);
    return [`WITH matched AS (${matched})${auditCte} SELECT (SELECT count(*) FROM matched)::int AS applied, t.* FROM (SELECT 1) AS one LEFT JOIN tokens t ON ${now}`, params];
  }

  protected override changed<T>(key: TokenKey, row: TokenRow | undefined, d: Decision<T>): void {
    if (!row) return;
    const next: TokenRow = d.change ? { ...row, ...d.change } : row;
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

function strip(r: TokenRow & { applied?: number; staged?: unknown; seed_index?: unknown }): TokenRow {
  const { applied: _a, staged: _s, seed_index: _i, ...row } = r;
  return row;
}
