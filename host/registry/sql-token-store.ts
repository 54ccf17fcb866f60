/**
 * What both engines' TokenStores share (token-store.ts): the audit insert,
 * the transactional decision (read under a row lock, decide, write,
 * commit: SQLite's only path, PostgreSQL's for decisions on two rows and
 * its fallback), and the procedures that are the same SQL on both engines:
 * registration and staged imports, reads, and key rotation.
 *
 * Imports (issue 11, item 4) and rotation (issue 11, items 1 and 6a) are
 * described where they are defined below.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Database, Sql } from "./database.js";
import { clockSql, kekRetired, uniqueViolation } from "./database.js";
import type { KeyRing } from "./key-ring.js";
import { ownerGone, processOwner } from "../process-owner.js";
import { INDEX_KEY_BYTES, SEED_INDEX_SECRET, seedIndex } from "./seed-index.js";
import { AUDIT_COLUMNS, LIVE, LIVE_STATES_SQL, ROW_SELECT, auditValues, tokenHoldsSeed, type AuditEntry, type Decide, type DecideOptions, type Decision, type RowChange, type TokenKey, type TokenRow, type TokenStore } from "./token-store.js";
import { boundedList, someOf, unknownSerial } from "./validation.js";
import { RegistryError, TOKEN_STATES, type Actor, type AuditRecord, type NewToken, type TokenState, type TokenStatus } from "./types.js";

/** What clearStaleImports did, batch ids: committed batches settled, dead ones deleted, orphaned rows deleted, live ones left. */
export interface ImportsCleared {
  settled: string[];
  discarded: string[];
  orphaned: string[];
  live: string[];
}

/** A software token's new row (issueSoft). */
export interface SoftInsert {
  serial: string;
  issuer: string | null;
  algorithm: string;
  digits: number;
  period: number;
  t0: number;
  origin: string;
  now: number;
  setupFrom: number | null;
  setupBefore: number;
}

/** Every column but the sealed seed: what a status needs, for reads that never open a seed. */
const STATUS_COLUMNS =
  "serial, manufacturer, model, issuer, key_id, algorithm, digits, period, t0, kek_id, state, customer, issuance, drift, last_step, clock_obs, fail_count, activated_at, withdrawn, origin, created_at, updated_at, kind, setup_at, setup_from, setup_before";
/** Most tokens one listing returns. */
export const MAX_LIST = 1000;
/** Inputs larger than this are imported through a staging batch, in short transactions. */
export const STAGE_ABOVE = 500;
/** Rows per staging transaction: a few milliseconds of write lock each. */
/** One audit row's placeholders in an INSERT ... VALUES. */
const AUDIT_ROW = `(${AUDIT_COLUMNS.map(() => "?").join(", ")})`;
const CHUNK_ROWS = 250;
/** Pause between staging transactions, longer than a SQLite waiter's back-off (MAX_BACKOFF_MS), so servers get the lock in between. */
const CHUNK_PAUSE_MS = 10;
/** A staging batch not heard from for this long was abandoned (its process died): the next import deletes its rows. */
export const STALE_IMPORT_MS = 60_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function iso(ms: number | null): string | null {
  return ms === null || ms === undefined ? null : new Date(Number(ms)).toISOString();
}

/** Serials of an input that rows hold already (SqlTokenStore.taken). */
interface Taken {
  registered: string[];
  importing: string[];
  batches: string[];
}

interface Refusal {
  code: string;
  message: string;
  detail: Record<string, unknown>;
}

/**
 * An import refused for serials rows hold: duplicate_serial when any is registered, else being_imported (another
 * import is staging them: not a duplicate of an issued token, and it may yet fail). Messages name at most
 * MESSAGE_SERIALS; details list at most DETAIL_SERIALS with the count.
 */
function takenRefusal(taken: Taken, origin: string): Refusal | undefined {
  const busy = taken.importing.length ? { importing: boundedList("serials", taken.importing), batches: taken.batches } : {};
  if (taken.registered.length) {
    const also = taken.importing.length ? ` (and ${taken.importing.length} being imported by another import now)` : "";
    return { code: "duplicate_serial", message: `already registered: ${someOf(taken.registered)}${also}; nothing was imported`, detail: { ...boundedList("serials", taken.registered), ...busy, origin } };
  }
  if (!taken.importing.length) return undefined;
  return {
    code: "being_imported",
    message: `being imported by another import now (${taken.batches.join(", ")}): ${someOf(taken.importing)}; nothing was imported. Wait until that import ends (its audit record 'import' says whether it committed), then look with fobkit bank tokens before importing again`,
    detail: { ...boundedList("serials", taken.importing), batches: taken.batches, origin },
  };
}

/** An import refused for seeds tokens hold already (pairs: [the input's serial, the holder's]). */
function heldRefusal(held: [string, string][], origin: string): Refusal | undefined {
  if (!held.length) return undefined;
  return {
    code: "duplicate_seed",
    message: `${someOf(held.map(([mine, theirs]) => `the seed of ${mine} is already held by token ${theirs}`), "; ")}; nothing was imported`,
    detail: { ...boundedList("serials", held), origin },
  };
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

export function toStatus(r: TokenRow): TokenStatus {
  const kind = r.kind ?? "keyfob";
  const awaiting = kind === "soft" && (r.setup_at === null || r.setup_at === undefined);
  return {
    serial: r.serial,
    kind,
    setUp: !awaiting,
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
    ...(kind === "soft" ? { setupFrom: awaiting ? iso(r.setup_from) : null, setupBefore: awaiting ? iso(r.setup_before) : null } : {}),
  };
}

/**
 * What both engines share: the audit insert and the transactional decision
 * (read under a row lock, decide, write, commit), which is SQLite's only
 * path and PostgreSQL's path for decisions on two rows and its fallback.
 */
export abstract class SqlTokenStore implements TokenStore {
  protected trips = 0;
  constructor(
    readonly db: Database,
    readonly keys: KeyRing,
    protected readonly now: () => number,
  ) {
    this.clock = clockSql(db.dialect);
  }
  /** The database's clock (clockSql): import heartbeats are stamped and judged by it, never by a host's. */
  private readonly clock: string;

  private secretOf(row: { serial: string; kek_id: string; seed: Buffer | Uint8Array }): Buffer {
    return this.keys.open(row.serial, { kekId: row.kek_id, blob: Buffer.from(row.seed) });
  }

  get roundTrips(): number {
    return this.trips;
  }

  /** The INSERT of audit records, one row per entry, all stamped now. */
  auditInsert(actor: Actor, entries: AuditEntry[]): { sql: string; params: unknown[] } {
    const at = this.now();
    return {
      sql: `INSERT INTO audit (${AUDIT_COLUMNS.join(", ")}) VALUES ${entries.map(() => AUDIT_ROW).join(", ")}`,
      params: entries.flatMap((e) => auditValues(at, actor, e)),
    };
  }

  protected lockByKey(t: Sql, key: TokenKey): Promise<TokenRow | undefined> {
    return "serial" in key
      ? t.get<TokenRow>(`SELECT ${ROW_SELECT} FROM tokens WHERE serial = ? AND ${LIVE}${this.db.forUpdate}`, [key.serial])
      : t.get<TokenRow>(`SELECT ${ROW_SELECT} FROM tokens WHERE customer = ? AND state IN ${LIVE_STATES_SQL}${this.db.forUpdate}`, [key.customer]);
  }

  /** The UPDATE of a decision's change on the row it was made from. */
  protected updateOf(serial: string, change: RowChange): { sql: string; params: unknown[] } {
    const cols = Object.keys(change) as (keyof RowChange)[];
    return { sql: `UPDATE tokens SET ${cols.map((c) => `${c} = ?`).join(", ")} WHERE serial = ?`, params: [...cols.map((c) => change[c] ?? null), serial] };
  }

  /** Writes a decision inside a transaction that holds the row (SQLite: the write lock; PostgreSQL: FOR UPDATE). */
  protected async write<T>(t: Sql, row: TokenRow | undefined, actor: Actor, d: Decision<T>): Promise<void> {
    if (d.change) {
      if (!row) throw new Error("a decision changed a token it did not read");
      const update = this.updateOf(row.serial, d.change);
      const insert = d.audit.length ? this.auditInsert(actor, d.audit) : undefined;
      if (this.db.dialect === "postgres" && insert) {
        // The UPDATE as a data-modifying WITH, which runs whether or not the INSERT reads it.
        this.trips++;
        await t.run(`WITH changed AS (${update.sql}) ${insert.sql}`, [...update.params, ...insert.params]);
        return;
      }
      this.trips++;
      await t.run(update.sql, update.params);
      if (insert) {
        this.trips++;
        await t.run(insert.sql, insert.params);
      }
    } else if (d.audit.length) {
      const insert = this.auditInsert(actor, d.audit);
      this.trips++;
      await t.run(insert.sql, insert.params);
    }
  }

  /** The transactional decision: every engine can run it. */
  protected async decideLocked<T>(key: TokenKey, actor: Actor, decide: Decide<T>, options: DecideOptions = {}): Promise<T> {
    const out = await this.db.tx(async (t) => {
      if (this.db.dialect === "postgres") this.trips += 2; // BEGIN, COMMIT
      await options.within?.before?.(t);
      this.trips++;
      const row = await this.lockByKey(t, key);
      let holder: TokenRow | undefined;
      if (options.holderOf !== undefined) {
        this.trips++;
        holder = await this.lockByKey(t, { customer: options.holderOf });
      }
      const d = decide(row, holder);
      await this.write(t, row, actor, d);
      await options.within?.after?.(t, d.outcome);
      this.changed(key, row, d);
      return d.outcome;
    });
    if (out instanceof RegistryError) throw out;
    return out;
  }

  /** Told of every decision written (PostgreSQL keeps its copies current). */
  protected changed<T>(_key: TokenKey, _row: TokenRow | undefined, _d: Decision<T>, _made?: TokenRow): void {}

  decide<T>(key: TokenKey, actor: Actor, decide: Decide<T>, options?: DecideOptions): Promise<T> {
    return this.decideLocked(key, actor, decide, options);
  }

  // ---------------------------------------------------------------- transactions outside the lifecycle (imports, notes)

  private async auditIn(t: Sql, actor: Actor, action: string, outcome: string, serial: string | null, customer: string | null, detail?: Record<string, unknown>): Promise<void> {
    await this.notesIn(t, actor, [{ action, outcome, serial, customer, detail }]);
  }

  private async refuseIn(t: Sql, actor: Actor, action: string, code: string, message: string, serial: string | null, customer: string | null, detail: Record<string, unknown> = {}): Promise<RegistryError> {
    await this.auditIn(t, actor, action, code, serial, customer, Object.keys(detail).length ? detail : undefined);
    return new RegistryError(code, message, "refused", { ...(serial ? { serial } : {}), ...detail });
  }

  /** The caller's audit records of a write, in the write's transaction. */
  private async notesIn(t: Sql, actor: Actor, notes: AuditEntry[]): Promise<void> {
    if (notes.length === 0) return;
    const insert = this.auditInsert(actor, notes);
    await t.run(insert.sql, insert.params);
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
      throw new RegistryError("duplicate_seed", `the same seed appears twice in the input: ${someOf(pairs.map(([a, b]) => `${a} and ${b}`))}; nothing was imported`, "refused", boundedList("serials", pairs));
    }
    return indexes;
  }

  /** [input serial, serial already holding its seed] for each input seed some token holds. */
  /**
   * Which of `serials` a row holds already: registered (visible, or staged by a committed batch), or staged by an
   * import still under way (its batch staging; or orphaned, being discarded), whose rows appear or vanish when it ends.
   */
  private async taken(t: Sql, serials: string[]): Promise<Taken> {
    const out: Taken = { registered: [], importing: [], batches: [] };
    for (let i = 0; i < serials.length; i += 500) {
      const chunk = serials.slice(i, i + 500);
      // Two plain lookups, not one join: PostgreSQL's generic plan for the join (plan_cache_mode=force_generic_plan on
      // the store's pool) scanned every token, 2-3.5 s per chunk at 225,000 tokens (seen in the bank bench's import).
      const rows = await t.all<{ serial: string; staged: string | null }>(`SELECT serial, staged FROM tokens WHERE serial IN (${chunk.map(() => "?").join(", ")})`, chunk);
      const staged = [...new Set(rows.map((r) => r.staged).filter((b): b is string => b !== null))];
      const states = new Map<string, string>();
      if (staged.length) {
        for (const b of await t.all<{ id: string; state: string }>(`SELECT id, state FROM import_batches WHERE id IN (${staged.map(() => "?").join(", ")})`, staged)) states.set(b.id, b.state);
      }
      for (const r of rows) {
        const state = r.staged === null ? null : states.get(r.staged) ?? null;
        if (r.staged === null || state === "committed") out.registered.push(r.serial);
        else {
          out.importing.push(r.serial);
          if (!out.batches.includes(r.staged)) out.batches.push(r.staged);
        }
      }
    }
    return out;
  }

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

  /** The seed index of a seed made here (a software token's set-up), for its row's seed_index. */
  async seedIndexOf(secret: Buffer): Promise<Buffer> {
    return seedIndex(await this.seedIndexKey(), secret);
  }

  // ---------------------------------------------------------------- software tokens (soft-tokens.ts decides; this writes)

  /**
   * A software token's issuance: one transaction that locks the customer's
   * live token (if any), lets `decide` choose (refuse, or insert the new row
   * and maybe retire the old one: "superseded"), and writes the row, the
   * change and the audit records together. The unique index
   * tokens_one_per_customer settles two issuances racing for one customer
   * (in this process or another): the second insert fails and is refused
   * customer_has_token. `secret` (the OPAQUE record) is sealed here, under
   * the newest key, again if a rotation retired the key meanwhile.
   */
  async issueSoft<T>(
    customer: string,
    actor: Actor,
    secret: Buffer,
    decide: (holder: TokenRow | undefined) => { supersede?: RowChange; insert?: SoftInsert; audit: AuditEntry[]; outcome: T | RegistryError },
  ): Promise<T> {
    try {
      return await this.sealing(() =>
        this.txDecide(async (t) => {
          this.trips++;
          const holder = await this.lockByKey(t, { customer });
          const d = decide(holder);
          if (d.supersede && holder) {
            const u = this.updateOf(holder.serial, d.supersede);
            this.trips++;
            await t.run(u.sql, u.params);
          }
          if (d.insert) {
            const r = d.insert;
            const sealed = this.keys.seal(r.serial, secret);
            this.trips++;
            await t.run(
              `INSERT INTO tokens (serial, manufacturer, model, issuer, key_id, algorithm, digits, period, t0, kek_id, seed, seed_index, state, customer, issuance, drift, last_step, fail_count, activated_at, not_before, not_after, origin, created_at, updated_at, kind, setup_at, setup_from, setup_before)
               VALUES (?, 'fobkit', 'soft', ?, NULL, ?, ?, ?, ?, ?, ?, NULL, 'issued', ?, 1, 0, NULL, 0, NULL, NULL, NULL, ?, ?, ?, 'soft', NULL, ?, ?)`,
              [r.serial, r.issuer, r.algorithm, r.digits, r.period, r.t0, sealed.kekId, sealed.blob, customer, r.origin, r.now, r.now, r.setupFrom, r.setupBefore],
            );
          }
          if (d.audit.length) {
            const insert = this.auditInsert(actor, d.audit);
            this.trips++;
            await t.run(insert.sql, insert.params);
          }
          if (d.supersede && holder) this.changed({ customer }, holder, { change: d.supersede, audit: [], outcome: undefined });
          return d.outcome;
        }),
      );
    } catch (e) {
      const dup = uniqueViolation(e);
      if (dup && /one_per_customer|customer/.test(dup.constraint)) {
        throw new RegistryError("customer_has_token", `customer ${customer} was issued another token concurrently`, "refused");
      }
      if (dup) throw new RegistryError("ticket_used", "this registration ticket was already used for an issuance; start the issuance again", "refused");
      throw e;
    }
  }

  /** When the customer's token was last deactivated (利用解除; audit 'deactivate' ok), unix ms, or null. */
  async lastDeactivation(customer: string): Promise<number | null> {
    const row = await this.db.get<{ at: number | null }>("SELECT MAX(at) AS at FROM audit WHERE customer = ? AND action = 'deactivate' AND outcome = 'ok'", [customer]);
    return row?.at === null || row?.at === undefined ? null : Number(row.at);
  }

  /** Does a token row with this serial exist (staged or not)? */
  async serialTaken(serial: string): Promise<boolean> {
    return (await this.db.get("SELECT 1 AS x FROM tokens WHERE serial = ?", [serial])) !== undefined;
  }

  // ---------------------------------------------------------------- factory

  /**
   * Adds tokens in stock, all or none: one duplicate serial (in the batch or
   * already registered) refuses the lot and names every duplicate. `notes`
   * (what the caller audits of the import, e.g. the PSKC packages it skipped)
   * commit with the tokens, in the transaction that makes them visible.
   */
  async register(tokens: NewToken[], actor: Actor, origin: string, notes: AuditEntry[] = []): Promise<{ registered: string[] }> {
    const serials = tokens.map((x) => x.serial);
    const indexes = await this.seedIndexes(tokens);
    // Every import, of any size, first clears what dead imports left: their staged rows would otherwise hold its serials.
    await this.clearStaleImports(actor);
    if (tokens.length > STAGE_ABOVE) return this.registerStaged(tokens, indexes, actor, origin, notes);
    try {
      return await this.sealing(() => this.txDecide(async (t) => {
        const taken = takenRefusal(await this.taken(t, serials), origin);
        if (taken) return this.refuseIn(t, actor, "register", taken.code, taken.message, null, null, taken.detail);
        const held = heldRefusal(await this.seedsHeld(t, tokens, indexes), origin);
        if (held) return this.refuseIn(t, actor, "register", held.code, held.message, null, null, held.detail);
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
        await this.notesIn(t, actor, notes);
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
   * heartbeat stops; the next import (register() clears first, any size), a starting server or `fobkit bank
   * clear-imports` deletes it: at once when its process ran on this machine, else after STALE_IMPORT_MS.
   *
   * Each token's audit record says "staged" with the batch id, and one
   * "import" record says the batch was committed (or aborted, and why): the
   * audit is append-only, so it records what happened, in order.
   */
  private async registerStaged(tokens: NewToken[], indexes: Buffer[], actor: Actor, origin: string, notes: AuditEntry[]): Promise<{ registered: string[] }> {
    const serials = tokens.map((x) => x.serial);
    // Read-only checks first, for a refusal that names every duplicate; the chunks' unique indexes catch races.
    for (const refusal of [takenRefusal(await this.taken(this.db, serials), origin), heldRefusal(await this.seedsHeld(this.db, tokens, indexes), origin)]) {
      if (!refusal) continue;
      await this.note(actor, "register", refusal.code, refusal.detail);
      throw new RegistryError(refusal.code, refusal.message, "refused", refusal.detail);
    }
    const batch = "imp-" + randomBytes(8).toString("hex");
    const started = this.now();
    await this.db.run(`INSERT INTO import_batches (id, state, origin, actor, tokens, started_at, heartbeat_at, owner) VALUES (?, 'staging', ?, ?, ?, ?, ${this.clock}, ?)`, [batch, origin, actor.name, tokens.length, started, processOwner()]);
    try {
      for (let i = 0; i < tokens.length; i += CHUNK_ROWS) {
        const chunk = tokens.slice(i, i + CHUNK_ROWS);
        await this.sealing(() =>
          this.db.tx(async (t) => {
            const now = this.now();
            const alive = await t.run(`UPDATE import_batches SET heartbeat_at = ${this.clock} WHERE id = ? AND state = 'staging'`, [batch]);
            if (!alive) throw new RegistryError("import_abandoned", `import ${batch} was taken for abandoned by another import (no progress for ${STALE_IMPORT_MS / 1000} s, or its process seen gone); nothing was imported, run it again`, "unavailable");
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
        const n = await t.run(`UPDATE import_batches SET state = 'committed', heartbeat_at = ${this.clock} WHERE id = ? AND state = 'staging'`, [batch]);
        if (!n) throw new RegistryError("import_abandoned", `import ${batch} was taken for abandoned by another import; nothing was imported, run it again`, "unavailable");
        await this.auditIn(t, actor, "import", "ok", null, null, { batch, origin, tokens: tokens.length });
        await this.notesIn(t, actor, notes);
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
    // A bulk load: statistics and cached plans for the table as it now is (a failure here changes nothing imported).
    await this.db.analyze?.("tokens").catch(() => undefined);
    return { registered: serials };
  }

  /**
   * Deletes a staging batch: its row first (its tokens become unreachable at once), then its tokens in chunks.
   * A batch whose row is still there was committed (by its import, judged dead but alive, between the caller's
   * read and this delete; or by a commit whose answer was lost): its tokens are registered, and are left for
   * settleBatch. Only a batch whose row this deleted, or that has none (orphaned rows), loses its tokens.
   */
  private async discardBatch(batch: string, actor: Actor, why: string): Promise<boolean> {
    const removed = await this.db.run("DELETE FROM import_batches WHERE id = ? AND state = 'staging'", [batch]);
    if (!removed && (await this.db.get("SELECT id FROM import_batches WHERE id = ?", [batch]))) return false;
    for (;;) {
      const n = await this.db.tx((t) => t.run("DELETE FROM tokens WHERE serial IN (SELECT serial FROM tokens WHERE staged = ? LIMIT 500)", [batch]));
      if (n === 0) break;
      await sleep(CHUNK_PAUSE_MS);
    }
    if (removed) await this.note(actor, "import", "aborted", { batch, reason: why });
    return true;
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

  /**
   * Finishes what dead imports left: settles committed batches, deletes abandoned ones and orphaned staged rows.
   * A staging batch is abandoned when its heartbeat is STALE_IMPORT_MS old, or at once when its owner ran on this
   * machine and is gone (host/process-owner.ts). Taking a live one for dead is safe, only wasteful: its next chunk finds
   * its batch row gone and the import stops (import_abandoned) with nothing imported.
   */
  async clearStaleImports(actor: Actor): Promise<ImportsCleared> {
    const out: ImportsCleared = { settled: [], discarded: [], orphaned: [], live: [] };
    // Staleness on the database's clock, which also stamped the heartbeats: no host's clock skew counts (clockSql).
    const batches = await this.db.all<{ id: string; state: string; stale: number | boolean; owner: string | null }>(
      `SELECT id, state, CASE WHEN heartbeat_at < ${this.clock} - ? THEN 1 ELSE 0 END AS stale, owner FROM import_batches`,
      [STALE_IMPORT_MS],
    );
    for (const b of batches) {
      if (b.state === "committed") {
        await this.settleBatch(b.id);
        out.settled.push(b.id);
      } else if (Number(b.stale) === 1 || ownerGone(b.owner)) {
        // False: it committed meanwhile (alive after all); its rows are registered and stay.
        if (await this.discardBatch(b.id, actor, "abandoned")) out.discarded.push(b.id);
        else out.live.push(b.id);
      } else out.live.push(b.id);
    }
    // Rows whose batch row is gone (a discard that died between its two steps). Their batch row was written before
    // them (registerStaged), so a batch id missing from a read after seeing its rows is one deleted, never one to come.
    const staged = await this.stagedBatches();
    if (staged.length) {
      const known = new Set((await this.db.all<{ id: string }>(`SELECT id FROM import_batches WHERE id IN (${staged.map(() => "?").join(", ")})`, staged)).map((r) => r.id));
      for (const id of staged) if (!known.has(id) && (await this.discardBatch(id, actor, "orphaned"))) out.orphaned.push(id);
    }
    return out;
  }

  /**
   * The batch ids that staged rows carry, each once: one probe of the partial index tokens_staged per id, and one
   * more that finds none (the usual case: one probe). Every registration pays for this (register() clears first),
   * the factory's one-token calls included. Why not `SELECT DISTINCT staged ... NOT IN (SELECT id FROM
   * import_batches)`: its plan follows the table's statistics, and after a large import settled they still said most
   * rows were staged until the next ANALYZE: a parallel scan of every token, 100 ms a call at 225,000 tokens
   * (EXPLAIN ANALYZE). MIN of an indexed column is planned as the index's first entry whatever the statistics say
   * (PostgreSQL src/backend/optimizer/plan/planagg.c build_minmax_path: ORDER BY LIMIT 1 on the index; SQLite src/select.c
   * minMaxQuery).
   */
  private async stagedBatches(): Promise<string[]> {
    const out: string[] = [];
    for (;;) {
      const after = out.at(-1);
      const row =
        after === undefined
          ? await this.db.get<{ s: string | null }>("SELECT MIN(staged) AS s FROM tokens WHERE staged IS NOT NULL")
          : await this.db.get<{ s: string | null }>("SELECT MIN(staged) AS s FROM tokens WHERE staged IS NOT NULL AND staged > ?", [after]);
      if (!row || row.s === null || row.s === undefined) return out;
      out.push(row.s);
    }
  }

  /**
   * The factory's registration call: one token, idempotent. A retry of a
   * registration whose reply was lost (same serial, parameters and seed) is
   * answered as done; the same serial with anything different is a
   * duplicate, refused as in register().
   */
  async registerOne(tok: NewToken, actor: Actor, origin: string): Promise<{ registered: string[]; alreadyRegistered: boolean }> {
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


  // ---------------------------------------------------------------- reads

  async status(serial: string): Promise<TokenStatus> {
    const row = await this.db.get<TokenRow>(`SELECT * FROM tokens WHERE serial = ? AND ${LIVE}`, [serial]);
    if (!row) throw unknownSerial(serial);
    return toStatus(row);
  }

  async statusOfCustomer(customer: string): Promise<TokenStatus> {
    const row = await this.db.get<TokenRow>(`SELECT * FROM tokens WHERE customer = ? AND state IN ${LIVE_STATES_SQL}`, [customer]);
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
      where.push("state = ?"), params.push(filter.state);
    }
    if (filter.afterSerial !== undefined) where.push("serial > ?"), params.push(filter.afterSerial);
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

  async auditTrail(filter: { serial?: string; customer?: string; request?: string; actor?: string; afterId?: number; limit?: number } = {}): Promise<AuditRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.serial !== undefined) where.push("serial = ?"), params.push(filter.serial);
    if (filter.customer !== undefined) where.push("customer = ?"), params.push(filter.customer);
    // No index of its own (every verification would pay for it): asked with a customer or serial, whose indexes narrow it first.
    if (filter.request !== undefined) where.push("request_id = ?"), params.push(filter.request);
    if (filter.actor !== undefined) where.push("actor = ?"), params.push(filter.actor);
    if (filter.afterId !== undefined) where.push("id > ?"), params.push(filter.afterId);
    const limit = Math.min(Math.max(1, filter.limit ?? 1000), 10_000);
    const rows = await this.db.all<{ id: number; at: number; actor: string; source: string; action: string; outcome: string; serial: string | null; customer: string | null; detail: string | null; request_id: string | null }>(
      `SELECT * FROM audit${where.length ? " WHERE " + where.join(" AND ") : ""} ORDER BY id LIMIT ${limit}`,
      params,
    );
    return rows.map(({ request_id, ...r }) => ({ ...r, id: Number(r.id), at: iso(r.at)!, detail: r.detail ? JSON.parse(r.detail) : null, requestId: request_id ?? null }));
  }

  /** Audits something done outside a token transaction (key management, imports refused before the store). */
  async note(actor: Actor, action: string, outcome: string, detail?: Record<string, unknown>, serial: string | null = null, customer: string | null = null): Promise<void> {
    await this.db.tx((t) => this.auditIn(t, actor, action, outcome, serial, customer, detail));
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
  async sealing<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const used = this.keys.currentId;
      try {
        return await fn();
      } catch (e) {
        if (!kekRetired(e)) throw e;
        // A newer key in the file, or the staged key another server's rotation made current (the database says which).
        const active = (await this.db.all<{ kek_id: string }>("SELECT kek_id FROM kek_states WHERE state = 'active'")).map((r) => r.kek_id);
        if (!this.keys.sealingAfterRetired(used, active) || attempt >= 3) {
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
   * Refuses (key_file_outdated), before a rotation changes anything, when the key file lacks a key the database
   * needs: one it records as active, or one a row (token or registry secret) is sealed under. Servers with their
   * own copies share only the database: a rotation from a copy that was never replaced after another server's
   * rotation (one after the other, so the rotation lease cannot see it) used to add its own new key, record it
   * active next to the other server's, and stop at the first row it could not open; its servers then sealed rows
   * under a key the other servers' files lack, and theirs the other way round. A key the file holds staged counts
   * as held: the staged key distributed first is the documented way (key-ring.ts), and the rotation makes it the
   * newest. Runs under the rotation lease, so no other rotation changes the key states meanwhile.
   */
  async refuseOutdatedKeyFile(): Promise<void> {
    const held = new Set(this.keys.ids);
    const active = (await this.db.all<{ kek_id: string }>("SELECT kek_id FROM kek_states WHERE state = 'active' ORDER BY changed_at DESC, kek_id")).map((r) => r.kek_id);
    // Both tables have an index on kek_id (migrations 1 and 3); a rotation reads every row anyway.
    const used = (await this.db.all<{ kek_id: string }>("SELECT DISTINCT kek_id FROM tokens UNION SELECT DISTINCT kek_id FROM registry_secrets")).map((r) => r.kek_id);
    const lacksActive = active.filter((id) => !held.has(id));
    const lacksUsed = used.filter((id) => !held.has(id) && !lacksActive.includes(id)).sort();
    if (!lacksActive.length && !lacksUsed.length) return;
    const file = this.keys.path ? `the key file ${this.keys.path}` : "the key ring";
    const what = [
      ...(lacksActive.length ? [`the database records key ${lacksActive.join(", key ")} as active (another server's rotation made it the newest)`] : []),
      ...(lacksUsed.length ? [`rows are sealed under key ${lacksUsed.join(", key ")}`] : []),
    ];
    const missing = [...lacksActive, ...lacksUsed];
    throw new RegistryError(
      "key_file_outdated",
      `${what.join(", and ")}, but ${file} does not hold ${missing.length > 1 ? "them" : "it"}: this copy of the key file is outdated. ` +
        `Copy the current key file (the one holding key ${missing.join(" and key ")}) to this server, then run this again; nothing was changed`,
      "refused",
      { missing, ...(this.keys.path ? { keyFile: this.keys.path } : {}) },
    );
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
    // The staged key is neither: it is the next rotation's, and retiring it would make it useless.
    const newest = this.keys.currentId; // fails clearly when the ring has no key
    const older = this.keys.olderIds;
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
    const older = this.keys.olderIds;
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
        // A software token awaiting set-up holds its OPAQUE record, not a seed: re-sealed, never indexed (tokenHoldsSeed).
        const batch = await this.db.all<{ serial: string }>(
          "SELECT serial FROM tokens WHERE (kek_id <> ? OR (seed_index IS NULL AND (kind = 'keyfob' OR setup_at IS NOT NULL))) AND serial > ? ORDER BY serial LIMIT 200",
          [target, after],
        );
        if (batch.length === 0) break;
        after = batch[batch.length - 1].serial;
        for (const { serial } of batch) {
          const r = await this.db
            .tx(async (t) => {
              const row = await t.get<TokenRow & { seed_index: Uint8Array | null }>(`SELECT serial, kek_id, seed, seed_index, kind, setup_at FROM tokens WHERE serial = ?${this.db.forUpdate}`, [serial]);
              const none = { resealed: 0, indexed: 0, duplicateOf: undefined as string | undefined };
              if (!row) return none;
              const reseal = row.kek_id !== target;
              const indexable = row.seed_index === null && tokenHoldsSeed(row);
              if (!reseal && !indexable) return none;
              const secret = this.secretOf(row);
              try {
                let index: Buffer | null = null;
                let duplicateOf: string | undefined;
                if (indexable) {
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
