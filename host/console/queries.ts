/**
 * The console's read-only queries: lists paged, sorted and filtered in the
 * database (never in the page), search by customer ID or serial (exact or
 * prefix), a customer's keyfobs from the audit, and the audit with filters.
 * Writes go through the Registry (and approvals.ts), never through here.
 *
 * Indexes (migration 5): tokens (serial, staged), (state, serial, staged),
 * (customer, serial, staged), (state, customer, serial, staged), bytewise; audit (actor, id),
 * (at). A list page of keyfobs is one COUNT and one LIMIT/OFFSET query
 * answered from an index (bench: `make bench`, bench/results/console.json);
 * sorting by last change sorts the filtered rows (no index on updated_at: see
 * migrations.ts). The audit pages by keyset (auditPage).
 */
import { LIVE } from "../registry/token-store.js";
import type { Database } from "../registry/database.js";
import { TOKEN_STATES, type AuditRecord, type TokenKind, type TokenState, type WithdrawReason } from "../registry/types.js";

/** Rows every read sees: not part of an import still staging (the store's own condition). */
const LIVE_ROWS = LIVE;

export const PAGE_SIZE = 50;
export const AUDIT_PAGE_SIZE = 100;

export const SORTS = { serial: "serial", customer: "customer", updated: "updated_at" } as const;
export type Sort = keyof typeof SORTS;

export interface KeyfobRow {
  serial: string;
  state: TokenState;
  customer: string | null;
  issuance: number;
  failCount: number;
  withdrawn: WithdrawReason | null;
  updatedAt: number;
  /** keyfob or soft (issue 15). */
  kind: TokenKind;
}

export interface ListFilter {
  state?: TokenState;
  /** Serial or customer ID beginning with this. */
  prefix?: string;
  sort?: Sort;
  desc?: boolean;
  /** 1-based. */
  page?: number;
}

/** Bytewise text order on both engines (SQLite's BINARY is already), as the indexes of migration 5 are built. */
const bytewise = (db: Database) => (db.dialect === "postgres" ? ' COLLATE "C"' : "");

/** `col` begins with `prefix`: in bytewise order [prefix, prefix + U+10FFFF) is exactly that, and an index range. */
function startsWith(db: Database, col: string, prefix: string, params: unknown[]): string {
  const c = bytewise(db);
  params.push(prefix, prefix + "\u{10FFFF}");
  return `(${col}${c} >= ? AND ${col}${c} < ?)`;
}

export async function listKeyfobs(db: Database, f: ListFilter): Promise<{ rows: KeyfobRow[]; total: number; page: number; pages: number }> {
  const where = [LIVE_ROWS];
  const params: unknown[] = [];
  if (f.state) {
    if (!TOKEN_STATES.includes(f.state)) throw new RangeError("unknown state");
    where.push("state = ?");
    params.push(f.state);
  }
  if (f.prefix) {
    const a: unknown[] = [];
    const s = startsWith(db, "serial", f.prefix, a);
    const c = startsWith(db, "customer", f.prefix, a);
    where.push(`(${s} OR ${c})`);
    params.push(...a);
  }
  // Sorted by customer: the keyfobs that have one (NULLs would sort first on SQLite, last on PostgreSQL).
  if (f.sort === "customer") where.push("customer IS NOT NULL");
  const whereSql = where.join(" AND ");
  const count = await db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM tokens WHERE ${whereSql}`, params);
  const total = Number(count?.n ?? 0);
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  const page = Math.min(Math.max(1, f.page ?? 1), pages);
  if (f.sort !== undefined && !Object.hasOwn(SORTS, f.sort)) throw new RangeError("unknown sort");
  const col = SORTS[f.sort ?? "serial"];
  const dir = f.desc ? "DESC" : "ASC";
  // NULL customers last either way; serial breaks ties so paging is stable.
  const c = bytewise(db);
  const order = col === "serial" ? `serial${c} ${dir}` : col === "customer" ? `customer${c} ${dir}, serial${c} ${dir}` : `${col} ${dir}, serial${c} ${dir}`;
  // The page's serials first, from the index alone (a deep OFFSET then skips index entries, not
  // table rows: PostgreSQL would otherwise fetch every skipped row), then those 50 rows.
  const serials = await db.all<{ serial: string }>(`SELECT serial FROM tokens WHERE ${whereSql} ORDER BY ${order} LIMIT ${PAGE_SIZE} OFFSET ${(page - 1) * PAGE_SIZE}`, params);
  const byKey = new Map(
    (serials.length
      ? await db.all<{ serial: string; state: TokenState; customer: string | null; issuance: number; fail_count: number; withdrawn: WithdrawReason | null; updated_at: number; kind: TokenKind }>(
          `SELECT serial, state, customer, issuance, fail_count, withdrawn, updated_at, kind FROM tokens WHERE serial IN (${serials.map(() => "?").join(", ")})`,
          serials.map((r) => r.serial),
        )
      : []
    ).map((r) => [r.serial, r]),
  );
  const rows = serials.map((r) => byKey.get(r.serial)).filter((r) => r !== undefined);
  return {
    rows: rows.map((r) => ({ serial: r.serial, state: r.state, customer: r.customer, issuance: Number(r.issuance), failCount: Number(r.fail_count), withdrawn: r.withdrawn, updatedAt: Number(r.updated_at), kind: r.kind ?? "keyfob" })),
    total,
    page,
    pages,
  };
}

/** The search box: an exact serial or customer goes straight to its page; otherwise prefix matches of both. */
export async function search(db: Database, q: string): Promise<{ exact?: { kind: "keyfob" | "customer"; id: string }; serials: string[]; customers: string[] }> {
  const serial = await db.get<{ serial: string }>(`SELECT serial FROM tokens WHERE serial = ? AND ${LIVE_ROWS}`, [q]);
  if (serial) return { exact: { kind: "keyfob", id: serial.serial }, serials: [], customers: [] };
  // Compared bytewise, as tokens_console_customer is built (PostgreSQL uses an index only for its own collation).
  const customer =
    (await db.get<{ c: string }>(`SELECT customer AS c FROM tokens WHERE customer${bytewise(db)} = ? LIMIT 1`, [q])) ??
    (await db.get<{ c: string }>("SELECT customer AS c FROM audit WHERE customer = ? LIMIT 1", [q]));
  if (customer) return { exact: { kind: "customer", id: customer.c }, serials: [], customers: [] };
  const p1: unknown[] = [];
  const c = bytewise(db);
  const serials = await db.all<{ serial: string }>(`SELECT serial FROM tokens WHERE ${startsWith(db, "serial", q, p1)} AND ${LIVE_ROWS} ORDER BY serial${c} LIMIT 20`, p1);
  const p2: unknown[] = [];
  const customers = await db.all<{ customer: string }>(`SELECT DISTINCT customer${c} AS customer FROM tokens WHERE ${startsWith(db, "customer", q, p2)} ORDER BY 1 LIMIT 20`, p2);
  return { serials: serials.map((r) => r.serial), customers: customers.map((r) => r.customer) };
}

/** Every keyfob ever issued to the customer (from the audit: a re-issued keyfob's row names its new customer), newest first. */
export async function keyfobsOfCustomer(db: Database, customer: string): Promise<{ serial: string; issuedAt: number }[]> {
  const rows = await db.all<{ serial: string; at: number }>(
    "SELECT serial, MAX(at) AS at FROM audit WHERE customer = ? AND action = 'issue' AND outcome = 'ok' AND serial IS NOT NULL GROUP BY serial ORDER BY MAX(at) DESC LIMIT 200",
    [customer],
  );
  return rows.map((r) => ({ serial: r.serial, issuedAt: Number(r.at) }));
}

/** When the keyfob last had a code accepted (activation, login, deactivation or resync), from the audit. */
export async function lastAcceptedAt(db: Database, serial: string): Promise<number | null> {
  const r = await db.get<{ at: number }>("SELECT at FROM audit WHERE serial = ? AND outcome = 'ok' AND action IN ('activate', 'verify', 'deactivate', 'resync') ORDER BY id DESC LIMIT 1", [serial]);
  return r ? Number(r.at) : null;
}

export interface AuditFilter {
  serial?: string;
  customer?: string;
  /** Actor as written (`console:alice`, `staff:...`), or a bare staff ID meaning `console:<ID>`. */
  staff?: string;
  fromMs?: number;
  toMs?: number;
  /** The page's number, for its caption only: the cursors choose the records. */
  page?: number;
  /** Older than this record id (the next page). */
  before?: number;
  /** Newer than this record id (the previous page). */
  after?: number;
}

function auditWhere(f: AuditFilter): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (f.serial) where.push("serial = ?"), params.push(f.serial);
  if (f.customer) where.push("customer = ?"), params.push(f.customer);
  if (f.staff) where.push("actor = ?"), params.push(f.staff.includes(":") ? f.staff : "console:" + f.staff);
  if (f.fromMs !== undefined) where.push("at >= ?"), params.push(f.fromMs);
  if (f.toMs !== undefined) where.push("at < ?"), params.push(f.toMs);
  return { sql: where.length ? " WHERE " + where.join(" AND ") : "", params };
}

type AuditRow = { id: number; at: number; actor: string; source: string; action: string; outcome: string; serial: string | null; customer: string | null; detail: string | null; request_id?: string | null };
const toRecord = ({ request_id, ...r }: AuditRow): AuditRecord => ({ ...r, id: Number(r.id), at: new Date(Number(r.at)).toISOString(), detail: r.detail ? JSON.parse(r.detail) : null, requestId: request_id ?? null });

export interface AuditPage {
  records: AuditRecord[];
  page: number;
  /** Cursor of the next (older) page, its `before`; null when none is older. */
  older: number | null;
  /** Cursor of the previous (newer) page, its `after`; null on the newest page. */
  newer: number | null;
}

/**
 * Newest first, one page, by keyset: the records just older than `before`
 * (or just newer than `after`, for the previous page), read from the id
 * index (or the filter's index, which ends in id) starting at the cursor.
 * Page 1,000 reads what page 1 reads; by OFFSET it read and skipped every
 * record of the pages before it.
 */
export async function auditPage(db: Database, f: AuditFilter, size = AUDIT_PAGE_SIZE): Promise<AuditPage> {
  const w = auditWhere(f);
  const page = Math.max(1, f.page ?? 1);
  const and = w.sql ? w.sql + " AND" : " WHERE";
  if (f.after !== undefined) {
    const rows = await db.all<AuditRow>(`SELECT * FROM audit${and} id > ? ORDER BY id LIMIT ${size + 1}`, [...w.params, f.after]);
    const records = rows.slice(0, size).reverse().map(toRecord);
    return { records, page, older: records.length ? records[records.length - 1].id : f.after + 1, newer: rows.length > size ? records[0].id : null };
  }
  const rows = f.before === undefined
    ? await db.all<AuditRow>(`SELECT * FROM audit${w.sql} ORDER BY id DESC LIMIT ${size + 1}`, w.params)
    : await db.all<AuditRow>(`SELECT * FROM audit${and} id < ? ORDER BY id DESC LIMIT ${size + 1}`, [...w.params, f.before]);
  const records = rows.slice(0, size).map(toRecord);
  return { records, page, older: rows.length > size ? records[records.length - 1].id : null, newer: f.before === undefined ? null : records.length ? records[0].id : f.before - 1 };
}

/** Records fetched per query while the CSV streams (memory per download stays at one batch). */
export const CSV_BATCH = 2000;

/**
 * Oldest first, for the CSV: every matching record, in batches by id (keyset,
 * so each batch is an index range, not a deeper OFFSET). It once returned at
 * most 100,000 records held in memory at once, and a larger range silently
 * lost its newest records.
 */
export async function* auditBatches(db: Database, f: AuditFilter): AsyncGenerator<AuditRecord[]> {
  const w = auditWhere(f);
  let after = 0;
  for (;;) {
    const rows = await db.all<AuditRow>(`SELECT * FROM audit${w.sql ? w.sql + " AND" : " WHERE"} id > ? ORDER BY id LIMIT ${CSV_BATCH}`, [...w.params, after]);
    if (rows.length) yield rows.map(toRecord);
    if (rows.length < CSV_BATCH) return;
    after = Number(rows[rows.length - 1].id);
  }
}

/**
 * One CSV field (RFC 4180 quoting). A field that a spreadsheet would run as
 * a formula (= + - @ tab CR first) gets a leading apostrophe: a serial or a
 * detail is data, never a formula, when the download is opened in Excel.
 */
export function csvField(v: unknown): string {
  let s = v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const AUDIT_CSV_HEAD = "id,at,actor,source,action,outcome,serial,customer,detail\r\n";

/** CSV lines (no header) for records, each ending CRLF. */
export function auditCsvRows(records: AuditRecord[]): string {
  return records.map((r) => [r.id, r.at, r.actor, r.source, r.action, r.outcome, r.serial, r.customer, r.detail].map(csvField).join(",") + "\r\n").join("");
}

export function auditCsv(records: AuditRecord[]): string {
  return AUDIT_CSV_HEAD + auditCsvRows(records);
}
