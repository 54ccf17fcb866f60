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
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Database, Sql } from "./database.js";
import { kekRetired, uniqueViolation } from "./database.js";
import type { KeyRing } from "./key-ring.js";
import { findCode, findResync, type CodeMatch } from "./code-window.js";
import { stateRefusal, type Action } from "./lifecycle.js";
import type { PostgresDatabase } from "./postgres-database.js";
import { PostgresTokenStore } from "./postgres-token-store.js";
import { INDEX_KEY_BYTES, SEED_INDEX_SECRET, seedIndex } from "./seed-index.js";
import type { SqliteDatabase } from "./sqlite-database.js";
import { SqliteTokenStore } from "./sqlite-token-store.js";
import { LIVE, LIVE_STATES_SQL as LIVE_STATES, type AuditEntry, type Decision, type SqlTokenStore, type TokenRow } from "./token-store.js";
import { checkCodeFormat, checkCustomer, checkNewToken, checkSerial, checkState, checkWithdrawReason, unknownSerial } from "./validation.js";
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
} from "./types.js";

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

/** Every column but the sealed seed: what a status needs, for reads that never open a seed. */
const STATUS_COLUMNS =
  "serial, manufacturer, model, issuer, key_id, algorithm, digits, period, t0, kek_id, state, customer, issuance, drift, last_step, clock_obs, fail_count, activated_at, withdrawn, origin, created_at, updated_at";
/** Most tokens one listing returns. */
export const MAX_LIST = 1000;
/** Inputs larger than this are imported through a staging batch, in short transactions. */
export const STAGE_ABOVE = 500;
/** Rows per staging transaction: a few milliseconds of write lock each. */
const CHUNK_ROWS = 250;
/** Pause between staging transactions, longer than a SQLite waiter's back-off (MAX_BACKOFF_MS), so servers get the lock in between. */
const CHUNK_PAUSE_MS = 10;
/** A staging batch not heard from for this long was abandoned (its process died): the next import deletes its rows. */
export const STALE_IMPORT_MS = 60_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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

export class Registry {
  readonly policy: Policy;
  private readonly now: () => number;
  readonly keys: KeyRing;
  /** The engine's store: every SQL statement and audit write (token-store.ts). */
  readonly store: SqlTokenStore;

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
    this.store = db.dialect === "postgres" ? new PostgresTokenStore(db as PostgresDatabase, this.now) : new SqliteTokenStore(db as SqliteDatabase, this.now);
  }

  // ---------------------------------------------------------------- decisions (pure: see Decide in token-store.ts)

  private secretOf(row: TokenRow): Buffer {
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

  // ---------------------------------------------------------------- transactions outside the lifecycle (imports, notes)

  private async auditIn(t: Sql, actor: Actor, action: string, outcome: string, serial: string | null, customer: string | null, detail?: Record<string, unknown>): Promise<void> {
    const insert = this.store.auditInsert(actor, [{ action, outcome, serial, customer, detail }]);
    await t.run(insert.sql, insert.params);
  }

  private async refuseIn(t: Sql, actor: Actor, action: string, code: string, message: string, serial: string | null, customer: string | null, detail: Record<string, unknown> = {}): Promise<RegistryError> {
    await this.auditIn(t, actor, action, code, serial, customer, Object.keys(detail).length ? detail : undefined);
    return new RegistryError(code, message, "refused", { ...(serial ? { serial } : {}), ...detail });
  }

  /** Runs a transaction whose body returns either a value or a refusal to throw once committed. */
  private async txDecide<T>(fn: (t: Sql) => Promise<T | RegistryError>): Promise<T> {
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
      return await this.sealing(() => this.txDecide(async (t) => {
        const existing: string[] = [];
        for (let i = 0; i < serials.length; i += 500) {
          const chunk = serials.slice(i, i + 500);
          const rows = await t.all<{ serial: string }>(`SELECT serial FROM tokens WHERE serial IN (${chunk.map(() => "?").join(", ")})`, chunk);
          existing.push(...rows.map((r) => r.serial));
        }
        if (existing.length) {
          return this.refuseIn(t, actor, "register", "duplicate_serial", `already registered: ${existing.join(", ")}; nothing was imported`, null, null, {
            serials: existing,
            origin,
          });
        }
        const held = await this.seedsHeld(t, tokens, indexes);
        if (held.length) {
          return this.refuseIn(t, actor, "register", "duplicate_seed", `${held.map(([mine, theirs]) => `the seed of ${mine} is already held by token ${theirs}`).join("; ")}; nothing was imported`, null, null, {
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
          await this.auditIn(t, actor, "register", "ok", tok.serial, null, { origin, ...registerDetail(tok) });
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
            const audit = this.store.auditInsert(actor, chunk.map((tok) => ({ action: "register", outcome: "staged", serial: tok.serial, customer: null, detail: { origin, batch, ...registerDetail(tok) } })));
            await t.run(audit.sql, audit.params);
          }),
        );
        await sleep(CHUNK_PAUSE_MS);
      }
      // The commit point: one row changes, and every staged row is visible from here on.
      await this.db.tx(async (t) => {
        const n = await t.run("UPDATE import_batches SET state = 'committed', heartbeat_at = ? WHERE id = ? AND state = 'staging'", [this.now(), batch]);
        if (!n) throw new RegistryError("import_abandoned", `import ${batch} was taken for abandoned by another import; nothing was imported, run it again`, "unavailable");
        await this.auditIn(t, actor, "import", "ok", null, null, { batch, origin, tokens: tokens.length });
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
      return await this.store.decide({ serial }, actor, (row, holder) => {
        if (!row) throw unknownSerial(serial);
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
        const change = { state: "issued" as const, customer, issuance: row.issuance + 1, fail_count: 0, activated_at: null, withdrawn: null, updated_at: now };
        return {
          change,
          audit: [{ action: "issue", outcome: "ok", serial, customer, detail: { from: row.state, issuance: row.issuance + 1, ...(row.withdrawn ? { withdrawn: row.withdrawn } : {}) } }],
          outcome: toStatus({ ...row, ...change }),
        };
      }, { holderOf: customer });
    } catch (e) {
      if (uniqueViolation(e)) throw new RegistryError("customer_has_token", `customer ${customer} was issued another token concurrently`, "refused", { serial });
      throw e;
    }
  }

  /** locked -> active (or back to issued if it was locked before ever being activated). */
  async unlock(customer: string, actor: Actor): Promise<TokenStatus> {
    checkCustomer(customer);
    return this.store.decide({ customer }, actor, (row) => {
      if (!row) return this.refusal("unlock", "no_token", `customer ${customer} holds no token`, null, customer);
      const refused = this.byState("unlock", row, customer);
      if (refused) return refused;
      const state: TokenState = row.activated_at === null ? "issued" : "active";
      const change = { state, fail_count: 0, updated_at: this.now() };
      return {
        change,
        audit: [{ action: "unlock", outcome: "ok", serial: row.serial, customer, detail: { to: state, failures: row.fail_count } }],
        outcome: toStatus({ ...row, ...change }),
      };
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
    checkWithdrawReason(reason);
    return this.store.decide({ customer }, actor, (row) => {
      if (!row) return this.refusal("withdraw", "no_token", `customer ${customer} holds no token`, null, customer, { reason });
      const change = { state: "retired" as const, withdrawn: reason, fail_count: 0, updated_at: this.now() };
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
      where.push("state = ?"), params.push(checkState(filter.state));
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
    await this.db.tx((t) => this.auditIn(t, actor, action, outcome, serial, null, detail));
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
      const check = this.findCode(row, code, this.policy.activationWindow, false);
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
