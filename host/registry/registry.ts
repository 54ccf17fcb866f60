/**
 * The bank's token registry: lifecycle, verification, audit.
 *
 *   in_stock --issue--> issued --activate(code)--> active --deactivate(code)--> retired
 *   active --lockAfter wrong codes in a row--> locked --unlock--> active
 *   retired --issue (a new issuance)--> issued          (activate alone: refused)
 *   issued | active | locked --withdraw(reason), staff, no code--> retired
 *   (withdrawn as lost or stolen: never issued again)
 *
 * Every operation is one database transaction that reads the token row with
 * a row lock (PostgreSQL FOR UPDATE; SQLite BEGIN IMMEDIATE), decides, writes
 * the row and its audit record, and commits. So across any number of server
 * processes a code is accepted at most once (the accepted step must exceed
 * the stored last step, read and written under the lock) and failures are
 * counted exactly (privacyIDEA and Keycloak updated the last step without a
 * lock and could accept one code twice).
 *
 * Drift: each token stores its clock offset in steps (`drift`, matched step
 * minus our step at the last success) and its last successes, from which
 * clock-model.ts fits the keyfob's offset and rate; a code is looked for
 * within ±window steps of where that puts the keyfob now. A keyfob 20 ppm
 * fast gains ~52 s a month; the rate is what keeps monthly use inside ±1.
 *
 * Lockout (default 5 wrong codes in a row): the manual stops OTP after "a set
 * number" of consecutive failures and needs the bank to lift the stop. With
 * a ±1 window three codes are live, so each guess wins with odds 3/10^8 and
 * a lockout cycle gives an attacker 5·3/10^8 = 1.5e-7; five spares a customer
 * who mistypes twice or thrice. The counter resets only on a success or a
 * staff unlock, never on a timer (privacyIDEA's timed reset let brute force
 * through). The price is a denial-of-service lever: anyone who knows a
 * customer id can lock that customer out; the channel must therefore only
 * call verify after the customer's password, and staff see the lock's
 * source in the audit.
 */
import { isMistypedFobkitSerial } from "../serial/serial-number.js";
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Database, Sql } from "./database.js";
import { kekRetired, uniqueViolation } from "./database.js";
import type { KeyRing } from "./key-ring.js";
import { addObservation, candidateSteps, parseObservations, predictStep, type Observation } from "./clock-model.js";
import { INDEX_KEY_BYTES, SEED_INDEX_SECRET, seedIndex } from "./seed-index.js";
import { hotp, sameCode, stepAt, type Algorithm } from "./totp.js";
import {
  RegistryError,
  type Acceptance,
  type Actor,
  type AuditRecord,
  type NewToken,
  type TokenState,
  type TokenStatus,
  type WithdrawReason,
  BARRING_REASONS,
  TOKEN_STATES,
  WITHDRAW_REASONS,
} from "./types.js";

export interface Policy {
  /** Steps each side of the learned drift for verify and deactivate. */
  window: number;
  /**
   * Steps each side at activation: the keyfob may have sat in stock for a
   * year since its clock was set; 20 ppm for a year is ~10.5 min, so 15.
   */
  activationWindow: number;
  /** Steps each side searched by a staff resync: 24 h of 60-s steps. */
  resyncWindow: number;
  /** Consecutive wrong codes that lock the token. */
  lockAfter: number;
  /**
   * Largest clock rate error the model assumes, in ppm: a watch crystal's
   * ±20 ppm tolerance plus ageing and temperature (the DS3231 itself is ±2).
   */
  maxDriftPpm: number;
}

/**
 * The widest verification window the clock model can justify, in steps.
 * The model (clock-model.ts) learns each keyfob's offset and rate and adds
 * the steps its rate bound still allows, so the window only covers what is
 * left: a keyfob unused for a long time while its rate is unknown. At the
 * model's rate bound (maxDriftPpm, 30 ppm) a year unused moves the clock
 * 30e-6 x 31,557,600 s = 947 s, 15 steps of 60 s (FIELD-NOTES: "1 ppm is
 * about 31.5 s a year"; Feitian c200s seen 7-8 steps off after years, without
 * learning). Further out a keyfob is resynced by staff from two codes
 * (±resyncWindow), which cannot be guessed, instead of widening what one
 * guess may hit: at 15 each guess wins with odds 31/10^8, and a lockout
 * cycle of 5 wrong codes 1.55e-6; the 999999 this once accepted made every
 * code live.
 */
export const MAX_WINDOW = 15;

export const DEFAULT_POLICY: Policy = { window: 1, activationWindow: 15, resyncWindow: 1440, lockAfter: 5, maxDriftPpm: 30 };

export interface RegistryOptions {
  keys: KeyRing;
  policy?: Partial<Policy>;
  /** Unix milliseconds; injected so tests control "now". */
  now?: () => number;
}

interface TokenRow {
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
}

/** Every column but the sealed seed: what a status needs, for reads that never open a seed. */
const STATUS_COLUMNS =
  "serial, manufacturer, model, issuer, key_id, algorithm, digits, period, t0, kek_id, state, customer, issuance, drift, last_step, clock_obs, fail_count, activated_at, withdrawn, origin, created_at, updated_at";
/** Most tokens one listing returns. */
export const MAX_LIST = 1000;

const SERIAL_RE = /^[\x21-\x7e]{1,64}$/;
const CUSTOMER_RE = /^[A-Za-z0-9._@:+-]{1,64}$/;
const LIVE_STATES = "('issued', 'active', 'locked')";
/**
 * Rows every read by serial, list or count sees: not part of an import still
 * staging (registerStaged). Rows with a customer are never staged, so reads
 * by customer need no such test.
 */
const LIVE = "(staged IS NULL OR staged IN (SELECT id FROM import_batches WHERE state = 'committed'))";
/** Inputs larger than this are imported through a staging batch, in short transactions. */
export const STAGE_ABOVE = 500;
/** Rows per staging transaction: a few milliseconds of write lock each. */
const CHUNK_ROWS = 250;
/** Pause between staging transactions, longer than a SQLite waiter's back-off (MAX_BACKOFF_MS), so servers get the lock in between. */
const CHUNK_PAUSE_MS = 10;
/** A staging batch not heard from for this long was abandoned (its process died): the next import deletes its rows. */
export const STALE_IMPORT_MS = 60_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const ALGORITHMS: Algorithm[] = ["SHA1", "SHA256", "SHA512"];
/** RFC 4226 §4 R6: at least 128 bits of shared secret; 160 recommended. */
const MIN_SECRET_BYTES = 16;
const MAX_SECRET_BYTES = 128;

export function checkSerial(serial: unknown): string {
  if (typeof serial !== "string" || !SERIAL_RE.test(serial)) {
    throw new RegistryError("bad_serial", "serial must be 1-64 printable ASCII characters without spaces", "bad_input");
  }
  return serial;
}

export function checkCustomer(customer: unknown): string {
  if (typeof customer !== "string" || !CUSTOMER_RE.test(customer)) {
    throw new RegistryError("bad_customer", "customer id must be 1-64 of A-Z a-z 0-9 . _ @ : + -", "bad_input");
  }
  return customer;
}

/** A code is exactly the token's digit count of decimal digits; anything else is bad input, not a wrong code. */
/**
 * The refusal for a serial no token has. A fobkit serial (FK + 14 digits, or a legacy 12)
 * whose check digits are wrong was mistyped: say so, so staff look at the
 * label again instead of searching for a token that cannot exist. Other
 * vendors' serials are taken as they are.
 */
function unknownSerial(serial: string): RegistryError {
  if (isMistypedFobkitSerial(serial)) {
    return new RegistryError("bad_serial", `${serial}: the check digits do not match, so this is not a fobkit serial (mistyped?)`, "bad_input", { serial });
  }
  return new RegistryError("unknown_serial", `no token with serial ${serial}`, "not_found", { serial });
}

export function checkCode(code: unknown, digits: number): string {
  if (typeof code !== "string" || code.length !== digits || !/^[0-9]+$/.test(code)) {
    throw new RegistryError("bad_code", `code must be exactly ${digits} decimal digits`, "bad_input", { digits });
  }
  return code;
}

export function checkNewToken(t: NewToken): void {
  checkSerial(t.serial);
  const bad = (what: string) => {
    throw new RegistryError("bad_token", `token ${t.serial}: ${what}`, "bad_input", { serial: t.serial });
  };
  // RFC 6030 §4.3.1 makes Manufacturer optional (python-pskc's csv2pskc writes none): "" when unknown.
  if (typeof t.manufacturer !== "string" || t.manufacturer.length > 128) bad("manufacturer must be at most 128 characters");
  if (!ALGORITHMS.includes(t.algorithm)) bad(`algorithm must be one of ${ALGORITHMS.join(", ")}`);
  if (!Number.isInteger(t.digits) || t.digits < 6 || t.digits > 10) bad("digits must be an integer 6-10");
  if (!Number.isInteger(t.period) || t.period < 1 || t.period > 3600) bad("period must be an integer 1-3600 seconds");
  if (!Number.isSafeInteger(t.t0) || t.t0 < 0) bad("t0 must be a non-negative integer of unix seconds");
  if (t.timeDrift !== undefined && (!Number.isInteger(t.timeDrift) || Math.abs(t.timeDrift) > 100_000)) bad("timeDrift must be an integer number of steps");
  for (const [name, v] of [["notBefore", t.notBefore], ["notAfter", t.notAfter]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) bad(`${name} must be unix milliseconds`);
  }
  if (t.notBefore !== undefined && t.notAfter !== undefined && t.notAfter < t.notBefore) bad("notAfter is before notBefore");
  if (!Buffer.isBuffer(t.secret) || t.secret.length < MIN_SECRET_BYTES || t.secret.length > MAX_SECRET_BYTES) {
    bad(`secret must be ${MIN_SECRET_BYTES}-${MAX_SECRET_BYTES} bytes`);
  }
}

function iso(ms: number | null): string | null {
  return ms === null || ms === undefined ? null : new Date(Number(ms)).toISOString();
}

/** What a register audit record says of a token (never its seed). */
function registerDetail(tok: NewToken): Record<string, unknown> {
  return {
    algorithm: tok.algorithm,
    digits: tok.digits,
    period: tok.period,
    ...(tok.notBefore !== undefined ? { notBefore: iso(tok.notBefore) } : {}),
    ...(tok.notAfter !== undefined ? { notAfter: iso(tok.notAfter) } : {}),
  };
}

function toStatus(r: TokenRow): TokenStatus {
  return {
    serial: r.serial,
    manufacturer: r.manufacturer,
    model: r.model,
    issuer: r.issuer,
    algorithm: r.algorithm,
    digits: r.digits,
    period: r.period,
    state: r.state,
    customer: r.customer,
    issuance: r.issuance,
    drift: r.drift,
    lastStep: r.last_step,
    failCount: r.fail_count,
    activatedAt: iso(r.activated_at),
    withdrawn: r.withdrawn ?? null,
    kekId: r.kek_id,
    origin: r.origin,
    createdAt: iso(r.created_at)!,
    updatedAt: iso(r.updated_at)!,
  };
}

/** One audit record written with a change (Registry.changeAudited). */
interface AuditEntry {
  action: string;
  outcome: string;
  serial: string | null;
  customer: string | null;
  detail?: Record<string, unknown>;
}

type CodeCheck =
  | { ok: true; step: number; drift: number; observations: Observation[] }
  | { ok: false; replayed: boolean };

export class Registry {
  readonly policy: Policy;
  private readonly now: () => number;
  readonly keys: KeyRing;

  constructor(
    readonly db: Database,
    options: RegistryOptions,
  ) {
    this.keys = options.keys;
    this.policy = { ...DEFAULT_POLICY, ...options.policy };
    for (const [k, v] of Object.entries(this.policy)) {
      if (!Number.isInteger(v) || v < (k === "lockAfter" ? 1 : 0)) throw new RangeError(`policy.${k} must be a ${k === "lockAfter" ? "positive" : "non-negative"} integer, got ${v}`);
    }
    if (this.policy.window > MAX_WINDOW) {
      throw new RangeError(`policy.window must be at most ${MAX_WINDOW} steps (a year of a keyfob's drift at ${DEFAULT_POLICY.maxDriftPpm} ppm; resync a keyfob that is further out), got ${this.policy.window}`);
    }
    this.now = options.now ?? Date.now;
  }

  // ---------------------------------------------------------------- helpers

  /** The INSERT of audit records, one row per entry, all stamped now. */
  private auditInsert(actor: Actor, entries: AuditEntry[]): { sql: string; params: unknown[] } {
    const at = this.now();
    return {
      sql: `INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail) VALUES ${entries.map(() => "(?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}`,
      params: entries.flatMap((e) => [at, actor.name, actor.source, e.action, e.outcome, e.serial, e.customer, e.detail ? JSON.stringify(e.detail) : null]),
    };
  }

  private async audit(t: Sql, actor: Actor, action: string, outcome: string, serial: string | null, customer: string | null, detail?: Record<string, unknown>): Promise<void> {
    const insert = this.auditInsert(actor, [{ action, outcome, serial, customer, detail }]);
    await t.run(insert.sql, insert.params);
  }

  /**
   * A token row change and its audit records together: every state change
   * goes through here. On PostgreSQL that is one statement (the UPDATE as a
   * data-modifying WITH, which runs whether or not the INSERT reads it), so
   * a verification costs four round trips instead of five; SQLite, in
   * process, runs the two statements.
   */
  private async changeAudited(t: Sql, actor: Actor, update: { sql: string; params: unknown[] }, entries: AuditEntry[]): Promise<void> {
    const insert = this.auditInsert(actor, entries);
    if (this.db.dialect === "postgres") {
      await t.run(`WITH changed AS (${update.sql}) ${insert.sql}`, [...update.params, ...insert.params]);
    } else {
      await t.run(update.sql, update.params);
      await t.run(insert.sql, insert.params);
    }
  }

  private lockBySerial(t: Sql, serial: string): Promise<TokenRow | undefined> {
    return t.get<TokenRow>(`SELECT * FROM tokens WHERE serial = ? AND ${LIVE}${this.db.forUpdate}`, [serial]);
  }

  private lockByCustomer(t: Sql, customer: string): Promise<TokenRow | undefined> {
    return t.get<TokenRow>(`SELECT * FROM tokens WHERE customer = ? AND state IN ${LIVE_STATES}${this.db.forUpdate}`, [customer]);
  }

  private secretOf(row: TokenRow): Buffer {
    return this.keys.open(row.serial, { kekId: row.kek_id, blob: Buffer.from(row.seed) });
  }

  /**
   * Looks for the code among the steps the keyfob can be at now: the clock
   * model's prediction when `useModel` and there are observations, else
   * (now + drift) ± window. A match at or below the last accepted step is a
   * replay. A success restarts the model at activation and extends it after.
   */
  private checkCode(row: TokenRow, code: string, window: number, useModel: boolean): CodeCheck {
    const nowMs = this.now();
    const nowSec = Math.floor(nowMs / 1000);
    const nowStep = stepAt(nowMs, row.t0, row.period);
    const observations = useModel ? parseObservations(row.clock_obs) : [];
    const prediction = predictStep(observations, nowSec, row.t0, row.period, this.policy.maxDriftPpm);
    const steps = prediction
      ? candidateSteps(prediction, window)
      : candidateSteps({ centre: nowStep + row.drift, lo: 0, hi: -1 }, window);
    const secret = this.secretOf(row);
    try {
      let replayed = false;
      for (const step of steps) {
        if (step < 0) continue;
        if (!sameCode(hotp(row.algorithm, secret, step, row.digits), code)) continue;
        if (row.last_step !== null && step <= row.last_step) {
          replayed = true;
          continue;
        }
        return { ok: true, step, drift: step - nowStep, observations: addObservation(observations, [nowSec, step]) };
      }
      return { ok: false, replayed };
    } finally {
      secret.fill(0);
    }
  }

  /**
   * Records a wrong code: counts it, locks at lockAfter, audits; returns the
   * refusal for the caller to throw after the transaction commits.
   */
  private async fail(t: Sql, row: TokenRow, actor: Actor, action: string, check: { replayed: boolean }): Promise<RegistryError> {
    // A replay is a code that was right once: no guess, so it does not count
    // toward the lock (a double-submitted form must not lock a customer out).
    const failures = row.fail_count + (check.replayed ? 0 : 1);
    const locks = failures >= this.policy.lockAfter;
    const code = check.replayed ? "replayed" : "wrong_code";
    const entries: AuditEntry[] = [{ action, outcome: code, serial: row.serial, customer: row.customer, detail: { failures, locked: locks } }];
    if (locks) entries.push({ action: "lock", outcome: "ok", serial: row.serial, customer: row.customer, detail: { failures, after: action } });
    await this.changeAudited(t, actor, { sql: `UPDATE tokens SET fail_count = ?, state = ?, updated_at = ? WHERE serial = ?`, params: [failures, locks ? "locked" : row.state, this.now(), row.serial] }, entries);
    const message = check.replayed ? "code was already used (or is older than one used); wait for the next code" : "wrong code";
    return new RegistryError(code, message + (locks ? `; token locked after ${failures} wrong codes in a row, staff must unlock it` : ""), "refused", {
      serial: row.serial,
      failures,
      locked: locks,
    });
  }

  private async refuse(t: Sql, actor: Actor, action: string, code: string, message: string, serial: string | null, customer: string | null, detail: Record<string, unknown> = {}): Promise<RegistryError> {
    await this.audit(t, actor, action, code, serial, customer, Object.keys(detail).length ? detail : undefined);
    return new RegistryError(code, message, "refused", { ...(serial ? { serial } : {}), ...detail });
  }

  /**
   * RFC 6030 §5: a key must not be used before its StartDate or after its
   * ExpiryDate. The refusal (audited) for a token outside them now, or
   * undefined. `expiredOnly`: issuing ahead of the start date is fine.
   */
  private outsideValidity(t: Sql, row: TokenRow, actor: Actor, action: string, customer: string | null, expiredOnly = false): Promise<RegistryError> | undefined {
    const now = this.now();
    if (!expiredOnly && row.not_before !== null && now < Number(row.not_before)) {
      const from = iso(row.not_before);
      return this.refuse(t, actor, action, "not_yet_valid", `token ${row.serial} may not be used before ${from} (the StartDate its PSKC file gave)`, row.serial, customer, { notBefore: from });
    }
    if (row.not_after !== null && now > Number(row.not_after)) {
      const until = iso(row.not_after);
      return this.refuse(t, actor, action, "expired", `token ${row.serial} expired at ${until} (the ExpiryDate its PSKC file gave); issue the customer another keyfob`, row.serial, customer, { notAfter: until });
    }
    return undefined;
  }

  /** Runs a transaction whose body returns either a value or a refusal to throw once committed. */
  private async decide<T>(fn: (t: Sql) => Promise<T | RegistryError>): Promise<T> {
    const out = await this.db.tx(fn);
    if (out instanceof RegistryError) throw out;
    return out;
  }

  // ---------------------------------------------------------------- seed index

  private indexKey?: Promise<Buffer>;

  /** The seed-index key (seed-index.ts), made by the first registry that needs it, then read. */
  private seedIndexKey(): Promise<Buffer> {
    this.indexKey ??= this.loadIndexKey().catch((e) => {
      this.indexKey = undefined;
      throw e;
    });
    return this.indexKey;
  }

  private async loadIndexKey(): Promise<Buffer> {
    const read = () => this.db.get<{ kek_id: string; sealed: Uint8Array }>("SELECT kek_id, sealed FROM registry_secrets WHERE name = ?", [SEED_INDEX_SECRET]);
    let row = await read();
    if (!row) {
      const fresh = randomBytes(INDEX_KEY_BYTES);
      try {
        // Two processes may race here: the first insert wins and both read it back.
        await this.sealing(() =>
          this.db.tx(async (t) => {
            const sealed = this.keys.sealSecret(SEED_INDEX_SECRET, fresh);
            await t.run("INSERT INTO registry_secrets (name, kek_id, sealed, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING", [SEED_INDEX_SECRET, sealed.kekId, sealed.blob, this.now()]);
          }),
        );
      } finally {
        fresh.fill(0);
      }
      row = await read();
    }
    return this.keys.openSecret(SEED_INDEX_SECRET, { kekId: row!.kek_id, blob: Buffer.from(row!.sealed) });
  }

  /** The tokens' seed indexes; refuses the lot when one seed appears twice in the input. */
  private async seedIndexes(tokens: NewToken[]): Promise<Buffer[]> {
    const key = await this.seedIndexKey();
    const indexes = tokens.map((tok) => seedIndex(key, tok.secret));
    const first = new Map<string, string>();
    const pairs: [string, string][] = [];
    indexes.forEach((ix, i) => {
      const h = ix.toString("base64");
      const prev = first.get(h);
      if (prev === undefined) first.set(h, tokens[i].serial);
      else pairs.push([prev, tokens[i].serial]);
    });
    if (pairs.length) {
      throw new RegistryError("duplicate_seed", `the same seed appears twice in the input: ${pairs.map(([a, b]) => `${a} and ${b}`).join(", ")}; nothing was imported`, "refused", { serials: pairs });
    }
    return indexes;
  }

  /** [input serial, serial already holding its seed] for each input seed some token holds. */
  private async seedsHeld(t: Sql, tokens: NewToken[], indexes: Buffer[]): Promise<[string, string][]> {
    const mine = new Map(indexes.map((ix, i) => [ix.toString("base64"), tokens[i].serial]));
    const held: [string, string][] = [];
    for (let i = 0; i < indexes.length; i += 500) {
      const chunk = indexes.slice(i, i + 500);
      const rows = await t.all<{ serial: string; seed_index: Uint8Array }>(`SELECT serial, seed_index FROM tokens WHERE seed_index IN (${chunk.map(() => "?").join(", ")})`, chunk);
      for (const r of rows) held.push([mine.get(Buffer.from(r.seed_index).toString("base64"))!, r.serial]);
    }
    return held;
  }

  // ---------------------------------------------------------------- factory

  /**
   * Adds tokens in stock, all or none: one duplicate serial (in the batch or
   * already registered) refuses the lot and names every duplicate.
   */
  async register(tokens: NewToken[], actor: Actor, origin: string): Promise<{ registered: string[] }> {
    if (tokens.length === 0) throw new RegistryError("empty", "no tokens to register", "bad_input");
    for (const tok of tokens) checkNewToken(tok);
    const seen = new Set<string>();
    const inBatch = tokens.map((x) => x.serial).filter((s) => (seen.has(s) ? true : (seen.add(s), false)));
    if (inBatch.length) {
      throw new RegistryError("duplicate_serial", `serial(s) appear twice in the input: ${[...new Set(inBatch)].join(", ")}`, "refused", { serials: [...new Set(inBatch)] });
    }
    const serials = tokens.map((x) => x.serial);
    const indexes = await this.seedIndexes(tokens);
    if (tokens.length > STAGE_ABOVE) return this.registerStaged(tokens, indexes, actor, origin);
    try {
      return await this.sealing(() => this.decide(async (t) => {
        const existing: string[] = [];
        for (let i = 0; i < serials.length; i += 500) {
          const chunk = serials.slice(i, i + 500);
          const rows = await t.all<{ serial: string }>(`SELECT serial FROM tokens WHERE serial IN (${chunk.map(() => "?").join(", ")})`, chunk);
          existing.push(...rows.map((r) => r.serial));
        }
        if (existing.length) {
          return this.refuse(t, actor, "register", "duplicate_serial", `already registered: ${existing.join(", ")}; nothing was imported`, null, null, {
            serials: existing,
            origin,
          });
        }
        const held = await this.seedsHeld(t, tokens, indexes);
        if (held.length) {
          return this.refuse(t, actor, "register", "duplicate_seed", `${held.map(([mine, theirs]) => `the seed of ${mine} is already held by token ${theirs}`).join("; ")}; nothing was imported`, null, null, {
            serials: held,
            origin,
          });
        }
        const now = this.now();
        for (const [i, tok] of tokens.entries()) {
          const sealed = this.keys.seal(tok.serial, tok.secret);
          await t.run(
            `INSERT INTO tokens (serial, manufacturer, model, issuer, key_id, algorithm, digits, period, t0, kek_id, seed, seed_index, state, customer, issuance, drift, last_step, fail_count, activated_at, not_before, not_after, origin, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'in_stock', NULL, 0, ?, NULL, 0, NULL, ?, ?, ?, ?, ?)`,
            [tok.serial, tok.manufacturer, tok.model ?? null, tok.issuer ?? null, tok.keyId ?? null, tok.algorithm, tok.digits, tok.period, tok.t0, sealed.kekId, sealed.blob, indexes[i], tok.timeDrift ?? 0, tok.notBefore ?? null, tok.notAfter ?? null, origin, now, now],
          );
          await this.audit(t, actor, "register", "ok", tok.serial, null, { origin, ...registerDetail(tok) });
        }
        return { registered: serials };
      }));
    } catch (e) {
      // Another process registered one of these serials (or seeds) between our check and insert.
      const dup = uniqueViolation(e);
      if (dup && /seed_index/.test(dup.constraint)) throw new RegistryError("duplicate_seed", "a seed in the input was registered concurrently under another serial; nothing was imported", "refused");
      if (dup) throw new RegistryError("duplicate_serial", "a serial in the input was registered concurrently; nothing was imported", "refused");
      throw e;
    }
  }

  /**
   * A large import, all or nothing, without holding the write lock for long
   * (issue 11, item 4: 60,000 tokens in one transaction held SQLite's lock
   * 15-17 s and froze every server on the file). The rows are written in
   * transactions of CHUNK_ROWS, each marked with this import's batch id and
   * so invisible to every read (LIVE); a pause between them lets servers
   * take the lock. One short transaction then marks the batch committed: that
   * is the moment every row becomes visible at once. Only after it are the
   * marks cleared, in chunks, and the batch row deleted. On any failure the
   * batch row is deleted first (its rows become unreachable at once) and
   * then its rows. A process that dies mid-import leaves a batch whose
   * heartbeat stops; the next import deletes it after STALE_IMPORT_MS.
   *
   * Each token's audit record says "staged" with the batch id, and one
   * "import" record says the batch was committed (or aborted, and why): the
   * audit is append-only, so it records what happened, in order.
   */
  private async registerStaged(tokens: NewToken[], indexes: Buffer[], actor: Actor, origin: string): Promise<{ registered: string[] }> {
    const serials = tokens.map((x) => x.serial);
    await this.clearStaleImports(actor);
    // Read-only checks first, for a refusal that names every duplicate; the chunks' unique indexes catch races.
    const existing: string[] = [];
    for (let i = 0; i < serials.length; i += 500) {
      const chunk = serials.slice(i, i + 500);
      existing.push(...(await this.db.all<{ serial: string }>(`SELECT serial FROM tokens WHERE serial IN (${chunk.map(() => "?").join(", ")})`, chunk)).map((r) => r.serial));
    }
    if (existing.length) {
      await this.note(actor, "register", "duplicate_serial", { serials: existing, origin });
      throw new RegistryError("duplicate_serial", `already registered: ${existing.join(", ")}; nothing was imported`, "refused", { serials: existing, origin });
    }
    const held = await this.seedsHeld(this.db, tokens, indexes);
    if (held.length) {
      await this.note(actor, "register", "duplicate_seed", { serials: held, origin });
      throw new RegistryError("duplicate_seed", `${held.map(([mine, theirs]) => `the seed of ${mine} is already held by token ${theirs}`).join("; ")}; nothing was imported`, "refused", { serials: held, origin });
    }
    const batch = "imp-" + randomBytes(8).toString("hex");
    const started = this.now();
    await this.db.run("INSERT INTO import_batches (id, state, origin, actor, tokens, started_at, heartbeat_at) VALUES (?, 'staging', ?, ?, ?, ?, ?)", [batch, origin, actor.name, tokens.length, started, started]);
    try {
      for (let i = 0; i < tokens.length; i += CHUNK_ROWS) {
        const chunk = tokens.slice(i, i + CHUNK_ROWS);
        await this.sealing(() =>
          this.db.tx(async (t) => {
            const now = this.now();
            const alive = await t.run("UPDATE import_batches SET heartbeat_at = ? WHERE id = ? AND state = 'staging'", [now, batch]);
            if (!alive) throw new RegistryError("import_abandoned", `import ${batch} was taken for abandoned by another import (no progress for ${STALE_IMPORT_MS / 1000} s); nothing was imported, run it again`, "unavailable");
            const values: unknown[] = [];
            for (const [k, tok] of chunk.entries()) {
              const sealed = this.keys.seal(tok.serial, tok.secret);
              values.push(tok.serial, tok.manufacturer, tok.model ?? null, tok.issuer ?? null, tok.keyId ?? null, tok.algorithm, tok.digits, tok.period, tok.t0, sealed.kekId, sealed.blob, indexes[i + k], tok.timeDrift ?? 0, tok.notBefore ?? null, tok.notAfter ?? null, origin, now, now, batch);
            }
            await t.run(
              `INSERT INTO tokens (serial, manufacturer, model, issuer, key_id, algorithm, digits, period, t0, kek_id, seed, seed_index, state, customer, issuance, drift, last_step, fail_count, activated_at, not_before, not_after, origin, created_at, updated_at, staged)
               VALUES ${chunk.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'in_stock', NULL, 0, ?, NULL, 0, NULL, ?, ?, ?, ?, ?, ?)").join(", ")}`,
              values,
            );
            const audit = this.auditInsert(actor, chunk.map((tok) => ({ action: "register", outcome: "staged", serial: tok.serial, customer: null, detail: { origin, batch, ...registerDetail(tok) } })));
            await t.run(audit.sql, audit.params);
          }),
        );
        await sleep(CHUNK_PAUSE_MS);
      }
      // The commit point: one row changes, and every staged row is visible from here on.
      await this.db.tx(async (t) => {
        const n = await t.run("UPDATE import_batches SET state = 'committed', heartbeat_at = ? WHERE id = ? AND state = 'staging'", [this.now(), batch]);
        if (!n) throw new RegistryError("import_abandoned", `import ${batch} was taken for abandoned by another import; nothing was imported, run it again`, "unavailable");
        await this.audit(t, actor, "import", "ok", null, null, { batch, origin, tokens: tokens.length });
      });
    } catch (e) {
      const dup = uniqueViolation(e);
      const why = dup ? (/seed_index/.test(dup.constraint) ? "duplicate_seed" : "duplicate_serial") : e instanceof RegistryError ? e.code : "failed";
      await this.discardBatch(batch, actor, why).catch(() => undefined);
      if (dup && why === "duplicate_seed") throw new RegistryError("duplicate_seed", "a seed in the input was registered concurrently under another serial; nothing was imported", "refused");
      if (dup) throw new RegistryError("duplicate_serial", "a serial in the input was registered concurrently; nothing was imported", "refused");
      throw e;
    }
    // Visible already; clearing the marks is housekeeping, finished by the next import if this process stops here.
    await this.settleBatch(batch).catch(() => undefined);
    return { registered: serials };
  }

  /** Deletes a staging batch: its row first (its tokens become unreachable at once), then its tokens in chunks. */
  private async discardBatch(batch: string, actor: Actor, why: string): Promise<void> {
    const removed = await this.db.run("DELETE FROM import_batches WHERE id = ? AND state = 'staging'", [batch]);
    for (;;) {
      const n = await this.db.tx((t) => t.run("DELETE FROM tokens WHERE serial IN (SELECT serial FROM tokens WHERE staged = ? LIMIT 500)", [batch]));
      if (n === 0) break;
      await sleep(CHUNK_PAUSE_MS);
    }
    if (removed) await this.note(actor, "import", "aborted", { batch, reason: why });
  }

  /** Clears a committed batch's marks in chunks, then deletes the batch row. */
  private async settleBatch(batch: string): Promise<void> {
    for (;;) {
      const n = await this.db.tx((t) => t.run("UPDATE tokens SET staged = NULL WHERE serial IN (SELECT serial FROM tokens WHERE staged = ? LIMIT 500)", [batch]));
      if (n === 0) break;
      await sleep(CHUNK_PAUSE_MS);
    }
    await this.db.run("DELETE FROM import_batches WHERE id = ? AND state = 'committed' AND NOT EXISTS (SELECT 1 FROM tokens WHERE staged = ?)", [batch, batch]);
  }

  /** Finishes what dead imports left: settles committed batches, deletes abandoned ones and orphaned staged rows. */
  async clearStaleImports(actor: Actor): Promise<void> {
    const stale = await this.db.all<{ id: string; state: string }>("SELECT id, state FROM import_batches WHERE state = 'committed' OR heartbeat_at < ?", [this.now() - STALE_IMPORT_MS]);
    for (const b of stale) {
      if (b.state === "committed") await this.settleBatch(b.id);
      else await this.discardBatch(b.id, actor, "abandoned");
    }
    const orphans = await this.db.all<{ staged: string }>("SELECT DISTINCT staged FROM tokens WHERE staged IS NOT NULL AND staged NOT IN (SELECT id FROM import_batches)");
    for (const o of orphans) await this.discardBatch(o.staged, actor, "orphaned");
  }

  /**
   * The factory's registration call: one token, idempotent. A retry of a
   * registration whose reply was lost (same serial, parameters and seed) is
   * answered as done; the same serial with anything different is a
   * duplicate, refused as in register().
   */
  async registerOne(tok: NewToken, actor: Actor, origin: string): Promise<{ registered: string[]; alreadyRegistered: boolean }> {
    checkNewToken(tok);
    const row = await this.db.get<TokenRow>(`SELECT * FROM tokens WHERE serial = ? AND ${LIVE}`, [tok.serial]);
    if (row) {
      const same =
        row.algorithm === tok.algorithm &&
        row.digits === tok.digits &&
        row.period === tok.period &&
        Number(row.t0) === tok.t0 &&
        (() => {
          const secret = this.secretOf(row);
          try {
            return secret.length === tok.secret.length && timingSafeEqual(secret, tok.secret);
          } finally {
            secret.fill(0);
          }
        })();
      if (same) {
        await this.note(actor, "register", "already_registered", { origin }, tok.serial);
        return { registered: [tok.serial], alreadyRegistered: true };
      }
    }
    return { ...(await this.register([tok], actor, origin)), alreadyRegistered: false };
  }

  // ---------------------------------------------------------------- staff

  /** in_stock or retired -> issued to a customer (a retired keyfob is re-issued this way). */
  async issue(serial: string, customer: string, actor: Actor): Promise<TokenStatus> {
    checkSerial(serial);
    checkCustomer(customer);
    try {
      return await this.decide(async (t) => {
        const row = await this.lockBySerial(t, serial);
        if (!row) return unknownSerial(serial);
        if (row.state !== "in_stock" && row.state !== "retired") {
          return this.refuse(t, actor, "issue", "not_issuable", `token ${serial} is ${row.state}; only a token in stock or retired can be issued`, serial, customer, { state: row.state });
        }
        if (row.withdrawn && BARRING_REASONS.includes(row.withdrawn)) {
          return this.refuse(t, actor, "issue", "barred", `token ${serial} was reported ${row.withdrawn}; a keyfob that was out of the bank's and the customer's hands may have had its key read, so it is never issued again`, serial, customer, { withdrawn: row.withdrawn });
        }
        const outside = this.outsideValidity(t, row, actor, "issue", customer, true);
        if (outside) return outside;
        const other = await this.lockByCustomer(t, customer);
        if (other) {
          return this.refuse(t, actor, "issue", "customer_has_token", `customer ${customer} already holds token ${other.serial} (${other.state}); deactivate it first`, serial, customer, {
            heldSerial: other.serial,
          });
        }
        const now = this.now();
        await this.changeAudited(t, actor, {
          sql: `UPDATE tokens SET state = 'issued', customer = ?, issuance = issuance + 1, fail_count = 0, activated_at = NULL, withdrawn = NULL, updated_at = ? WHERE serial = ?`,
          params: [customer, now, serial],
        }, [{ action: "issue", outcome: "ok", serial, customer, detail: { from: row.state, issuance: row.issuance + 1, ...(row.withdrawn ? { withdrawn: row.withdrawn } : {}) } }]);
        return toStatus({ ...row, state: "issued", customer, issuance: row.issuance + 1, fail_count: 0, activated_at: null, withdrawn: null, updated_at: now });
      });
    } catch (e) {
      if (uniqueViolation(e)) throw new RegistryError("customer_has_token", `customer ${customer} was issued another token concurrently`, "refused", { serial });
      throw e;
    }
  }

  /**
   * locked -> active (or back to issued if it was locked before ever being activated).
   * `guard` (maker-checker, approvals.ts) runs in the same transaction once the
   * keyfob's row is locked, so what it counts or compares cannot change before the
   * unlock is written; a refusal it returns is committed (with what it wrote) and thrown.
   */
  async unlock(customer: string, actor: Actor, guard?: (t: Sql, held: { serial: string }) => Promise<RegistryError | undefined>): Promise<TokenStatus> {
    checkCustomer(customer);
    return this.decide(async (t) => {
      const row = await this.lockByCustomer(t, customer);
      if (!row) return this.refuse(t, actor, "unlock", "no_token", `customer ${customer} holds no token`, null, customer);
      if (row.state !== "locked") return this.refuse(t, actor, "unlock", "not_locked", `token ${row.serial} is ${row.state}, not locked`, row.serial, customer, { state: row.state });
      const refused = guard ? await guard(t, { serial: row.serial }) : undefined;
      if (refused) return refused;
      const state: TokenState = row.activated_at === null ? "issued" : "active";
      const now = this.now();
      await this.changeAudited(t, actor, { sql: `UPDATE tokens SET state = ?, fail_count = 0, updated_at = ? WHERE serial = ?`, params: [state, now, row.serial] }, [
        { action: "unlock", outcome: "ok", serial: row.serial, customer, detail: { to: state, failures: row.fail_count } },
      ]);
      return toStatus({ ...row, state, fail_count: 0, updated_at: now });
    });
  }

  /**
   * Staff take a customer's keyfob out of use without its code, which the
   * customer's own deactivation needs and a lost keyfob cannot give:
   * issued, active or locked -> retired, and the customer may be issued
   * another keyfob at once. "returned" and "faulty" keyfobs are back in the
   * bank's hands and may be issued again; "lost" and "stolen" ones never are
   * (BARRING_REASONS). The reason is kept on the token and in the audit.
   */
  async withdraw(customer: string, reason: WithdrawReason, actor: Actor): Promise<TokenStatus> {
    checkCustomer(customer);
    if (!WITHDRAW_REASONS.includes(reason)) {
      throw new RegistryError("bad_reason", `reason must be one of ${WITHDRAW_REASONS.join(", ")}`, "bad_input");
    }
    return this.decide(async (t) => {
      const row = await this.lockByCustomer(t, customer);
      if (!row) return this.refuse(t, actor, "withdraw", "no_token", `customer ${customer} holds no token`, null, customer, { reason });
      const now = this.now();
      await this.changeAudited(t, actor, { sql: `UPDATE tokens SET state = 'retired', withdrawn = ?, fail_count = 0, updated_at = ? WHERE serial = ?`, params: [reason, now, row.serial] }, [
        { action: "withdraw", outcome: "ok", serial: row.serial, customer, detail: { reason, from: row.state } },
      ]);
      return toStatus({ ...row, state: "retired", withdrawn: reason, fail_count: 0, updated_at: now });
    });
  }

  /**
   * Re-learns the drift of a keyfob that wandered beyond the window, from two
   * consecutive codes found within ±resyncWindow steps. Two codes in a row
   * at random match by chance with odds ~(2·resyncWindow+1)/10^16.
   */
  async resync(serial: string, codes: [string, string], actor: Actor): Promise<Acceptance> {
    checkSerial(serial);
    return this.decide(async (t) => {
      const row = await this.lockBySerial(t, serial);
      if (!row) return unknownSerial(serial);
      checkCode(codes[0], row.digits);
      checkCode(codes[1], row.digits);
      if (row.state === "in_stock" || row.state === "retired") {
        return this.refuse(t, actor, "resync", "not_issued", `token ${serial} is ${row.state}; resync applies to an issued, active or locked token`, serial, row.customer, { state: row.state });
      }
      const outside = this.outsideValidity(t, row, actor, "resync", row.customer);
      if (outside) return outside;
      const secret = this.secretOf(row);
      let found: number | undefined;
      try {
        const nowStep = stepAt(this.now(), row.t0, row.period);
        const w = this.policy.resyncWindow;
        const lo = Math.max(0, nowStep - w, (row.last_step ?? -1) + 1);
        let prev = lo > 0 ? hotp(row.algorithm, secret, lo - 1, row.digits) : "";
        for (let s = lo; s <= nowStep + w; s++) {
          const cur = hotp(row.algorithm, secret, s, row.digits);
          if (s > lo && sameCode(prev, codes[0]) && sameCode(cur, codes[1])) {
            found = s;
            break;
          }
          prev = cur;
        }
        if (found === undefined) {
          return this.refuse(t, actor, "resync", "resync_failed", `the two codes are not consecutive codes of token ${serial} within ${w} steps of now`, serial, row.customer);
        }
        // found is the second code's step, the keyfob's now; the model restarts from it.
        const drift = found - nowStep;
        const now = this.now();
        const observations: Observation[] = [[Math.floor(now / 1000), found]];
        await this.changeAudited(t, actor, {
          sql: `UPDATE tokens SET drift = ?, last_step = ?, clock_obs = ?, fail_count = 0, updated_at = ? WHERE serial = ?`,
          params: [drift, found, JSON.stringify(observations), now, serial],
        }, [{ action: "resync", outcome: "ok", serial, customer: row.customer, detail: { drift, previousDrift: row.drift } }]);
        return { serial, customer: row.customer, state: row.state, step: found, drift };
      } finally {
        secret.fill(0);
      }
    });
  }

  async status(serial: string): Promise<TokenStatus> {
    checkSerial(serial);
    const row = await this.db.get<TokenRow>(`SELECT * FROM tokens WHERE serial = ? AND ${LIVE}`, [serial]);
    if (!row) throw unknownSerial(serial);
    return toStatus(row);
  }

  async statusOfCustomer(customer: string): Promise<TokenStatus> {
    checkCustomer(customer);
    const row = await this.db.get<TokenRow>(`SELECT * FROM tokens WHERE customer = ? AND state IN ${LIVE_STATES}`, [customer]);
    if (!row) throw new RegistryError("no_token", `customer ${customer} holds no token`, "refused");
    return toStatus(row);
  }

  /**
   * Tokens in serial order, of one state if given (staff: "who is locked out
   * now?"); page with afterSerial = next. Never reads a seed. limit: default
   * 100, clamped to 1..MAX_LIST; next is null once the list is exhausted.
   */
  async listTokens(filter: { state?: TokenState; afterSerial?: string; limit?: number } = {}): Promise<{ tokens: TokenStatus[]; next: string | null }> {
    const where: string[] = [LIVE];
    const params: unknown[] = [];
    if (filter.state !== undefined) {
      if (!TOKEN_STATES.includes(filter.state)) throw new RegistryError("bad_state", `state must be one of ${TOKEN_STATES.join(", ")}`, "bad_input");
      where.push("state = ?"), params.push(filter.state);
    }
    if (filter.afterSerial !== undefined) where.push("serial > ?"), params.push(checkSerial(filter.afterSerial));
    const limit = Math.min(Math.max(1, filter.limit ?? 100), MAX_LIST);
    // One row more than asked: whether another page exists, without an empty last page.
    const rows = await this.db.all<Omit<TokenRow, "seed">>(
      `SELECT ${STATUS_COLUMNS} FROM tokens WHERE ${where.join(" AND ")} ORDER BY serial LIMIT ${limit + 1}`,
      params,
    );
    const tokens = rows.slice(0, limit).map((r) => toStatus(r as TokenRow));
    return { tokens, next: rows.length > limit ? tokens[limit - 1].serial : null };
  }

  /** How many tokens are in each state; every state is listed, 0 when none. */
  async countByState(): Promise<Record<TokenState, number>> {
    const rows = await this.db.all<{ state: TokenState; n: number }>(`SELECT state, COUNT(*) AS n FROM tokens WHERE ${LIVE} GROUP BY state`);
    const counts = Object.fromEntries(TOKEN_STATES.map((s) => [s, 0])) as Record<TokenState, number>;
    for (const r of rows) counts[r.state] = Number(r.n);
    return counts;
  }

  async auditTrail(filter: { serial?: string; customer?: string; afterId?: number; limit?: number } = {}): Promise<AuditRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.serial !== undefined) where.push("serial = ?"), params.push(checkSerial(filter.serial));
    if (filter.customer !== undefined) where.push("customer = ?"), params.push(checkCustomer(filter.customer));
    if (filter.afterId !== undefined) where.push("id > ?"), params.push(filter.afterId);
    const limit = Math.min(Math.max(1, filter.limit ?? 1000), 10_000);
    const rows = await this.db.all<{ id: number; at: number; actor: string; source: string; action: string; outcome: string; serial: string | null; customer: string | null; detail: string | null }>(
      `SELECT * FROM audit${where.length ? " WHERE " + where.join(" AND ") : ""} ORDER BY id LIMIT ${limit}`,
      params,
    );
    return rows.map((r) => ({ ...r, id: Number(r.id), at: iso(r.at)!, detail: r.detail ? JSON.parse(r.detail) : null }));
  }

  /** Audits something done outside a token transaction (key management, imports refused before the store). */
  async note(actor: Actor, action: string, outcome: string, detail?: Record<string, unknown>, serial: string | null = null): Promise<void> {
    await this.db.tx((t) => this.audit(t, actor, action, outcome, serial, null, detail));
  }

  // ---------------------------------------------------------------- customer (channel)

  /** issued -> active, by the first code the keyfob shows. Selects by serial or by customer. */
  async activate(by: { serial: string } | { customer: string }, code: string, actor: Actor): Promise<Acceptance> {
    if ("serial" in by) checkSerial(by.serial);
    else checkCustomer(by.customer);
    return this.decide(async (t) => {
      const row = "serial" in by ? await this.lockBySerial(t, by.serial) : await this.lockByCustomer(t, by.customer);
      if (!row) {
        if ("serial" in by) return unknownSerial(by.serial);
        return this.refuse(t, actor, "activate", "no_token", `customer ${by.customer} holds no token; issue one first`, null, by.customer);
      }
      checkCode(code, row.digits);
      switch (row.state) {
        case "issued":
          break;
        case "retired":
          if (row.withdrawn && BARRING_REASONS.includes(row.withdrawn)) {
            return this.refuse(t, actor, "activate", "retired", `token ${row.serial} was reported ${row.withdrawn}; it is never used again`, row.serial, row.customer, { withdrawn: row.withdrawn });
          }
          return this.refuse(t, actor, "activate", "retired", `token ${row.serial} was deactivated; it must be issued again before it can be activated`, row.serial, row.customer);
        case "in_stock":
          return this.refuse(t, actor, "activate", "not_issued", `token ${row.serial} is in stock; issue it to a customer first`, row.serial, null);
        case "active":
          return this.refuse(t, actor, "activate", "already_active", `token ${row.serial} is already active`, row.serial, row.customer);
        case "locked":
          return this.refuse(t, actor, "activate", "locked", `token ${row.serial} is locked; staff must unlock it`, row.serial, row.customer);
      }
      const outside = this.outsideValidity(t, row, actor, "activate", row.customer);
      if (outside) return outside;
      const check = this.checkCode(row, code, this.policy.activationWindow, false);
      if (!check.ok) return this.fail(t, row, actor, "activate", check);
      const now = this.now();
      await this.changeAudited(t, actor, {
        sql: `UPDATE tokens SET state = 'active', drift = ?, last_step = ?, clock_obs = ?, fail_count = 0, activated_at = ?, updated_at = ? WHERE serial = ?`,
        params: [check.drift, check.step, JSON.stringify(check.observations), now, now, row.serial],
      }, [{ action: "activate", outcome: "ok", serial: row.serial, customer: row.customer, detail: { drift: check.drift } }]);
      return { serial: row.serial, customer: row.customer, state: "active" as const, step: check.step, drift: check.drift };
    });
  }

  /** Checks a customer's code: accepted at most once, within the window around the learned drift. */
  async verify(customer: string, code: string, actor: Actor): Promise<Acceptance> {
    return this.useCode("verify", customer, code, actor);
  }

  /** active -> retired, proven by a current code (the bank checks the transaction password first). */
  async deactivate(customer: string, code: string, actor: Actor): Promise<Acceptance> {
    return this.useCode("deactivate", customer, code, actor);
  }

  private async useCode(action: "verify" | "deactivate", customer: string, code: string, actor: Actor): Promise<Acceptance> {
    checkCustomer(customer);
    return this.decide(async (t) => {
      const row = await this.lockByCustomer(t, customer);
      if (!row) return this.refuse(t, actor, action, "no_token", `customer ${customer} holds no token`, null, customer);
      checkCode(code, row.digits);
      if (row.state === "locked") return this.refuse(t, actor, action, "locked", `token ${row.serial} is locked after repeated wrong codes; staff must unlock it`, row.serial, customer);
      if (row.state !== "active") return this.refuse(t, actor, action, "not_active", `token ${row.serial} is ${row.state}; activate it with its first code`, row.serial, customer, { state: row.state });
      const outside = this.outsideValidity(t, row, actor, action, customer);
      if (outside) return outside;
      const check = this.checkCode(row, code, this.policy.window, true);
      if (!check.ok) return this.fail(t, row, actor, action, check);
      const state: TokenState = action === "deactivate" ? "retired" : "active";
      await this.changeAudited(t, actor, {
        sql: `UPDATE tokens SET state = ?, drift = ?, last_step = ?, clock_obs = ?, fail_count = 0, updated_at = ? WHERE serial = ?`,
        params: [state, check.drift, check.step, JSON.stringify(check.observations), this.now(), row.serial],
      }, [{ action, outcome: "ok", serial: row.serial, customer, detail: { drift: check.drift } }]);
      return { serial: row.serial, customer, state, step: check.step, drift: check.drift };
    });
  }

  // ---------------------------------------------------------------- keys

  /**
   * Runs a write that seals under the key ring's newest key. If the database
   * refuses it because that key is retired (a rotation this process has not
   * yet seen in its key file), the file is re-read at once and the write
   * runs again under the newer key; if the file holds none, the write is
   * refused as unavailable (the operator must give this server the rotated
   * file). Nothing is ever written under a retired key.
   */
  private async sealing<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const used = this.keys.currentId;
      try {
        return await fn();
      } catch (e) {
        if (!kekRetired(e)) throw e;
        this.keys.reload();
        if (this.keys.currentId === used || attempt >= 3) {
          throw new RegistryError(
            "key_retired",
            `the database records key-encryption key ${used} as retired, and the key file holds no newer key: give this process the rotated key file`,
            "unavailable",
            { kekId: used },
          );
        }
      }
    }
  }

  /**
   * Records every key but the key ring's newest as retired, in the database
   * that all servers share: from that commit on, the database refuses any
   * row sealed under them (migration 3), so a server that has not re-read
   * the key file yet has its write refused, re-reads it and seals under the
   * newest key. Must follow the new key's arrival in the file. Returns the
   * keys retired now (already retired ones are left as they are).
   */
  async retireOlderKeys(actor: Actor): Promise<string[]> {
    const [newest, ...older] = this.keys.ids;
    this.keys.currentId; // fails clearly when the ring has no key
    const now = this.now();
    const retired = await this.db.tx(async (t) => {
      const state = await t.get<{ state: string }>("SELECT state FROM kek_states WHERE kek_id = ?", [newest]);
      if (state && state.state !== "active") {
        throw new RegistryError("key_retired", `the key file's newest key ${newest} is ${state.state} in the database; a retired key is never used again: run bank rotate-key to add a new one`, "refused", { kekId: newest });
      }
      await t.run("INSERT INTO kek_states (kek_id, state, changed_at) VALUES (?, 'active', ?) ON CONFLICT (kek_id) DO NOTHING", [newest, now]);
      const out: string[] = [];
      for (const id of older) {
        // On PostgreSQL the update waits for transactions that passed the trigger's check under this key (FOR SHARE).
        const n = await t.run(
          "INSERT INTO kek_states (kek_id, state, changed_at) VALUES (?, 'retired', ?) ON CONFLICT (kek_id) DO UPDATE SET state = 'retired', changed_at = excluded.changed_at WHERE kek_states.state = 'active'",
          [id, now],
        );
        if (n) out.push(id);
      }
      return out;
    });
    if (retired.length) await this.note(actor, "retire_key", "ok", { kekIds: retired, newest });
    return retired;
  }

  /**
   * Marks retired keys of the key file pruned, each only in a transaction
   * that counts no row (token or registry secret) sealed under it: the
   * proof and the mark commit together, and the triggers refuse any later
   * write under the key, so no row can ever be left under a dropped key.
   * A key still in use is re-sealed and tried again. Returns the ids proven
   * unused; the caller then drops them from the key file (KeyRing.dropKeys).
   * A crash between the two leaves a pruned key in the file, dropped by the
   * next prune.
   */
  async pruneRetiredKeys(actor: Actor): Promise<string[]> {
    const [, ...older] = this.keys.ids;
    const pruned: string[] = [];
    for (const id of older) {
      for (let attempt = 1; ; attempt++) {
        const outcome = await this.db.tx(async (t) => {
          const marked = await t.run("UPDATE kek_states SET state = 'pruned', changed_at = ? WHERE kek_id = ? AND state IN ('retired', 'pruned')", [this.now(), id]);
          if (!marked) return "not_retired" as const;
          const rows = await t.get<{ n: number }>("SELECT (SELECT COUNT(*) FROM tokens WHERE kek_id = ?) + (SELECT COUNT(*) FROM registry_secrets WHERE kek_id = ?) AS n", [id, id]);
          // Rolls the mark back with the transaction.
          if (Number(rows?.n ?? 0) > 0) throw new StillInUse(Number(rows!.n));
          return "pruned" as const;
        }).catch((e) => {
          if (e instanceof StillInUse) return e;
          throw e;
        });
        if (outcome === "pruned") {
          pruned.push(id);
          break;
        }
        if (outcome === "not_retired") break; // never retired: kept (retireOlderKeys runs first)
        if (attempt >= 5) {
          throw new RegistryError("key_in_use", `key ${id} still seals ${outcome.rows} row(s) after ${attempt} re-sealing passes; it was kept`, "refused", { kekId: id, rows: outcome.rows });
        }
        await this.resealAll(actor);
      }
    }
    if (pruned.length) await this.note(actor, "prune_key", "ok", { kekIds: pruned });
    return pruned;
  }

  /**
   * Re-seals every seed not under the key ring's newest key, one row per
   * transaction (a conditional update on the old key id), so verifications
   * run on throughout; the registry's own secrets (the seed-index key) too.
   * The same pass fills the seed index of rows that have none (rows from
   * before migration 3). A seed already indexed for another token is left
   * unindexed and reported: two tokens that share a seed predate the index,
   * and staff must withdraw one. Passes repeat until one changes nothing.
   */
  async resealAll(actor: Actor): Promise<{ kekId: string; resealed: number; indexed: number; duplicateSeeds: [string, string][] }> {
    const target = this.keys.currentId;
    const indexKey = await this.seedIndexKey();
    let resealed = 0;
    let indexed = 0;
    const duplicates = new Map<string, string>();
    const retiredMeanwhile = (e: unknown) => {
      if (kekRetired(e)) throw new RegistryError("key_retired", `key ${target} was retired by another rotation while this one ran; run rotate-key again`, "refused", { kekId: target });
      throw e;
    };
    for (const { name } of await this.db.all<{ name: string }>("SELECT name FROM registry_secrets WHERE kek_id <> ?", [target])) {
      await this.db
        .tx(async (t) => {
          const row = await t.get<{ kek_id: string; sealed: Uint8Array }>(`SELECT kek_id, sealed FROM registry_secrets WHERE name = ?${this.db.forUpdate}`, [name]);
          if (!row || row.kek_id === target) return 0;
          const secret = this.keys.openSecret(name, { kekId: row.kek_id, blob: Buffer.from(row.sealed) });
          try {
            const sealed = this.keys.sealSecret(name, secret);
            if (sealed.kekId !== target) throw new RegistryError("key_changed", `key file changed during rotation (newest key is now ${sealed.kekId}); run rotate-key again`, "refused");
            return t.run("UPDATE registry_secrets SET kek_id = ?, sealed = ? WHERE name = ? AND kek_id = ?", [sealed.kekId, sealed.blob, name, row.kek_id]);
          } finally {
            secret.fill(0);
          }
        })
        .catch(retiredMeanwhile);
    }
    for (;;) {
      let changed = 0;
      let after = "";
      for (;;) {
        const batch = await this.db.all<{ serial: string }>("SELECT serial FROM tokens WHERE (kek_id <> ? OR seed_index IS NULL) AND serial > ? ORDER BY serial LIMIT 200", [target, after]);
        if (batch.length === 0) break;
        after = batch[batch.length - 1].serial;
        for (const { serial } of batch) {
          const r = await this.db
            .tx(async (t) => {
              const row = await t.get<TokenRow & { seed_index: Uint8Array | null }>(`SELECT serial, kek_id, seed, seed_index FROM tokens WHERE serial = ?${this.db.forUpdate}`, [serial]);
              const none = { resealed: 0, indexed: 0, duplicateOf: undefined as string | undefined };
              if (!row) return none;
              const reseal = row.kek_id !== target;
              if (!reseal && row.seed_index !== null) return none;
              const secret = this.secretOf(row);
              try {
                let index: Buffer | null = null;
                let duplicateOf: string | undefined;
                if (row.seed_index === null) {
                  index = seedIndex(indexKey, secret);
                  const other = await t.get<{ serial: string }>("SELECT serial FROM tokens WHERE seed_index = ?", [index]);
                  if (other) (duplicateOf = other.serial), (index = null);
                }
                if (reseal) {
                  const sealed = this.keys.seal(serial, secret);
                  if (sealed.kekId !== target) throw new RegistryError("key_changed", `key file changed during rotation (newest key is now ${sealed.kekId}); run rotate-key again`, "refused");
                  const n = await t.run("UPDATE tokens SET kek_id = ?, seed = ?, seed_index = COALESCE(?, seed_index) WHERE serial = ? AND kek_id = ?", [sealed.kekId, sealed.blob, index, serial, row.kek_id]);
                  return { resealed: n, indexed: n && index ? 1 : 0, duplicateOf };
                }
                const n = index ? await t.run("UPDATE tokens SET seed_index = ? WHERE serial = ? AND seed_index IS NULL", [index, serial]) : 0;
                return { resealed: 0, indexed: n, duplicateOf };
              } finally {
                secret.fill(0);
              }
            })
            .catch(retiredMeanwhile);
          resealed += r.resealed;
          indexed += r.indexed;
          changed += r.resealed + r.indexed;
          if (r.duplicateOf) duplicates.set(serial, r.duplicateOf);
        }
      }
      // Rows a server sealed under the old key before the retirement committed are caught by the next pass.
      if (changed === 0) break;
    }
    const duplicateSeeds = [...duplicates.entries()];
    await this.note(actor, "rotate_key", "ok", { kekId: target, resealed, indexed, ...(duplicateSeeds.length ? { duplicateSeeds } : {}) });
    return { kekId: target, resealed, indexed, duplicateSeeds };
  }

  /** Key ids still used by rows, with counts. */
  async kekUsage(): Promise<Record<string, number>> {
    const rows = await this.db.all<{ kek_id: string; n: number }>("SELECT kek_id, COUNT(*) AS n FROM tokens GROUP BY kek_id");
    return Object.fromEntries(rows.map((r) => [r.kek_id, Number(r.n)]));
  }
}

/** A prune's count found rows under the key: the transaction rolls back. */
class StillInUse extends Error {
  constructor(readonly rows: number) {
    super(`${rows} row(s) still sealed under the key`);
  }
}
