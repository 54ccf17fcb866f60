/**
 * The bank's token registry: the public face of host/registry. It checks
 * the input (validation.ts), decides by the lifecycle table (lifecycle.ts)
 * and the code-window search (code-window.ts), opens seeds with the key
 * ring (key-ring.ts), and hands each decision to the TokenStore of its
 * engine (token-store.ts), which owns the SQL and the audit writes:
 *
 * (the lifecycle's diagram is generated from lifecycle.ts into
 * host/registry/README.md).
 *
 * A decision is a pure function of the token's row, the input and the
 * clock (`Decide`), so the store may make it again on a fresher row:
 * SQLite decides inside a transaction holding the write lock; PostgreSQL
 * applies it with one compare-and-set statement (postgres-token-store.ts).
 * Either way, across any number of server processes, a code is accepted at
 * most once (the accepted step must exceed the stored last step, which the
 * write checks is unchanged) and failures are counted exactly
 * (privacyIDEA and Keycloak updated the last step without such a check and
 * could accept one code twice).
 */
import type { Database } from "./database.js";
import { uniqueViolation } from "./database.js";
import type { KeyRing } from "./key-ring.js";
import { findCode, findResync, type CodeMatch } from "./code-window.js";
import { stateRefusal, type Action } from "./lifecycle.js";
import type { PostgresDatabase } from "./postgres-database.js";
import { PostgresTokenStore } from "./postgres-token-store.js";
import { SqlTokenStore, iso, toStatus, type ImportsCleared } from "./sql-token-store.js";
import type { SqliteDatabase } from "./sqlite-database.js";
import { SqliteTokenStore } from "./sqlite-token-store.js";
import type { AuditEntry, Decision, TokenRow, WithinDecision } from "./token-store.js";
import { tokenHoldsSeed } from "./token-store.js";
import { SoftTokens } from "./soft-tokens.js";

/**
 * What a guard refuses a row with, or undefined to go on; the decision applies
 * it to the row it is made from (maker-checker in approvals.ts; the console's
 * "this keyfob, not whichever the customer holds now"). Pure.
 */
export type RowGuard = (row: TokenRow) => { code: string; message: string; detail?: Record<string, unknown> } | undefined;
export type UnlockGuard = RowGuard;
import { checkCodeFormat, checkCustomer, checkNewToken, checkSerial, checkState, checkWithdrawReason, boundedList, someOf, unknownSerial } from "./validation.js";
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
} from "./types.js";

export { MAX_LIST, STAGE_ABOVE, STALE_IMPORT_MS, type ImportsCleared } from "./sql-token-store.js";
export { checkCustomer, checkNewToken, checkSerial } from "./validation.js";


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

export class Registry {
  readonly policy: Policy;
  private readonly now: () => number;
  readonly keys: KeyRing;
  /** The engine's store: every SQL statement and audit write (token-store.ts). */
  readonly store: SqlTokenStore;
  /** The software token's issuance, set-up and registration status (soft-tokens.ts). */
  readonly soft: SoftTokens;

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
    this.store = db.dialect === "postgres" ? new PostgresTokenStore(db as PostgresDatabase, this.keys, this.now) : new SqliteTokenStore(db as SqliteDatabase, this.keys, this.now);
    this.soft = new SoftTokens(this.store, this.keys, this.now);
  }

  // ---------------------------------------------------------------- decisions (pure: see Decide in token-store.ts)

  private secretOf(row: TokenRow): Buffer {
    // A soft token awaiting set-up holds its OPAQUE record: every decision refuses it before asking for a seed.
    if (!tokenHoldsSeed(row)) throw new Error(`token ${row.serial} awaits its set-up and holds no seed`);
    return this.keys.open(row.serial, { kekId: row.kek_id, blob: Buffer.from(row.seed) });
  }

  /** Runs fn on the token's opened seed, wiped after. */
  private withSeed<T>(row: TokenRow, fn: (secret: Buffer) => T): T {
    const secret = this.secretOf(row);
    try {
      return fn(secret);
    } finally {
      secret.fill(0);
    }
  }

  /** A refusal: audited, the token unchanged. */
  private refusal(action: string, code: string, message: string, serial: string | null, customer: string | null, detail: Record<string, unknown> = {}): Decision<never> {
    return {
      audit: [{ action, outcome: code, serial, customer, ...(Object.keys(detail).length ? { detail } : {}) }],
      outcome: new RegistryError(code, message, "refused", { ...(serial ? { serial } : {}), ...detail }),
    };
  }

  /** Keyfob-only actions on a software token (lifecycle.ts `kinds`): issue (a soft row is never issued again), resync (a phone's clock is NTP-set). */
  private notKeyfob(action: "issue" | "resync", row: TokenRow, customer: string | null): Decision<never> {
    const why = action === "issue" ? "a software token is never issued again: issue a new one (soft-issue)" : "a software token's clock is the phone's, set by the network; resync is for keyfobs";
    return this.refusal(action, "not_keyfob", `token ${row.serial} is a software token; ${why}`, row.serial, customer);
  }

  /** The lifecycle table's refusal for this action from the token's state, or undefined. */
  private byState(action: Action, row: TokenRow, customer: string | null): Decision<never> | undefined {
    const r = stateRefusal(action, row.state);
    if (!r) return undefined;
    const t = { serial: row.serial, state: row.state, withdrawn: row.withdrawn ?? null };
    return this.refusal(action, r.code, r.message(t), row.serial, customer, r.detail?.(t) ?? {});
  }

  /**
   * Records a wrong code: counts it, locks at lockAfter, audits. A replay is
   * a code that was right once: no guess, so it does not count toward the
   * lock (a double-submitted form must not lock a customer out).
   */
  private fail(row: TokenRow, action: string, check: { replayed: boolean }): Decision<never> {
    const failures = row.fail_count + (check.replayed ? 0 : 1);
    const locks = failures >= this.policy.lockAfter;
    const code = check.replayed ? "replayed" : "wrong_code";
    const audit: AuditEntry[] = [{ action, outcome: code, serial: row.serial, customer: row.customer, detail: { failures, locked: locks } }];
    if (locks) audit.push({ action: "lock", outcome: "ok", serial: row.serial, customer: row.customer, detail: { failures, after: action } });
    const message = check.replayed ? "code was already used (or is older than one used); wait for the next code" : "wrong code";
    return {
      change: { fail_count: failures, state: locks ? "locked" : row.state, updated_at: this.now() },
      audit,
      outcome: new RegistryError(code, message + (locks ? `; token locked after ${failures} wrong codes in a row, staff must unlock it` : ""), "refused", {
        serial: row.serial,
        failures,
        locked: locks,
      }),
    };
  }

  /**
   * RFC 6030 §5: a key must not be used before its StartDate or after its
   * ExpiryDate. The refusal (audited) for a token outside them now, or
   * undefined. `expiredOnly`: issuing ahead of the start date is fine.
   */
  private outsideValidity(row: TokenRow, action: string, customer: string | null, expiredOnly = false): Decision<never> | undefined {
    const now = this.now();
    if (!expiredOnly && row.not_before !== null && now < Number(row.not_before)) {
      const from = iso(row.not_before);
      return this.refusal(action, "not_yet_valid", `token ${row.serial} may not be used before ${from} (the StartDate its PSKC file gave)`, row.serial, customer, { notBefore: from });
    }
    if (row.not_after !== null && now > Number(row.not_after)) {
      const until = iso(row.not_after);
      return this.refusal(action, "expired", `token ${row.serial} expired at ${until} (the ExpiryDate its PSKC file gave); issue the customer another keyfob`, row.serial, customer, { notAfter: until });
    }
    return undefined;
  }

  private findCode(row: TokenRow, code: string, window: number, useModel: boolean): CodeMatch {
    return this.withSeed(row, (secret) => findCode(row, secret, code, { window, useModel, nowMs: this.now(), maxDriftPpm: this.policy.maxDriftPpm }));
  }

  // ---------------------------------------------------------------- factory

  /**
   * Adds tokens in stock, all or none: one duplicate serial (in the batch or
   * already registered) or seed refuses the lot and names every duplicate.
   * Inputs larger than STAGE_ABOVE are staged in short transactions
   * (SqlTokenStore.registerStaged).
   */
  async register(tokens: NewToken[], actor: Actor, origin: string, notes: AuditEntry[] = []): Promise<{ registered: string[] }> {
    if (tokens.length === 0) throw new RegistryError("empty", "no tokens to register", "bad_input");
    for (const tok of tokens) checkNewToken(tok);
    const seen = new Set<string>();
    const inBatch = tokens.map((x) => x.serial).filter((s) => (seen.has(s) ? true : (seen.add(s), false)));
    if (inBatch.length) {
      const twice = [...new Set(inBatch)];
      throw new RegistryError("duplicate_serial", `serial(s) appear twice in the input: ${someOf(twice)}`, "refused", boundedList("serials", twice));
    }
    return this.store.register(tokens, actor, origin, notes);
  }

  /**
   * The factory's registration call: one token, idempotent. A retry of a
   * registration whose reply was lost (same serial, parameters and seed) is
   * answered as done; the same serial with anything different is a
   * duplicate, refused as in register().
   */
  async registerOne(tok: NewToken, actor: Actor, origin: string): Promise<{ registered: string[]; alreadyRegistered: boolean }> {
    checkNewToken(tok);
    return this.store.registerOne(tok, actor, origin);
  }

  /** Finishes what dead imports left: settles committed batches, deletes abandoned ones and orphaned staged rows. */
  async clearStaleImports(actor: Actor): Promise<ImportsCleared> {
    return this.store.clearStaleImports(actor);
  }

  // ---------------------------------------------------------------- staff

  /** in_stock or retired -> issued to a customer (a retired keyfob is re-issued this way). */
  async issue(serial: string, customer: string, actor: Actor): Promise<TokenStatus> {
    checkSerial(serial);
    checkCustomer(customer);
    try {
      return await this.store.decide({ serial }, actor, (row, holder) => {
        if (!row) throw unknownSerial(serial);
        if (row.kind === "soft") return this.notKeyfob("issue", row, customer);
        const refused = this.byState("issue", row, customer);
        if (refused) return refused;
        if (row.withdrawn && BARRING_REASONS.includes(row.withdrawn)) {
          return this.refusal("issue", "barred", `token ${serial} was reported ${row.withdrawn}; a keyfob that was out of the bank's and the customer's hands may have had its key read, so it is never issued again`, serial, customer, { withdrawn: row.withdrawn });
        }
        const outside = this.outsideValidity(row, "issue", customer, true);
        if (outside) return outside;
        if (holder) {
          return this.refusal("issue", "customer_has_token", `customer ${customer} already holds token ${holder.serial} (${holder.state}); deactivate it first`, serial, customer, { heldSerial: holder.serial });
        }
        const now = this.now();
        // The wrong-code count stays with the keyfob (lifecycle.ts, "Issuing again"): a withdrawal does not clear
        // it and an issue carries it on, to whichever customer, so one withdrawn while locked comes back locked,
        // for the unlock path (audited; maker-checker counts it). Carried for the same customer only, a detour
        // through a made-up one (withdraw, issue to X, withdraw, issue back) cleared it with no unlock.
        const carried = row.state === "retired" ? Number(row.fail_count) : 0;
        const locked = carried >= this.policy.lockAfter;
        const change = { state: locked ? ("locked" as const) : ("issued" as const), customer, issuance: row.issuance + 1, fail_count: carried, activated_at: null, withdrawn: null, updated_at: now };
        const kept = carried ? { failures: carried, ...(locked ? { lockedAtWithdrawal: true } : {}) } : {};
        return {
          change,
          audit: [{ action: "issue", outcome: "ok", serial, customer, detail: { from: row.state, issuance: row.issuance + 1, ...(row.withdrawn ? { withdrawn: row.withdrawn } : {}), ...kept } }],
          outcome: toStatus({ ...row, ...change }),
        };
      }, { holderOf: customer });
    } catch (e) {
      if (uniqueViolation(e)) throw new RegistryError("customer_has_token", `customer ${customer} was issued another token concurrently`, "refused", { serial });
      throw e;
    }
  }

  /**
   * locked -> active (or back to issued if it was locked before ever being activated).
   * `guard` (maker-checker, approvals.ts) sees the row the decision is made from,
   * every time it is made (pure, like the decision: PostgreSQL's compare-and-set
   * may decide again from a fresher row); a refusal it names is audited and thrown.
   * `within`: statements that commit with the unlock, in its transaction
   * (maker-checker's claim of the approval, token-store.ts WithinDecision).
   * `note`: more for the `ok` record's detail (the CLI's break-glass unlock says so, approvals.ts).
   */
  async unlock(customer: string, actor: Actor, guard?: UnlockGuard, within?: WithinDecision, note?: Record<string, unknown>): Promise<TokenStatus> {
    checkCustomer(customer);
    return this.store.decide({ customer }, actor, (row) => {
      if (!row) return this.refusal("unlock", "no_token", `customer ${customer} holds no token`, null, customer);
      const byState = this.byState("unlock", row, customer);
      if (byState) return byState;
      const g = guard?.(row);
      const refused = g ? this.refusal("unlock", g.code, g.message, row.serial, customer, g.detail ?? {}) : undefined;
      if (refused) return refused;
      const state: TokenState = row.activated_at === null ? "issued" : "active";
      const change = { state, fail_count: 0, updated_at: this.now() };
      return {
        change,
        audit: [{ action: "unlock", outcome: "ok", serial: row.serial, customer, detail: { to: state, failures: row.fail_count, ...note } }],
        outcome: toStatus({ ...row, ...change }),
      };
    }, within ? { within } : {});
  }

  /**
   * Staff take a customer's keyfob out of use without its code, which the
   * customer's own deactivation needs and a lost keyfob cannot give:
   * issued, active or locked -> retired, and the customer may be issued
   * another keyfob at once. "returned" and "faulty" keyfobs are back in the
   * bank's hands and may be issued again; "lost" and "stolen" ones never are
   * (BARRING_REASONS). The reason is kept on the token and in the audit.
   */
  async withdraw(customer: string, reason: WithdrawReason, actor: Actor, guard?: RowGuard): Promise<TokenStatus> {
    checkCustomer(customer);
    checkWithdrawReason(reason);
    return this.store.decide({ customer }, actor, (row) => {
      if (!row) return this.refusal("withdraw", "no_token", `customer ${customer} holds no token`, null, customer, { reason });
      const g = guard?.(row);
      if (g) return this.refusal("withdraw", g.code, g.message, row.serial, customer, { reason, ...(g.detail ?? {}) });
      // fail_count is kept: issued again to this customer, the keyfob carries it on (issue()).
      const change = { state: "retired" as const, withdrawn: reason, updated_at: this.now() };
      return {
        change,
        audit: [{ action: "withdraw", outcome: "ok", serial: row.serial, customer, detail: { reason, from: row.state } }],
        outcome: toStatus({ ...row, ...change }),
      };
    });
  }

  /**
   * Re-learns the drift of a keyfob that wandered beyond the window, from two
   * consecutive codes found within ±resyncWindow steps (code-window.ts).
   */
  async resync(serial: string, codes: [string, string], actor: Actor): Promise<Acceptance> {
    checkSerial(serial);
    return this.store.decide({ serial }, actor, (row) => {
      if (!row) throw unknownSerial(serial);
      if (row.kind === "soft") return this.notKeyfob("resync", row, row.customer);
      checkCodeFormat(codes[0], row.digits);
      checkCodeFormat(codes[1], row.digits);
      const refused = this.byState("resync", row, row.customer) ?? this.outsideValidity(row, "resync", row.customer);
      if (refused) return refused;
      const w = this.policy.resyncWindow;
      const found = this.withSeed(row, (secret) => findResync(row, secret, codes, { window: w, nowMs: this.now() }));
      if (!found) {
        return this.refusal("resync", "resync_failed", `the two codes are not consecutive codes of token ${serial} within ${w} steps of now`, serial, row.customer);
      }
      return {
        change: { drift: found.drift, last_step: found.step, clock_obs: JSON.stringify(found.observations), fail_count: 0, updated_at: this.now() },
        audit: [{ action: "resync", outcome: "ok", serial, customer: row.customer, detail: { drift: found.drift, previousDrift: row.drift } }],
        outcome: { serial, customer: row.customer, state: row.state, step: found.step, drift: found.drift },
      };
    });
  }

  // ---------------------------------------------------------------- reads (never open a seed)

  async status(serial: string): Promise<TokenStatus> {
    return this.store.status(checkSerial(serial));
  }

  async statusOfCustomer(customer: string): Promise<TokenStatus> {
    return this.store.statusOfCustomer(checkCustomer(customer));
  }

  /**
   * Tokens in serial order, of one state if given (staff: "who is locked out
   * now?"); page with afterSerial = next. limit: default 100, clamped to
   * 1..MAX_LIST; next is null once the list is exhausted.
   */
  async listTokens(filter: { state?: TokenState; afterSerial?: string; limit?: number } = {}): Promise<{ tokens: TokenStatus[]; next: string | null }> {
    if (filter.state !== undefined) checkState(filter.state);
    if (filter.afterSerial !== undefined) checkSerial(filter.afterSerial);
    return this.store.listTokens(filter);
  }

  /** How many tokens are in each state; every state is listed, 0 when none. */
  async countByState(): Promise<Record<TokenState, number>> {
    return this.store.countByState();
  }

  /**
   * Audit records, oldest first. `actor`: only that actor's (the API scopes a
   * lookup by request id to the calling key). A lookup by `request` needs a
   * customer or serial: request_id has no index of its own (every
   * verification would pay for one), so alone it would read the whole table.
   */
  async auditTrail(filter: { serial?: string; customer?: string; request?: string; actor?: string; afterId?: number; limit?: number } = {}): Promise<AuditRecord[]> {
    if (filter.request !== undefined && filter.serial === undefined && filter.customer === undefined) {
      throw new RegistryError("bad_request", "a lookup by request must also give customer or serial (request ids have no index of their own: alone it would read the whole audit)", "bad_input");
    }
    if (filter.serial !== undefined) checkSerial(filter.serial);
    if (filter.customer !== undefined) checkCustomer(filter.customer);
    return this.store.auditTrail(filter);
  }

  /** Audits something done outside a token decision (key management, imports refused before the store). */
  async note(actor: Actor, action: string, outcome: string, detail?: Record<string, unknown>, serial: string | null = null, customer: string | null = null): Promise<void> {
    return this.store.note(actor, action, outcome, detail, serial, customer);
  }

  // ---------------------------------------------------------------- customer (channel)

  /** issued -> active, by the first code the keyfob shows. Selects by serial or by customer. */
  async activate(by: { serial: string } | { customer: string }, code: string, actor: Actor): Promise<Acceptance> {
    if ("serial" in by) checkSerial(by.serial);
    else checkCustomer(by.customer);
    return this.store.decide(by, actor, (row) => {
      if (!row) {
        if ("serial" in by) throw unknownSerial(by.serial);
        return this.refusal("activate", "no_token", `customer ${by.customer} holds no token; issue one first`, null, by.customer);
      }
      checkCodeFormat(code, row.digits);
      const refused = this.byState("activate", row, row.customer) ?? this.outsideValidity(row, "activate", row.customer);
      if (refused) return refused;
      if (!tokenHoldsSeed(row)) {
        return this.refusal("activate", "not_set_up", `software token ${row.serial} is not set up yet: set up the app with the service ID, user ID and activation password first`, row.serial, row.customer);
      }
      // A keyfob may have sat in stock for a year since its clock was set (activationWindow); a phone's clock is
      // set by the network (NTP or the carrier's NITZ), so a soft token's first code gets the ordinary window.
      const check = this.findCode(row, code, row.kind === "soft" ? this.policy.window : this.policy.activationWindow, false);
      if (!check.ok) return this.fail(row, "activate", check);
      const now = this.now();
      return {
        change: { state: "active", drift: check.drift, last_step: check.step, clock_obs: JSON.stringify(check.observations), fail_count: 0, activated_at: now, updated_at: now },
        audit: [{ action: "activate", outcome: "ok", serial: row.serial, customer: row.customer, detail: { drift: check.drift } }],
        outcome: { serial: row.serial, customer: row.customer, state: "active" as const, step: check.step, drift: check.drift },
      };
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
    return this.store.decide({ customer }, actor, (row) => {
      if (!row) return this.refusal(action, "no_token", `customer ${customer} holds no token`, null, customer);
      checkCodeFormat(code, row.digits);
      const refused = this.byState(action, row, customer) ?? this.outsideValidity(row, action, customer);
      if (refused) return refused;
      const check = this.findCode(row, code, this.policy.window, true);
      if (!check.ok) return this.fail(row, action, check);
      const state: TokenState = action === "deactivate" ? "retired" : "active";
      return {
        change: { state, drift: check.drift, last_step: check.step, clock_obs: JSON.stringify(check.observations), fail_count: 0, updated_at: this.now() },
        audit: [{ action, outcome: "ok", serial: row.serial, customer, detail: { drift: check.drift } }],
        outcome: { serial: row.serial, customer, state, step: check.step, drift: check.drift },
      };
    });
  }

  // ---------------------------------------------------------------- keys (SqlTokenStore: rotation)

  /** Refuses, before a rotation changes anything, when the key file lacks a key the database needs (SqlTokenStore.refuseOutdatedKeyFile). */
  async refuseOutdatedKeyFile(): Promise<void> {
    return this.store.refuseOutdatedKeyFile();
  }

  /** Records every key but the key ring's newest as retired, in the database all servers share (SqlTokenStore.retireOlderKeys). */
  async retireOlderKeys(actor: Actor): Promise<string[]> {
    return this.store.retireOlderKeys(actor);
  }

  /** Marks retired keys pruned once no row uses them, re-sealing what is left (SqlTokenStore.pruneRetiredKeys). */
  async pruneRetiredKeys(actor: Actor): Promise<string[]> {
    return this.store.pruneRetiredKeys(actor);
  }

  /** Re-seals every seed not under the key ring's newest key (SqlTokenStore.resealAll). */
  async resealAll(actor: Actor): Promise<{ kekId: string; resealed: number; indexed: number; duplicateSeeds: [string, string][] }> {
    return this.store.resealAll(actor);
  }

  /** Key ids still used by rows, with counts. */
  async kekUsage(): Promise<Record<string, number>> {
    return this.store.kekUsage();
  }
}
