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
    version: 4,
    name: "tokens.not_before/not_after: a PSKC key's StartDate and ExpiryDate (RFC 6030 §5), unix ms",
    sql: `ALTER TABLE tokens ADD COLUMN not_before BIGINT;
ALTER TABLE tokens ADD COLUMN not_after BIGINT;`,
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
