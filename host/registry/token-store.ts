/**
 * The TokenStore: the registry's only way to the database. It owns every
 * SQL statement and every audit write; the Registry decides (lifecycle.ts,
 * code-window.ts) and the store makes the decision durable, with its audit
 * records, as one atomic change. One implementation per engine:
 *
 * - SqliteTokenStore (sqlite-token-store.ts): each decision in its own
 *   transaction (BEGIN IMMEDIATE, joined into a group commit), reading the
 *   row, deciding and writing under the write lock. SQLite runs in process,
 *   so a "round trip" costs microseconds and the plain shape is the fast one.
 * - PostgresTokenStore (postgres-token-store.ts): one statement per decision
 *   (compare-and-set on the row the decision was made from, with the audit
 *   insert in the same statement), see its header.
 *
 * What the two share (the transactional decision, registration and staged
 * imports, reads, key rotation: the same SQL on both) is SqlTokenStore in
 * sql-token-store.ts.
 *
 * The contract both keep, across any number of processes: a decision is
 * applied only to the row state it was made from; a code is accepted at
 * most once (the accepted step must exceed the stored last step); wrong
 * codes are counted exactly; each decision writes its audit records in the
 * same atomic change, so the audit holds exactly one record per decision.
 */
import type { Database, Sql } from "./database.js";
import type { Algorithm } from "./totp.js";
import { RegistryError, type Actor, type TokenKind, type TokenState, type WithdrawReason } from "./types.js";

export interface TokenRow {
  serial: string;
  manufacturer: string;
  model: string | null;
  issuer: string | null;
  key_id: string | null;
  algorithm: Algorithm;
  digits: number;
  period: number;
  t0: number;
  kek_id: string;
  seed: Buffer | Uint8Array;
  state: TokenState;
  customer: string | null;
  issuance: number;
  drift: number;
  last_step: number | null;
  clock_obs: string | null;
  fail_count: number;
  activated_at: number | null;
  withdrawn: WithdrawReason | null;
  not_before: number | null;
  not_after: number | null;
  origin: string;
  created_at: number;
  updated_at: number;
  /** Migration 7: keyfob or soft; the soft columns are null for keyfobs. */
  kind: TokenKind;
  /** Soft: when the app's set-up was done; null while awaiting it (seed then holds the OPAQUE record, not a seed). */
  setup_at: number | null;
  setup_from: number | null;
  setup_before: number | null;
}

/**
 * Every column of TokenRow, for the reads a decision is made from: named, not `*`, so neither engine's driver
 * decodes the columns no decision reads (the seed index, a 32-byte blob; the staging batch) on every verification.
 */
export const ROW_COLUMNS = [
  "serial", "manufacturer", "model", "issuer", "key_id", "algorithm", "digits", "period", "t0", "kek_id", "seed", "state", "customer", "issuance",
  "drift", "last_step", "clock_obs", "fail_count", "activated_at", "withdrawn", "not_before", "not_after", "origin", "created_at", "updated_at",
  "kind", "setup_at", "setup_from", "setup_before",
] as const satisfies readonly (keyof TokenRow)[];
/** Compile-time check that ROW_COLUMNS names every field of TokenRow (a field added to one and not the other fails here). */
type MissingRowColumns = Exclude<keyof TokenRow, (typeof ROW_COLUMNS)[number]>;
const rowColumnsComplete: [MissingRowColumns] extends [never] ? true : MissingRowColumns = true;
void rowColumnsComplete;
/** ROW_COLUMNS as a select list. */
export const ROW_SELECT = ROW_COLUMNS.join(", ");

/**
 * Does tokens.seed hold a TOTP seed? Not for a software token awaiting its
 * set-up: then it holds the sealed OPAQUE registration record (soft-tokens.ts).
 * Every path that opens or indexes a seed asks this first.
 */
export function tokenHoldsSeed(row: { kind?: TokenKind | null; setup_at?: number | null }): boolean {
  return (row.kind ?? "keyfob") === "keyfob" || (row.setup_at !== null && row.setup_at !== undefined);
}

/**
 * The columns a decision reads: a decision made from a row is still right
 * as long as these are unchanged (the seed and the token's parameters never
 * change for a serial; re-sealing changes kek_id and the blob, not the seed).
 * updated_at too, which every change moves: a row that went through other
 * states and came back to the same values (unlocked, then five wrong codes)
 * is not the row a decision was made from when the decision also rests on
 * what happened meanwhile (maker-checker counts unlocks in the audit,
 * approvals.ts); without it two teller unlocks queued behind a re-lock both
 * went through on PostgreSQL.
 */
export const DECISION_COLUMNS = ["state", "customer", "issuance", "drift", "last_step", "clock_obs", "fail_count", "activated_at", "withdrawn", "not_before", "not_after", "updated_at"] as const;

/** The columns a decision may change. */
export type RowChange = Partial<Pick<TokenRow, "state" | "customer" | "issuance" | "drift" | "last_step" | "clock_obs" | "fail_count" | "activated_at" | "withdrawn" | "updated_at">> & Partial<SoftChange>;

/**
 * What a software token's set-up also changes: the seed replaces the record.
 * Only decisions made under the row lock (decide with `locked`) may carry
 * these; PostgreSQL's batched compare-and-set writes a fixed column list.
 */
export interface SoftChange {
  seed: Buffer;
  kek_id: string;
  seed_index: Buffer | null;
  setup_at: number | null;
  setup_before: number | null;
}

/** One audit record written with a decision. */
export interface AuditEntry {
  action: string;
  outcome: string;
  serial: string | null;
  customer: string | null;
  detail?: Record<string, unknown>;
}

/** The columns of an audit record the stores write, in the order of auditValues. */
export const AUDIT_COLUMNS = ["at", "actor", "source", "action", "outcome", "serial", "customer", "detail", "request_id"] as const;

/** An audit record's values in the order of AUDIT_COLUMNS: every audit write of both stores builds its row here. */
export function auditValues(at: number, actor: Actor, e: AuditEntry): [number, string, string, string, string, string | null, string | null, string | null, string | null] {
  return [at, actor.name, actor.source, e.action, e.outcome, e.serial ?? null, e.customer ?? null, e.detail ? JSON.stringify(e.detail) : null, actor.request ?? null];
}

/** Which token a decision is about: by serial (staff, factory) or by the customer holding it (the channel). */
export type TokenKey = { serial: string } | { customer: string };

/**
 * A decision on one token, made from its row (undefined: no such token):
 * the change to its row (none for a refusal), the audit records, and the
 * answer: a value, or a refusal thrown once the audit is committed.
 */
export interface Decision<T> {
  change?: RowChange;
  audit: AuditEntry[];
  outcome: T | RegistryError;
}

/**
 * Makes a decision from the current row. Pure: it may be called again with
 * a fresher row (PostgreSQL's compare-and-set), so it must not write or
 * remember anything. `holder`: the live token of `holderOf`, when asked.
 */
export type Decide<T> = (row: TokenRow | undefined, holder: TokenRow | undefined) => Decision<T>;

/**
 * Statements that commit or roll back with a decision, in its transaction:
 * `before` ahead of reading the token's row, `after` once the decision and
 * its audit records are written, with its outcome (a value or the refusal).
 * Either may throw to roll the whole back. Maker-checker's claim of an
 * approval and the unlock it approves (approvals.ts decideApproval) are one
 * change this way, so a crash between them cannot leave the request claimed
 * with no unlock. A decision with `within` runs as a transaction on both
 * engines (SqlTokenStore.decideLocked).
 */
export interface WithinDecision {
  before?(t: Sql): Promise<void>;
  after?(t: Sql, outcome: unknown): Promise<void>;
}

/** What decide may be asked beyond the decision itself. */
export interface DecideOptions {
  /** Also read that customer's live token, passed to the decision as `holder` (issue). */
  holderOf?: string;
  within?: WithinDecision;
  /** Decide under a row lock in a transaction (needed for a change with SoftChange columns). */
  locked?: boolean;
}

export interface TokenStore {
  readonly db: Database;
  /**
   * Reads the token, lets `decide` decide, applies the change and the audit
   * records atomically, and returns the outcome (or throws the refusal, after
   * its audit is committed). `holderOf`: also read that customer's live
   * token (issue: "does the customer already hold one?").
   */
  decide<T>(key: TokenKey, actor: Actor, decide: Decide<T>, options?: DecideOptions): Promise<T>;
  /** Round trips to the database so far (PostgreSQL; SQLite runs in process and counts statements). */
  readonly roundTrips: number;
}

/** The states a customer's token is found in. */
export const LIVE_STATES_SQL = "('issued', 'active', 'locked')";
/**
 * Rows every read by serial, list or count sees: not part of an import still
 * staging (registerStaged). Rows with a customer are never staged, so reads
 * by customer need no such test.
 */
export const LIVE = "(staged IS NULL OR staged IN (SELECT id FROM import_batches WHERE state = 'committed'))";

