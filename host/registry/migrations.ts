/**
 * Schema migrations: numbered, applied in order, each once, recorded in
 * schema_migrations. One list for both engines; a migration whose DDL differs
 * between them carries both texts side by side, so the difference is visible
 * in one place. Concurrent starts (two server processes) serialise: SQLite on
 * BEGIN IMMEDIATE, PostgreSQL on a transaction-scoped advisory lock.
 */
import type { Database, Dialect } from "./database.js";

export interface Migration {
  version: number;
  name: string;
  sql: string | Record<Dialect, string>;
}

// The audit table is append-only in the database itself, not only in the API:
// triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) for every
// client, including a staff member with a SQL prompt who is not the owner.
const TOKENS_COMMON = `
  serial        TEXT PRIMARY KEY,
  manufacturer  TEXT NOT NULL,
  model         TEXT,
  issuer        TEXT,
  key_id        TEXT,
  algorithm     TEXT NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
  digits        INTEGER NOT NULL CHECK (digits BETWEEN 6 AND 10),
  period        INTEGER NOT NULL CHECK (period > 0),
  t0            BIGINT NOT NULL,
  kek_id        TEXT NOT NULL,
  state         TEXT NOT NULL CHECK (state IN ('in_stock', 'issued', 'active', 'locked', 'retired')),
  customer      TEXT,
  issuance      INTEGER NOT NULL DEFAULT 0,
  drift         INTEGER NOT NULL DEFAULT 0,
  last_step     BIGINT,
  -- JSON [[unix seconds, step], ...]: the last successes, for the clock model.
  clock_obs     TEXT,
  fail_count    INTEGER NOT NULL DEFAULT 0,
  activated_at  BIGINT,
  origin        TEXT NOT NULL,
  created_at    BIGINT NOT NULL,
  updated_at    BIGINT NOT NULL`;

const INDEXES = `
-- At most one hardware token per customer that is issued, active or locked.
CREATE UNIQUE INDEX tokens_one_per_customer ON tokens (customer) WHERE state IN ('issued', 'active', 'locked');
CREATE INDEX tokens_kek ON tokens (kek_id);
CREATE INDEX audit_serial ON audit (serial, id);
CREATE INDEX audit_customer ON audit (customer, id);
`;

/*
 * Migration 3 (issue 11).
 *
 * kek_states: a key-encryption key is active, retired (a newer key seals;
 * nothing may be written under it any more) or pruned (proven unused and
 * dropped from the key file). Triggers refuse any row written under a key
 * that is not active, whichever process or program writes it, so once a
 * retirement commits no server can seal under that key, and a prune that
 * counts no row under the key (in the transaction that marks it pruned) can
 * never be overtaken by a late write. On PostgreSQL the trigger takes a
 * FOR SHARE lock on the key's kek_states row, and retiring or pruning
 * updates that row, so each waits for the other's transaction: a write
 * that passed the check is committed (and counted) before the prune counts.
 * SQLite runs one writer at a time, so the check alone suffices there.
 *
 * Seed index: tokens.seed_index is an HMAC-SHA-256 of the seed under an
 * index key (registry.ts, seed-index.ts), unique, so no seed is held by two
 * tokens. The index key is random, kept in registry_secrets sealed under the
 * key-encryption key like a seed (and re-sealed by every rotation), so the
 * index survives rotation unchanged. Rows from before this migration have
 * no index until the next rotation pass (`bank rotate-key`, also with
 * --no-new-key) fills it: the migration itself holds no key to compute it.
 */
const KEK_STATES = `
CREATE TABLE kek_states (
  kek_id     TEXT PRIMARY KEY,
  state      TEXT NOT NULL CHECK (state IN ('active', 'retired', 'pruned')),
  changed_at BIGINT NOT NULL
)`;

/*
 * Staged imports (issue 11, item 4): a large import writes its rows in short
 * transactions, each marked with its batch (tokens.staged), invisible to
 * every read until one short transaction marks the batch committed; then
 * the marks are cleared in chunks and the batch row deleted. A failed or
 * abandoned batch's rows are deleted, never seen.
 */
const STAGING = `
ALTER TABLE tokens ADD COLUMN staged TEXT;
CREATE INDEX tokens_staged ON tokens (staged) WHERE staged IS NOT NULL;
CREATE TABLE import_batches (
  id           TEXT PRIMARY KEY,
  state        TEXT NOT NULL CHECK (state IN ('staging', 'committed')),
  origin       TEXT NOT NULL,
  actor        TEXT NOT NULL,
  tokens       INTEGER NOT NULL,
  started_at   BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL
);`;

const KEYS_SQLITE = `${KEK_STATES};
${STAGING}
ALTER TABLE tokens ADD COLUMN seed_index BLOB;
CREATE UNIQUE INDEX tokens_seed_index ON tokens (seed_index);
CREATE TABLE registry_secrets (
  name       TEXT PRIMARY KEY,
  kek_id     TEXT NOT NULL,
  sealed     BLOB NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX registry_secrets_kek ON registry_secrets (kek_id);
CREATE TRIGGER tokens_kek_insert BEFORE INSERT ON tokens WHEN EXISTS (SELECT 1 FROM kek_states WHERE kek_id = NEW.kek_id AND state <> 'active') BEGIN SELECT RAISE(ABORT, 'kek_retired: the key-encryption key is retired'); END;
CREATE TRIGGER tokens_kek_update BEFORE UPDATE OF kek_id ON tokens WHEN NEW.kek_id <> OLD.kek_id AND EXISTS (SELECT 1 FROM kek_states WHERE kek_id = NEW.kek_id AND state <> 'active') BEGIN SELECT RAISE(ABORT, 'kek_retired: the key-encryption key is retired'); END;
CREATE TRIGGER secrets_kek_insert BEFORE INSERT ON registry_secrets WHEN EXISTS (SELECT 1 FROM kek_states WHERE kek_id = NEW.kek_id AND state <> 'active') BEGIN SELECT RAISE(ABORT, 'kek_retired: the key-encryption key is retired'); END;
CREATE TRIGGER secrets_kek_update BEFORE UPDATE OF kek_id ON registry_secrets WHEN NEW.kek_id <> OLD.kek_id AND EXISTS (SELECT 1 FROM kek_states WHERE kek_id = NEW.kek_id AND state <> 'active') BEGIN SELECT RAISE(ABORT, 'kek_retired: the key-encryption key is retired'); END;
`;

const KEYS_POSTGRES = `${KEK_STATES};
${STAGING}
ALTER TABLE tokens ADD COLUMN seed_index BYTEA;
CREATE UNIQUE INDEX tokens_seed_index ON tokens (seed_index);
CREATE TABLE registry_secrets (
  name       TEXT PRIMARY KEY,
  kek_id     TEXT NOT NULL,
  sealed     BYTEA NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX registry_secrets_kek ON registry_secrets (kek_id);
CREATE FUNCTION kek_usable() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s TEXT;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.kek_id = OLD.kek_id THEN
    RETURN NEW;
  END IF;
  -- FOR SHARE: a retirement or prune (an UPDATE of this row) waits for this transaction, and this one for it.
  SELECT state INTO s FROM kek_states WHERE kek_id = NEW.kek_id FOR SHARE;
  IF NOT FOUND THEN
    INSERT INTO kek_states (kek_id, state, changed_at) VALUES (NEW.kek_id, 'active', (extract(epoch FROM clock_timestamp()) * 1000)::bigint) ON CONFLICT (kek_id) DO NOTHING;
    SELECT state INTO s FROM kek_states WHERE kek_id = NEW.kek_id FOR SHARE;
  END IF;
  IF s <> 'active' THEN
    RAISE EXCEPTION 'kek_retired: the key-encryption key % is %', NEW.kek_id, s USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER tokens_kek_usable BEFORE INSERT OR UPDATE OF kek_id ON tokens FOR EACH ROW EXECUTE FUNCTION kek_usable();
CREATE TRIGGER secrets_kek_usable BEFORE INSERT OR UPDATE OF kek_id ON registry_secrets FOR EACH ROW EXECUTE FUNCTION kek_usable();
`;

/*
 * Migration 5 (issue 13): the staff console.
 *
 * staff: named bank staff (teller or supervisor) with a scrypt password hash
 * (host/registry/staff.ts); failed_signins counts wrong passwords in a row
 * and is raised before the password is checked, in one conditional UPDATE,
 * so parallel sign-ins cannot get more than five tries. staff_sessions holds
 * the SHA-256 of each session id (the cookie's value is never stored) and its
 * CSRF token. approvals: what a teller asked for that a supervisor must
 * approve (maker-checker, host/registry/approvals.ts). The indexes serve the
 * console's lists, search and audit filters at 100,000 keyfobs (below).
 */
const CONSOLE_TABLES = `
CREATE TABLE staff (
  name            TEXT PRIMARY KEY,
  role            TEXT NOT NULL CHECK (role IN ('teller', 'supervisor')),
  password_hash   TEXT NOT NULL,
  failed_signins  INTEGER NOT NULL DEFAULT 0,
  created_at      BIGINT NOT NULL,
  disabled_at     BIGINT,
  last_signin_at  BIGINT
);
CREATE TABLE staff_sessions (
  id_hash     TEXT PRIMARY KEY,
  staff       TEXT NOT NULL REFERENCES staff (name),
  csrf        TEXT NOT NULL,
  source      TEXT NOT NULL,
  created_at  BIGINT NOT NULL,
  seen_at     BIGINT NOT NULL
);
CREATE INDEX staff_sessions_staff ON staff_sessions (staff);
CREATE TABLE approvals (
  id          TEXT PRIMARY KEY,
  action      TEXT NOT NULL,
  customer    TEXT,
  serial      TEXT,
  detail      TEXT,
  maker       TEXT NOT NULL,
  made_at     BIGINT NOT NULL,
  state       TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'failed')),
  checker     TEXT,
  decided_at  BIGINT,
  outcome     TEXT
);
CREATE INDEX approvals_state ON approvals (state, made_at);
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_at ON audit (at);
`;

/*
 * The lists' indexes end in `staged`, so the visibility test of a staged
 * import (LIVE in registry.ts) is answered from the index: a COUNT or a deep
 * OFFSET never reads the table. Text columns sort bytewise on both engines
 * (SQLite's BINARY; PostgreSQL COLLATE "C", which the console's queries name),
 * so "begins with" is an index range. No index holds updated_at or
 * fail_count: every verification changes them, and an index on them would
 * slow the hot path (and stop PostgreSQL's HOT updates).
 */
const consoleIndexes = (c: string) => `
CREATE INDEX tokens_console_serial ON tokens (serial${c}, staged);
CREATE INDEX tokens_console_state_serial ON tokens (state, serial${c}, staged);
CREATE INDEX tokens_console_customer ON tokens (customer${c}, serial${c}, staged);
CREATE INDEX tokens_console_state_customer ON tokens (state, customer${c}, serial${c}, staged);
`;

/*
 * Migration 7 (issue 15): the software token, a second kind of token in the
 * same table (SOFT-DESIGN.md). kind: keyfob or soft. A soft token's row is
 * made at issuance (serial SW + its user ID) in state issued; while
 * setup_at is NULL it awaits the app's set-up and tokens.seed holds the
 * sealed OPAQUE registration record, not a seed (host/registry/soft-tokens.ts;
 * every reader of seed asks tokenHoldsSeed first). setup_from: not before
 * (the next-day rule after a deactivation), setup_before: the issuance's
 * expiry. No new state value: the CHECK on state cannot be altered in SQLite
 * without rebuilding the table. settings: the deployment's soft-token
 * settings (service ID, bank name, app URL, time zone, issuance lifetime),
 * set by `fobkit bank soft-config`.
 */
const SOFT_TOKENS = `ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'keyfob' CHECK (kind IN ('keyfob', 'soft'));
ALTER TABLE tokens ADD COLUMN setup_at BIGINT;
ALTER TABLE tokens ADD COLUMN setup_from BIGINT;
ALTER TABLE tokens ADD COLUMN setup_before BIGINT;
CREATE TABLE settings (
  name       TEXT PRIMARY KEY,
  value      TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);`;

/*
 * Migration 8: at most one pending maker-checker request per action and
 * customer (approvals.ts). unlockUnderRule looked for a pending request
 * with SELECT ... FOR UPDATE and inserted one if there was none; on
 * PostgreSQL, FOR UPDATE on a row that does not exist locks nothing, so two
 * processes (or two pooled connections) could both insert, and a supervisor
 * saw two requests for one lock. A partial unique index makes the database
 * refuse the second, whichever process writes it, and the insert now names
 * the request already pending instead (INSERT ... ON CONFLICT). Both engines
 * accept the partial index and the upsert against it (PostgreSQL docs,
 * INSERT "conflict_target" with index_predicate; SQLite "UPSERT", a
 * conflict target with a WHERE for a partial index). Duplicates written
 * before are closed first, keeping the oldest of each customer's, each
 * with an audit record, so the index can be built.
 *
 * Also audit.request_id: the API request (X-Request-Id) that wrote each
 * record (types.ts Actor.request), so a client answered 503 outcome_unknown
 * can learn whether its change committed. Not indexed: every verification
 * writes a record, and a lookup names the customer, whose index narrows it.
 */
const closeDuplicateApprovals = (now: string, detail: string) => `
INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail)
SELECT ${now}, 'system:migration-8', 'migration', 'approval', 'duplicate_request', a.serial, a.customer, ${detail}
FROM approvals a
WHERE a.state = 'pending' AND EXISTS (SELECT 1 FROM approvals o WHERE o.state = 'pending' AND o.action = a.action AND o.customer = a.customer AND (o.made_at < a.made_at OR (o.made_at = a.made_at AND o.id < a.id)))
ORDER BY a.made_at, a.id;
UPDATE approvals SET state = 'failed', outcome = 'duplicate_request', decided_at = ${now}
WHERE state = 'pending' AND EXISTS (SELECT 1 FROM approvals o WHERE o.state = 'pending' AND o.action = approvals.action AND o.customer = approvals.customer AND (o.made_at < approvals.made_at OR (o.made_at = approvals.made_at AND o.id < approvals.id)));
CREATE UNIQUE INDEX approvals_one_pending ON approvals (action, customer) WHERE state = 'pending';
ALTER TABLE audit ADD COLUMN request_id TEXT;
`;

/**
 * Migration 10: approvals an earlier version stranded. Its supervisor's claim
 * (state `approved`) committed in a transaction of its own, before the unlock
 * and the outcome; a crash in between left `approved` with no outcome, which
 * nobody could approve again (approvals.ts now commits all three together).
 * Each is finished from what the audit holds: the earlier version unlocked
 * right after the claim, in the same request, so where the first unlock record
 * of the keyfob after the claim's own (`approve`, at = decided_at) is its
 * checker's `ok`, within a minute of the claim, the outcome is `ok`. Anything
 * else (no such record, another's first, or the checker's a day later, which
 * lifted a later lock) is not this request's unlock: the request ends
 * `failed`/`interrupted`, audited, so the teller asks again (an unlock is never
 * made here, so none is made twice; asked again for a keyfob no longer locked,
 * the request just fails).
 */
const finishStrandedApprovals = (now: string, detail: string) => {
  const claim = `(SELECT MIN(p.id) FROM audit p WHERE p.actor = a.checker AND p.action = 'approve' AND p.serial = a.serial AND p.at = a.decided_at)`;
  const firstUnlock = `(SELECT MIN(n.id) FROM audit n WHERE n.serial = a.serial AND n.action = 'unlock' AND n.id > ${claim})`;
  const unlocked = `EXISTS (SELECT 1 FROM audit u WHERE u.id = ${firstUnlock} AND u.actor = a.checker AND u.outcome = 'ok' AND u.at >= a.decided_at AND u.at <= a.decided_at + 60000)`;
  return `
INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail)
SELECT ${now}, 'system:migration-10', 'migration', 'approval', 'interrupted', a.serial, a.customer, ${detail}
FROM approvals a WHERE a.state = 'approved' AND a.outcome IS NULL AND NOT ${unlocked}
ORDER BY a.made_at, a.id;
UPDATE approvals SET outcome = 'ok' WHERE id IN (SELECT a.id FROM approvals a WHERE a.state = 'approved' AND a.outcome IS NULL AND ${unlocked});
UPDATE approvals SET state = 'failed', outcome = 'interrupted' WHERE state = 'approved' AND outcome IS NULL;
`;
};

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "tokens, api keys, audit",
    sql: {
      sqlite: `
CREATE TABLE tokens (${TOKENS_COMMON},
  seed          BLOB NOT NULL
);
CREATE TABLE api_keys (
  id          TEXT PRIMARY KEY,
  role        TEXT NOT NULL CHECK (role IN ('factory', 'staff', 'channel')),
  secret_hash BLOB NOT NULL,
  label       TEXT,
  created_at  BIGINT NOT NULL,
  revoked_at  BIGINT
);
CREATE TABLE audit (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  at       BIGINT NOT NULL,
  actor    TEXT NOT NULL,
  source   TEXT NOT NULL,
  action   TEXT NOT NULL,
  outcome  TEXT NOT NULL,
  serial   TEXT,
  customer TEXT,
  detail   TEXT
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
${INDEXES}`,
      postgres: `
CREATE TABLE tokens (${TOKENS_COMMON},
  seed          BYTEA NOT NULL
);
CREATE TABLE api_keys (
  id          TEXT PRIMARY KEY,
  role        TEXT NOT NULL CHECK (role IN ('factory', 'staff', 'channel')),
  secret_hash BYTEA NOT NULL,
  label       TEXT,
  created_at  BIGINT NOT NULL,
  revoked_at  BIGINT
);
CREATE TABLE audit (
  id       BIGSERIAL PRIMARY KEY,
  at       BIGINT NOT NULL,
  actor    TEXT NOT NULL,
  source   TEXT NOT NULL,
  action   TEXT NOT NULL,
  outcome  TEXT NOT NULL,
  serial   TEXT,
  customer TEXT,
  detail   TEXT
);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
${INDEXES}`,
    },
  },
  {
    version: 2,
    name: "tokens.withdrawn: why staff retired a keyfob without its code",
    sql: `ALTER TABLE tokens ADD COLUMN withdrawn TEXT CHECK (withdrawn IN ('lost', 'stolen', 'returned', 'faulty'))`,
  },
  {
    version: 3,
    name: "key retirement enforced by the database; keyed-hash seed index; staged imports",
    sql: { sqlite: KEYS_SQLITE, postgres: KEYS_POSTGRES },
  },
  {
    version: 4,
    name: "tokens.not_before/not_after: a PSKC key's StartDate and ExpiryDate (RFC 6030 §5), unix ms",
    sql: `ALTER TABLE tokens ADD COLUMN not_before BIGINT;
ALTER TABLE tokens ADD COLUMN not_after BIGINT;`,
  },
  {
    version: 5,
    name: "staff accounts, console sessions, maker-checker approvals; indexes for the console's lists and audit filters",
    sql: { sqlite: CONSOLE_TABLES + consoleIndexes(""), postgres: CONSOLE_TABLES + consoleIndexes(' COLLATE "C"') },
  },
  {
    version: 6,
    // Every verification updates its token's row. An UPDATE that changes no indexed column is a HOT update
    // (heap-only tuple: the new version goes on the same page and no index is touched) only if that page has
    // room (PostgreSQL docs §65.7 "Heap-Only Tuples"); at the default fillfactor 100 a page is full, so each
    // update also inserted into all nine of tokens' indexes. 80 leaves a fifth of each page free. Pages
    // written from now on; `VACUUM FULL tokens` applies it to an existing table. SQLite has no such setting.
    name: "tokens fillfactor 80 on PostgreSQL: a verification's update stays on its page (HOT) and touches no index",
    sql: { sqlite: "", postgres: "ALTER TABLE tokens SET (fillfactor = 80)" },
  },
  {
    version: 7,
    name: "software tokens: tokens.kind, setup_at, setup_from, setup_before; settings",
    sql: SOFT_TOKENS,
  },
  {
    version: 8,
    name: "approvals: at most one pending request per action and customer (partial unique index), duplicates from before closed; audit.request_id: the API request that wrote a record",
    sql: {
      sqlite: closeDuplicateApprovals("CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)", "json_object('approval', a.id, 'kept', (SELECT o.id FROM approvals o WHERE o.state = 'pending' AND o.action = a.action AND o.customer = a.customer ORDER BY o.made_at, o.id LIMIT 1))"),
      postgres: closeDuplicateApprovals("(extract(epoch FROM clock_timestamp()) * 1000)::bigint", "json_build_object('approval', a.id, 'kept', (SELECT o.id FROM approvals o WHERE o.state = 'pending' AND o.action = a.action AND o.customer = a.customer ORDER BY o.made_at, o.id LIMIT 1))::text"),
    },
  },
  {
    version: 9,
    // A re-run of a killed import was refused for STALE_IMPORT_MS: only the heartbeat told a dead import from a live one.
    name: "import_batches.owner: the process running a staged import (host/process-owner.ts), so another import on the same machine sees at once that it died",
    sql: "ALTER TABLE import_batches ADD COLUMN owner TEXT",
  },
  {
    version: 10,
    name: "approvals stranded `approved` with no outcome by an earlier version's crash: outcome ok where the audit holds the checker's unlock, else failed/interrupted (audited)",
    sql: {
      sqlite: finishStrandedApprovals("CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)", "json_object('approval', a.id, 'checker', a.checker)"),
      postgres: finishStrandedApprovals("(extract(epoch FROM clock_timestamp()) * 1000)::bigint", "json_build_object('approval', a.id, 'checker', a.checker)::text"),
    },
  },
  {
    version: 11,
    // A staff lock never expired: anyone who knew a staff ID (not secret inside a bank) could keep a teller out for good.
    name: "staff.locked_until: a staff sign-in lock ends at this time (15 minutes, doubling per further lock, at most a day; host/registry/staff.ts); accounts locked before it stay locked for 15 minutes from the migration",
    sql: {
      sqlite: "ALTER TABLE staff ADD COLUMN locked_until BIGINT;\nUPDATE staff SET locked_until = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) + 900000 WHERE failed_signins >= 5",
      postgres: "ALTER TABLE staff ADD COLUMN locked_until BIGINT;\nUPDATE staff SET locked_until = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 900000 WHERE failed_signins >= 5",
    },
  },
  {
    version: 12,
    // @fastify/rate-limit counted in each process's memory: --workers N (and N hosts) allowed N times the limit.
    name: "rate_limits: the public set-up routes' per-client-IP counters, shared by every server process (host/server/rate-store.ts)",
    sql: "CREATE TABLE rate_limits (key TEXT PRIMARY KEY, window_start BIGINT NOT NULL, hits INTEGER NOT NULL)",
  },
  {
    version: 13,
    // Every decision inserts an audit record, and each of audit's indexes costs that insert a B-tree descent, an
    // entry and its WAL record: audit_at was one of five. A BRIN index (PostgreSQL docs §71 "BRIN Indexes") keeps
    // only the least and greatest `at` of each 128-page range, and an insert into a range past the last summarized
    // one writes nothing to it. It serves the console's date filters (`at >= ? AND at < ?`, console/queries.ts
    // auditWhere) because records are appended in time order, so each range covers a narrow span of `at`; records
    // from servers whose clocks disagree only widen a range's span, they are never missed. autosummarize: a range
    // is summarized when it fills (by autovacuum), not only at the next VACUUM. SQLite has no BRIN: its B-tree stays.
    name: "audit_at as a BRIN index on PostgreSQL: the audit insert of every decision no longer maintains a B-tree on the time",
    sql: { sqlite: "", postgres: "DROP INDEX audit_at;\nCREATE INDEX audit_at ON audit USING brin (at) WITH (autosummarize = on)" },
  },
  {
    version: 14,
    // PostgresTokenStore.applyBatch sent a batch as 36 array parameters (one per column) to unnest(): PostgreSQL
    // parses each array separately and unnest() of 36 arrays is 36 function scans, each with its own tuplestore,
    // which cost ~0.3 ms of backend CPU per statement before any row (measured with /proc/<pid>/schedstat: 404 us
    // for 36 one-element arrays, 121 us for one array of this type). As one array of a row type per list, a
    // batch is two parameters. The attributes are what applyBatch writes for each element (postgres-token-store.ts,
    // rowLiteral), in that order: i, serial, the row's DECISION_COLUMNS, change, the new CHANGE_COLUMNS; n, i, AUDIT_COLUMNS.
    name: "row types of the PostgreSQL decision batch (one array parameter per list instead of one per column)",
    sql: {
      sqlite: "",
      postgres: `CREATE TYPE batch_decision AS (i INTEGER, serial TEXT, e_state TEXT, e_customer TEXT, e_issuance INTEGER, e_drift INTEGER, e_last_step BIGINT, e_clock_obs TEXT, e_fail_count INTEGER, e_activated_at BIGINT, e_withdrawn TEXT, e_not_before BIGINT, e_not_after BIGINT, e_updated_at BIGINT, change BOOLEAN, n_state TEXT, n_customer TEXT, n_issuance INTEGER, n_drift INTEGER, n_last_step BIGINT, n_clock_obs TEXT, n_fail_count INTEGER, n_activated_at BIGINT, n_withdrawn TEXT, n_updated_at BIGINT);
CREATE TYPE batch_audit AS (n INTEGER, i INTEGER, at BIGINT, actor TEXT, source TEXT, action TEXT, outcome TEXT, serial TEXT, customer TEXT, detail TEXT, request_id TEXT)`,
    },
  },
  {
    version: 15,
    // The lock was the account's: anyone who knew a staff ID could keep that member out from everywhere with about five
    // wrong passwords a day. staff.failed_signins/locked_until stay as they were: a lock set before this migration
    // (its address unknown) holds from every address until it ends or a supervisor lifts it; nothing sets them again.
    name: "staff_signin_locks: wrong staff passwords counted, and the sign-in lock held, per staff member and client address (host/registry/staff.ts)",
    sql: "CREATE TABLE staff_signin_locks (staff TEXT NOT NULL, source TEXT NOT NULL, failed_signins INTEGER NOT NULL, locked_until BIGINT, PRIMARY KEY (staff, source))",
  },
  {
    version: 16,
    // One key rotation at a time across every server on this database (rotation-lock.ts): two at once from different
    // key files each made their own key active and re-sealed rows under it, so each server's file opened only part of
    // the rows. A row rather than an advisory lock: the rotation runs many short transactions on pooled connections
    // (and SQLite has no lock that would not stop every server's writes), and the row names its holder.
    name: "key_rotation_lease: at most one bank rotate-key at a time on the database, naming its holder",
    sql: "CREATE TABLE key_rotation_lease (id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL, holder TEXT NOT NULL, taken_at BIGINT NOT NULL)",
  },
  {
    version: 17,
    // A request asked through the HTTP API has maker `staff:<key id>`, so the person behind the key could approve it
    // in the console under their own name (attack review follow-up). A staff key may name its owner, a staff member
    // (`bank add-key --owner`); approvals.ts refuses the owner as checker. NULL for every key made before: nobody is
    // named, and the console says so. No foreign key: staff IDs are never reused or deleted (disabled only), and
    // api-keys.ts checks the owner is an active member when the key is made.
    name: "api_keys.owner: the staff member a staff API key belongs to, refused as checker of the key's own requests",
    sql: "ALTER TABLE api_keys ADD COLUMN owner TEXT",
  },
];

/** Applies what is missing; returns the versions applied now. */
export async function migrate(db: Database, migrations: Migration[] = MIGRATIONS): Promise<number[]> {
  return db.tx(async (t) => {
    if (db.dialect === "postgres") {
      // First, before any IF NOT EXISTS: those race between sessions on
      // PostgreSQL (duplicate pg_type rows). 0x666f626b = "fobk".
      await t.get("SELECT pg_advisory_xact_lock(1718575723)");
      const schema = (db as { schema?: string }).schema;
      if (schema) await t.run(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    }
    await t.run(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
    const done = new Set((await t.all<{ version: number }>("SELECT version FROM schema_migrations")).map((r) => Number(r.version)));
    const applied: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version)) continue;
      const sql = typeof m.sql === "string" ? m.sql : m.sql[db.dialect];
      for (const statement of splitStatements(sql)) await t.run(statement);
      await t.run("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", [m.version, m.name, Date.now()]);
      applied.push(m.version);
    }
    return applied;
  });
}

/**
 * Splits a script on `;` at line ends, keeping PostgreSQL dollar-quoted
 * bodies and SQLite trigger bodies (BEGIN ... END;) whole, so each statement
 * runs inside the migration's transaction through the ordinary query path.
 */
export function splitStatements(script: string): string[] {
  const out: string[] = [];
  let current = "";
  let inDollar = false;
  let inTrigger = false;
  for (const line of script.split("\n")) {
    const bare = line.replace(/--.*$/, "");
    if (!current.trim() && !bare.trim()) continue;
    current += line + "\n";
    const dollars = (bare.match(/\$\$/g) ?? []).length;
    if (dollars % 2 === 1) inDollar = !inDollar;
    if (/^\s*CREATE TRIGGER/i.test(bare) && /\bBEGIN\b/i.test(bare)) inTrigger = true;
    if (inDollar) continue;
    if (inTrigger) {
      if (/\bEND;\s*$/i.test(bare)) {
        inTrigger = false;
        out.push(current.trim());
        current = "";
      }
      continue;
    }
    if (/;\s*$/.test(bare)) {
      out.push(current.trim().replace(/;$/, ""));
      current = "";
    }
  }
  if (current.trim()) out.push(current.trim());
  return out;
}
