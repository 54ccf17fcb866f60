/**
 * The factory record: one SQLite file (better-sqlite3) per production line
 * holding batches and every keyfob the station touched.
 *
 * Crash consistency: a serial is allocated as 'pending' (sequence bumped and
 * row inserted in ONE transaction, with the sealed seed) BEFORE the keyfob is
 * written, so a crash at any instant leaves either no trace (nothing was
 * written to a device) or a pending row whose serial is never handed out
 * again. Rows left pending by a station process that no longer runs become
 * 'failed' ("interrupted") on the next start. 'good' is written only after
 * the keyfob confirmed it is locked. synchronous=FULL: a good row survives a
 * power cut of the station PC once markGood returns.
 *
 * Seeds are sealed by SeedCipher (AES-256-GCM) with a key from a key file;
 * the database holds only the key's id. Seeds of tokens that failed before
 * LOCK was sent are erased: no device can hold them any longer.
 *
 * Lines: a record belongs to one production line for life (meta `line`,
 * given when the record is created), and every serial it issues carries that
 * line (host/serial), so two records of two lines never issue one serial. A
 * record made before line numbers (schema 1) is still read, exported and
 * registered; it provisions again once it is given its line (its old serials
 * stay as they are). When the bank refuses one of the record's serials as
 * held by another token, another record uses this line: the record notes it
 * (meta `line_conflict`) and refuses every further serial, so no more
 * labelled, locked keyfobs are made that the bank cannot take.
 */
import Database from "better-sqlite3";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { createKeyFile, FactoryKeyError, readKeyFile, SeedCipher } from "./seed-cipher.js";
import { formatSerial, MAX_BATCH, MAX_LINE, MAX_SEQUENCE } from "../serial/serial-number.js";

export type TokenAlgorithmName = "SHA1" | "SHA256";
export interface TokenParams {
  algorithm: TokenAlgorithmName;
  digits: number;
  period: number;
}
export type TokenState = "pending" | "good" | "failed";
/** The last step that completed for the token (provision.ts runs them in this order). */
export const STAGES = ["allocated", "wiped", "seed_written", "clock_set", "serial_set", "self_tested", "lock_sent", "locked"] as const;
export type Stage = (typeof STAGES)[number];
export type RegistrationState = "none" | "registered" | "failed";

export interface BatchRow extends TokenParams {
  id: number;
  nextSequence: number;
  createdAt: string;
  /** When the batch was first exported to PSKC: it is closed then (a batch is one file), null while open. */
  exportedAt: string | null;
}

export interface TokenRow extends TokenParams {
  serial: string;
  batch: number;
  sequence: number;
  state: TokenState;
  stage: Stage;
  reason: string | null;
  hardwareId: string | null;
  port: string | null;
  operator: string | null;
  station: string | null;
  startedAt: string;
  finishedAt: string | null;
  /** Keyfob clock minus host clock at the self-test, seconds. */
  deviceClockOffset: number | null;
  registration: RegistrationState;
  registeredAt: string | null;
  registrationError: string | null;
}

export interface BatchSummary extends BatchRow {
  counts: Record<TokenState, number>;
  /** Good tokens the bank acknowledged, and good tokens whose registration failed (fobkit register retries them). */
  registered: number;
  registrationFailed: number;
}

export const DEFAULT_PARAMS: TokenParams = { algorithm: "SHA1", digits: 8, period: 60 };
/** 2: meta holds the record's line. 1 (before line numbers) is still opened, and becomes 2 when given its line. */
const SCHEMA_VERSION = "2";
const LEGACY_SCHEMA_VERSION = "1";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
  id INTEGER PRIMARY KEY CHECK (id BETWEEN 1 AND ${MAX_BATCH}),
  algorithm TEXT NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256')),
  digits INTEGER NOT NULL CHECK (digits BETWEEN 6 AND 8),
  period INTEGER NOT NULL CHECK (period BETWEEN 1 AND 86400),
  next_sequence INTEGER NOT NULL DEFAULT 1 CHECK (next_sequence BETWEEN 1 AND ${MAX_SEQUENCE + 1}),
  created_at TEXT NOT NULL,
  exported_at TEXT
);
CREATE TABLE IF NOT EXISTS tokens (
  serial TEXT PRIMARY KEY,
  batch INTEGER NOT NULL REFERENCES batches(id),
  sequence INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'good', 'failed')),
  stage TEXT NOT NULL,
  reason TEXT,
  hardware_id TEXT,
  port TEXT,
  algorithm TEXT NOT NULL,
  digits INTEGER NOT NULL,
  period INTEGER NOT NULL,
  sealed_seed BLOB,
  key_id TEXT NOT NULL,
  device_clock_offset INTEGER,
  operator TEXT,
  station TEXT,
  owner_host TEXT NOT NULL,
  owner_pid INTEGER NOT NULL,
  owner_boot TEXT,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  registration TEXT NOT NULL DEFAULT 'none' CHECK (registration IN ('none', 'registered', 'failed')),
  registered_at TEXT,
  registration_error TEXT,
  UNIQUE (batch, sequence),
  CHECK (state <> 'good' OR (stage = 'locked' AND sealed_seed IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS tokens_batch_state ON tokens (batch, state);
`;

export class FactoryError extends Error {
  constructor(message: string, readonly code: "usage" | "refused" | "key" = "usage") {
    super(message);
    this.name = "FactoryError";
  }
}

export interface OpenFactoryOptions {
  /** Default: FILE + ".key" next to the factory file. */
  keyFile?: string;
  /** Create the file (and a new key file) when missing; provision/station do, export/register do not. */
  create?: boolean;
  /**
   * Read only (fobkit record): no key file needed, nothing written (not
   * even the schema), seeds cannot be opened and every write fails.
   */
  readOnly?: boolean;
  /**
   * The production line (1..MAX_LINE). Required to create a record; for an
   * existing one it must be the record's own line (or gives a schema 1 record
   * its line).
   */
  line?: number;
}

/** The line as an operator reads it on the serial: two digits. */
export function lineLabel(line: number): string {
  return String(line).padStart(2, "0");
}

export function defaultKeyFile(factoryPath: string): string {
  return factoryPath + ".key";
}

function isoNow(): string {
  return new Date().toISOString();
}

/**
 * This boot of this host (Linux: /proc/sys/kernel/random/boot_id, random per
 * boot); undefined where there is none. Pids start again at every boot, so
 * after a power cut a crashed station's pid can name a live process, even the
 * station that starts next: a row of another boot is never in hand.
 */
const BOOT_ID: string | undefined = (() => {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
})();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A record made before batches closed on export lacks the column; a writable open adds it (addExportedAt), a read-only one reads it as null. */
const BATCH_COLUMNS = "id, algorithm, digits, period, next_sequence AS nextSequence, created_at AS createdAt, exported_at AS exportedAt";
const BATCH_COLUMNS_BEFORE_EXPORTED_AT = "id, algorithm, digits, period, next_sequence AS nextSequence, created_at AS createdAt, NULL AS exportedAt";

function hasColumn(db: Database.Database, table: string, column: string): boolean {
  return (db.prepare("SELECT name FROM pragma_table_info(?)").all(table) as { name: string }[]).some((c) => c.name === column);
}

function hasExportedAt(db: Database.Database): boolean {
  return hasColumn(db, "batches", "exported_at");
}

/** Columns a record made by an earlier fobkit lacks (CREATE TABLE IF NOT EXISTS adds none), added on a writable open. */
const ADDED_COLUMNS = [
  { table: "batches", column: "exported_at", type: "TEXT" },
  { table: "tokens", column: "owner_boot", type: "TEXT" },
] as const;

const TOKEN_COLUMNS = `serial, batch, sequence, state, stage, reason, hardware_id AS hardwareId, port, algorithm, digits, period,
  operator, station, started_at AS startedAt, finished_at AS finishedAt, device_clock_offset AS deviceClockOffset,
  registration, registered_at AS registeredAt, registration_error AS registrationError`;

export class FactoryRecord {
  readonly path: string;
  readonly keyFile: string;
  private readonly db: Database.Database;
  /** Undefined when opened read-only. */
  private readonly cipher: SeedCipher | undefined;
  /** The record's production line; null for a record made before line numbers that was not given one. */
  readonly line: number | null;
  private readonly batchColumns: string;

  private constructor(path: string, keyFile: string, db: Database.Database, cipher: SeedCipher | undefined, line: number | null) {
    this.path = path;
    this.keyFile = keyFile;
    this.db = db;
    this.cipher = cipher;
    this.line = line;
    this.batchColumns = hasExportedAt(db) ? BATCH_COLUMNS : BATCH_COLUMNS_BEFORE_EXPORTED_AT;
  }

  static open(path: string, options: OpenFactoryOptions = {}): FactoryRecord {
    const keyFile = options.keyFile ?? defaultKeyFile(path);
    if (options.readOnly) return FactoryRecord.openReadOnly(path, keyFile);
    const exists = existsSync(path);
    if (!exists && !options.create) throw new FactoryError(`no factory record at ${path}`);
    if (options.line !== undefined && (!Number.isInteger(options.line) || options.line < 1 || options.line > MAX_LINE)) {
      throw new FactoryError(`line must be 1..${MAX_LINE}, got ${options.line}`);
    }
    // No default line: a default is how two records came to issue the same serials.
    if (!exists && options.line === undefined) {
      throw new FactoryError(`a new factory record needs its production line: --line N (1..${MAX_LINE}), the number of the line this record belongs to; every serial it issues carries it, and no two records may share one`);
    }
    let key: Buffer;
    if (existsSync(keyFile)) key = readKeyFile(keyFile);
    else if (!exists) key = createKeyFile(keyFile);
    else throw new FactoryError(`factory key file ${keyFile} is missing (the record ${path} exists; its seeds need that key)`, "key");
    const cipher = new SeedCipher(key);
    key.fill(0);
    let db: Database.Database;
    try {
      // Owner-only from the start: SQLite gives the -wal and -shm files the database file's mode.
      if (!exists) closeSync(openSync(path, "wx", 0o600));
      db = new Database(path, { fileMustExist: exists });
    } catch (e) {
      cipher.wipe();
      throw new FactoryError(`cannot open factory record ${path}: ${(e as Error).message}`);
    }
    let line: number | null;
    try {
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      db.pragma("foreign_keys = ON");
      db.pragma("busy_timeout = 5000");
      db.exec(SCHEMA);
      if (ADDED_COLUMNS.some((c) => !hasColumn(db, c.table, c.column))) {
        // A record made by an earlier fobkit. Under the write lock: another process may be adding them too.
        db.exec("BEGIN IMMEDIATE");
        try {
          for (const c of ADDED_COLUMNS) if (!hasColumn(db, c.table, c.column)) db.exec(`ALTER TABLE ${c.table} ADD COLUMN ${c.column} ${c.type}`);
          db.exec("COMMIT");
        } catch (e) {
          if (db.inTransaction) db.exec("ROLLBACK");
          throw e;
        }
      }
      const meta = db.prepare("SELECT value FROM meta WHERE name = ?");
      const get = { get: (name: string) => (meta.get(name) as { value: string } | undefined)?.value };
      const version = get.get("schema_version");
      if (version === undefined) {
        if (options.line === undefined) throw new FactoryError(`${path} has no schema yet; creating it needs --line N`);
        db.prepare("INSERT INTO meta (name, value) VALUES ('schema_version', ?), ('key_id', ?), ('line', ?)").run(SCHEMA_VERSION, cipher.keyId, String(options.line));
      } else if (version !== SCHEMA_VERSION && version !== LEGACY_SCHEMA_VERSION) {
        throw new FactoryError(`factory record ${path} has schema ${version}; this fobkit knows ${LEGACY_SCHEMA_VERSION} and ${SCHEMA_VERSION}`);
      } else if (get.get("key_id") !== cipher.keyId) {
        throw new FactoryError(`factory key file ${keyFile} is not the key of ${path} (key id differs)`, "key");
      }
      const stored = get.get("line");
      line = stored === undefined ? null : Number(stored);
      if (line !== null && options.line !== undefined && options.line !== line) {
        throw new FactoryError(`${path} is the record of line ${lineLabel(line)}; --line ${options.line} names another line (a record belongs to one line for life: give line ${options.line} its own record)`, "refused");
      }
      if (line === null && options.line !== undefined) {
        // A record from before line numbers gets its line: its old serials stay, its new ones carry the line.
        db.exec("BEGIN IMMEDIATE");
        try {
          // Another process may have given it a line meanwhile: then that line stands, and a different one is refused below.
          db.prepare("INSERT INTO meta (name, value) VALUES ('line', ?) ON CONFLICT (name) DO NOTHING").run(String(options.line));
          db.prepare("UPDATE meta SET value = ? WHERE name = 'schema_version'").run(SCHEMA_VERSION);
          db.exec("COMMIT");
        } catch (e) {
          if (db.inTransaction) db.exec("ROLLBACK");
          throw e;
        }
        const bound = Number(get.get("line"));
        if (bound !== options.line) throw new FactoryError(`${path} is the record of line ${lineLabel(bound)}; --line ${options.line} names another line`, "refused");
        line = options.line;
      }
    } catch (e) {
      db.close();
      cipher.wipe();
      if (e instanceof FactoryError || e instanceof FactoryKeyError) throw e;
      throw new FactoryError(`${path} is not a fobkit factory record: ${(e as Error).message}`);
    }
    return new FactoryRecord(path, keyFile, db, cipher, line);
  }

  private static openReadOnly(path: string, keyFile: string): FactoryRecord {
    if (!existsSync(path)) throw new FactoryError(`no factory record at ${path}`);
    let db: Database.Database;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
    } catch (e) {
      throw new FactoryError(`cannot open factory record ${path}: ${(e as Error).message}`);
    }
    try {
      const meta = (name: string) => (db.prepare("SELECT value FROM meta WHERE name = ?").get(name) as { value: string } | undefined)?.value;
      const version = meta("schema_version");
      if (version !== SCHEMA_VERSION && version !== LEGACY_SCHEMA_VERSION) {
        throw new Error(version === undefined ? "no schema version" : `schema ${version}; this fobkit knows ${LEGACY_SCHEMA_VERSION} and ${SCHEMA_VERSION}`);
      }
      const line = meta("line");
      return new FactoryRecord(path, keyFile, db, undefined, line === undefined ? null : Number(line));
    } catch (e) {
      db.close();
      throw new FactoryError(`${path} is not a fobkit factory record this fobkit can read: ${(e as Error).message}`);
    }
  }

  private sealer(): SeedCipher {
    if (!this.cipher) throw new FactoryError(`${this.path} was opened read-only, without its key`);
    return this.cipher;
  }

  /** Why this record may not issue serials now (no line yet, or the bank holds its line's serials from another record); undefined when it may. */
  provisioningRefusal(): string | undefined {
    if (this.line === null) {
      return `${this.path} was made before line numbers: its serials (FK + 12 digits) can equal another record's. Give it its line once with --line N (its new serials carry the line; the old ones stay valid)`;
    }
    const conflict = (this.db.prepare("SELECT value FROM meta WHERE name = 'line_conflict'").get() as { value: string } | undefined)?.value;
    if (conflict !== undefined) {
      return `line ${lineLabel(this.line)} collides with another factory record: ${conflict}. This record issues no more serials; give this line's station a new record with a line number no other record has`;
    }
    return undefined;
  }

  /** The bank holds one of this record's serials as another token: another record uses this line. Every later allocation is refused. */
  noteLineConflict(detail: string): void {
    this.db.prepare("INSERT INTO meta (name, value) VALUES ('line_conflict', ?) ON CONFLICT (name) DO NOTHING").run(`${detail} (noted ${isoNow()})`);
  }

  close(): void {
    this.cipher?.wipe();
    if (this.db.open) this.db.close();
  }

  batch(id: number): BatchRow | undefined {
    return this.db.prepare(`SELECT ${this.batchColumns} FROM batches WHERE id = ?`).get(id) as BatchRow | undefined;
  }

  batches(): BatchRow[] {
    return this.db.prepare(`SELECT ${this.batchColumns} FROM batches ORDER BY id`).all() as BatchRow[];
  }

  /**
   * The batch to provision into. With an id: that batch (created with
   * params if new). Without: the newest batch, or batch 1; once the newest
   * was exported, a new batch after it with its parameters. A batch's tokens
   * all share its parameters (one PSKC file per batch); asking an existing
   * batch for other parameters is refused, and so is an exported batch.
   */
  resolveBatch(id: number | undefined, params: Partial<TokenParams>): BatchRow {
    if (id !== undefined && (!Number.isInteger(id) || id < 1 || id > MAX_BATCH)) throw new FactoryError(`batch must be 1..${MAX_BATCH}, got ${id}`);
    return this.immediate((): BatchRow => {
      const newest = this.db.prepare("SELECT id FROM batches ORDER BY created_at DESC, id DESC LIMIT 1").get() as { id: number } | undefined;
      const newestRow = newest && this.batch(newest.id);
      if (id === undefined && newestRow?.exportedAt) {
        // The line goes on in a new batch, as the last one was made unless asked otherwise.
        return this.createBatch(this.nextBatchId(), { algorithm: newestRow.algorithm, digits: newestRow.digits, period: newestRow.period }, params);
      }
      const row = id !== undefined ? this.batch(id) : newestRow;
      if (row) {
        this.refuseExported(row);
        for (const k of ["algorithm", "digits", "period"] as const) {
          if (params[k] !== undefined && params[k] !== row[k]) {
            throw new FactoryError(`batch ${row.id} is ${row.algorithm}/${row.digits} digits/${row.period} s; ${k} ${params[k]} needs a new batch (--batch ${this.nextBatchId()})`, "refused");
          }
        }
        return row;
      }
      return this.createBatch(id ?? 1, DEFAULT_PARAMS, params);
    });
  }

  private createBatch(id: number, base: TokenParams, params: Partial<TokenParams>): BatchRow {
    if (id > MAX_BATCH) throw new FactoryError(`every batch number up to ${MAX_BATCH} is used; give this line a new record`, "refused");
    const full: TokenParams = { ...base, ...Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined)) };
    this.db.prepare("INSERT INTO batches (id, algorithm, digits, period, created_at) VALUES (?, ?, ?, ?, ?)").run(id, full.algorithm, full.digits, full.period, isoNow());
    return this.batch(id)!;
  }

  /** An exported batch takes no more keyfobs: its file is made, and a second file would carry the first one's seeds again. */
  private refuseExported(b: BatchRow): void {
    if (b.exportedAt) {
      throw new FactoryError(`batch ${b.id} was exported to PSKC at ${b.exportedAt}; a batch is one file, so provision into a new batch: --batch ${this.nextBatchId()}`, "refused");
    }
  }

  /**
   * The batch's good tokens for its PSKC file, closing the batch (the first
   * time) in the same transaction. Refused while a keyfob of the batch is
   * still pending: it would be left out of its batch's file. Exporting a
   * closed batch again gives the same tokens (a file to replace a lost one).
   */
  closeForExport(batch: number): { batch: BatchRow; tokens: TokenRow[] } {
    return this.immediate(() => {
      const b = this.batch(batch);
      if (!b) throw new FactoryError(`no batch ${batch} in ${this.path}`);
      const pending = this.counts(batch).pending;
      if (pending > 0) {
        throw new FactoryError(`batch ${batch} has ${pending} keyfob${pending === 1 ? "" : "s"} still being provisioned (pending); export it once the station is done with ${pending === 1 ? "it" : "them"}`, "refused");
      }
      const tokens = this.tokens({ batch, state: "good" });
      if (tokens.length === 0) throw new FactoryError(`batch ${batch} has no good tokens to export`, "refused");
      if (!b.exportedAt) this.db.prepare("UPDATE batches SET exported_at = ? WHERE id = ?").run(isoNow(), batch);
      return { batch: this.batch(batch)!, tokens };
    });
  }

  /** fn inside BEGIN IMMEDIATE ... COMMIT: the write lock is taken first, so two stations never hand out one serial. */
  private immediate<T>(fn: () => T): T {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const out = fn();
      this.db.exec("COMMIT");
      return out;
    } catch (e) {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      throw e;
    }
  }

  private nextBatchId(): number {
    return ((this.db.prepare("SELECT max(id) AS id FROM batches").get() as { id: number | null }).id ?? 0) + 1;
  }

  /**
   * Hand out the batch's next serial and record it pending with the sealed
   * seed, in one transaction: before any byte goes to the keyfob.
   */
  allocate(a: { batch: number; seed: Uint8Array; hardwareId?: string; port?: string; operator?: string; station?: string }): { serial: string; sequence: number } {
    const sealer = this.sealer();
    return this.immediate(() => {
      // Inside the write lock: a conflict noted by another station process is seen here.
      const refusal = this.provisioningRefusal();
      if (refusal !== undefined) throw new FactoryError(refusal, "refused");
      const b = this.batch(a.batch);
      if (!b) throw new FactoryError(`no batch ${a.batch}`);
      // Inside the write lock too: the batch may have been exported since the station chose it.
      this.refuseExported(b);
      if (b.nextSequence > MAX_SEQUENCE) throw new FactoryError(`batch ${b.id} is full (${MAX_SEQUENCE} serials); start a new batch`, "refused");
      const sequence = b.nextSequence;
      const serial = formatSerial(this.line!, b.id, sequence);
      this.db.prepare("UPDATE batches SET next_sequence = next_sequence + 1 WHERE id = ? AND next_sequence = ?").run(b.id, sequence);
      this.db.prepare(`INSERT INTO tokens (serial, batch, sequence, state, stage, hardware_id, port, algorithm, digits, period, sealed_seed, key_id,
          operator, station, owner_host, owner_pid, owner_boot, started_at) VALUES (?, ?, ?, 'pending', 'allocated', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(serial, b.id, sequence, a.hardwareId ?? null, a.port ?? null, b.algorithm, b.digits, b.period, sealer.seal(a.seed, serial),
          sealer.keyId, a.operator ?? null, a.station ?? null, hostname(), process.pid, BOOT_ID ?? null, isoNow());
      return { serial, sequence };
    });
  }

  setStage(serial: string, stage: Stage): void {
    this.db.prepare("UPDATE tokens SET stage = ? WHERE serial = ? AND state = 'pending'").run(stage, serial);
  }

  markGood(serial: string, details: { deviceClockOffset?: number; note?: string } = {}): void {
    const r = this.db.prepare(`UPDATE tokens SET state = 'good', stage = 'locked', reason = ?, finished_at = ?, device_clock_offset = coalesce(?, device_clock_offset)
      WHERE serial = ? AND state IN ('pending', 'failed') AND sealed_seed IS NOT NULL`).run(details.note ?? null, isoNow(), details.deviceClockOffset ?? null, serial);
    if (r.changes !== 1) throw new FactoryError(`cannot mark ${serial} good: not pending`);
  }

  /**
   * Failed with the reason. Before LOCK was sent no device can hold the seed,
   * nor after a wipe the keyfob confirmed (`wiped`): it is erased. Otherwise
   * it is kept: the keyfob may be locked with it, and is confirmed good when
   * attached again.
   */
  markFailed(serial: string, reason: string, options: { wiped?: boolean } = {}): void {
    this.db.prepare(`UPDATE tokens SET state = 'failed', reason = ?, finished_at = ?,
      sealed_seed = CASE WHEN ? = 0 AND stage IN ('lock_sent', 'locked') THEN sealed_seed ELSE NULL END
      WHERE serial = ? AND state = 'pending'`).run(reason, isoNow(), options.wiped ? 1 : 0, serial);
  }

  /** Pending rows whose station process on this host is gone (it stopped, or ran before this boot): failed ("interrupted"). Returns how many. */
  recoverInterrupted(): number {
    const rows = this.db.prepare("SELECT serial, owner_pid AS pid, owner_boot AS boot, stage FROM tokens WHERE state = 'pending' AND owner_host = ?")
      .all(hostname()) as { serial: string; pid: number; boot: string | null; stage: Stage }[];
    let n = 0;
    for (const r of rows) {
      const earlierBoot = r.boot !== null && BOOT_ID !== undefined && r.boot !== BOOT_ID;
      if (!earlierBoot && (r.pid === process.pid || processAlive(r.pid))) continue;
      this.markFailed(r.serial, `interrupted: the station stopped after ${r.stage}`);
      n++;
    }
    return n;
  }

  token(serial: string): TokenRow | undefined {
    return this.db.prepare(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE serial = ?`).get(serial) as TokenRow | undefined;
  }

  tokens(filter: { batch?: number; state?: TokenState; registration?: RegistrationState } = {}): TokenRow[] {
    return this.db.prepare(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE (@batch IS NULL OR batch = @batch) AND (@state IS NULL OR state = @state)
      AND (@registration IS NULL OR registration = @registration) ORDER BY batch, sequence`)
      .all({ batch: filter.batch ?? null, state: filter.state ?? null, registration: filter.registration ?? null }) as TokenRow[];
  }

  /** Per batch: its parameters, tokens by state, and how many good ones the bank has or refused. */
  summary(): BatchSummary[] {
    const rows = this.db.prepare("SELECT batch, state, registration, count(*) AS n FROM tokens GROUP BY batch, state, registration").all() as
      { batch: number; state: TokenState; registration: RegistrationState; n: number }[];
    return this.batches().map((b) => {
      const mine = rows.filter((r) => r.batch === b.id);
      const counts: Record<TokenState, number> = { pending: 0, good: 0, failed: 0 };
      for (const r of mine) counts[r.state] += r.n;
      const good = mine.filter((r) => r.state === "good");
      const sum = (reg: RegistrationState) => good.filter((r) => r.registration === reg).reduce((a, r) => a + r.n, 0);
      return { ...b, counts, registered: sum("registered"), registrationFailed: sum("failed") };
    });
  }

  counts(batch?: number): Record<TokenState, number> {
    const rows = this.db.prepare("SELECT state, count(*) AS n FROM tokens WHERE (? IS NULL OR batch = ?) GROUP BY state").all(batch ?? null, batch ?? null) as { state: TokenState; n: number }[];
    const out: Record<TokenState, number> = { pending: 0, good: 0, failed: 0 };
    for (const r of rows) out[r.state] = r.n;
    return out;
  }

  /** The plaintext seed: the caller wipes it (fill(0)) after use. */
  openSeed(serial: string): Buffer {
    const sealed = (this.db.prepare("SELECT sealed_seed AS s FROM tokens WHERE serial = ?").get(serial) as { s: Buffer | null } | undefined)?.s;
    if (!sealed) throw new FactoryError(`no seed on record for ${serial}`);
    return this.sealer().open(sealed, serial);
  }

  setRegistration(serial: string, ok: boolean, error?: string): void {
    this.db.prepare(`UPDATE tokens SET registration = ?, registered_at = CASE WHEN ? THEN ? ELSE registered_at END, registration_error = ?
      WHERE serial = ? AND state = 'good'`).run(ok ? "registered" : "failed", ok ? 1 : 0, isoNow(), ok ? null : (error ?? "failed"), serial);
  }
}
