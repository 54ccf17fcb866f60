/**
 * API keys for the three roles. A key is `fbk_<id>_<secret>`: the id finds
 * the row, the secret is 32 random bytes (base64url) of which the database
 * holds only the SHA-256. A slow password hash would add nothing: the secret
 * has 256 bits of entropy, so the hash cannot be reversed by guessing, and
 * every request checks it. The key is shown once, when it is made.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Database } from "./database.js";
import { checkStaffName } from "./staff.js";
import { ROLES, RegistryError, type Role } from "./types.js";

const KEY_RE = /^fbk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export interface ApiKeyInfo {
  id: string;
  role: Role;
  label: string | null;
  /** The staff member a staff key belongs to (migration 17), refused as checker of its requests; null when none was named. */
  owner: string | null;
  createdAt: string;
  revokedAt: string | null;
}

function digest(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

/**
 * Characters a label may not hold: controls (Cc: U+0000-U+001F, U+007F-U+009F), format characters (Cf: the bidi
 * overrides and isolates U+202A-U+202E and U+2066-U+2069, zero-width U+200B-U+200D, U+FEFF, soft hyphen, tags) and
 * the line and paragraph separators (Zl U+2028, Zp U+2029). The console's approvals page names a key as "API key
 * '<label>' (owner: <name>)": a bidi override or a line break in the label could make that line read as naming
 * another key or owner, a zero-width character make two labels look alike (attack review L7; before, only
 * U+0000-U+001F were refused). General categories as ECMAScript's \p{...} has them (ECMA-262, "CharacterClassEscape"
 * with the u flag; Unicode UAX #44, General_Category), so a Node whose ICU knows a newer Unicode refuses its new ones too.
 */
const LABEL_REFUSED = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/** Refuses a label over 200 characters or holding a character of LABEL_REFUSED, naming its code point. */
function checkLabel(label: string): void {
  if (label.length > 200) throw new RegistryError("bad_label", `label must be at most 200 characters (got ${label.length})`, "bad_input");
  const bad = LABEL_REFUSED.exec(label);
  if (bad) {
    const cp = "U+" + bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
    throw new RegistryError("bad_label", `label may not contain ${cp} (character ${[...label.slice(0, bad.index)].length + 1}): control, invisible formatting (bidi, zero-width) and line/paragraph separator characters are refused, as they can make the console's approvals page misname a key`, "bad_input");
  }
}

/**
 * `owner` (a staff key only): the staff member who uses the key, who then may not decide the requests it makes
 * (approvals.ts decideApproval). It must be an active member: a key owned by nobody who can sign in names nobody.
 */
export async function createApiKey(db: Database, role: Role, label?: string, now = Date.now(), opts: { owner?: string } = {}): Promise<{ id: string; key: string; role: Role; owner: string | null }> {
  if (!ROLES.includes(role)) throw new RegistryError("bad_role", `role must be one of ${ROLES.join(", ")}`, "bad_input");
  if (label !== undefined) checkLabel(label);
  const owner = opts.owner;
  if (owner !== undefined) {
    if (role !== "staff") throw new RegistryError("bad_owner", `only a staff key has an owner (a ${role} key makes no requests a supervisor decides)`, "bad_input");
    checkStaffName(owner);
  }
  const id = randomBytes(6).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  await db.tx(async (t) => {
    if (owner !== undefined) {
      // Read in the transaction that writes the key, the row held (PostgreSQL; SQLite holds the write lock): a disable
      // committed first is seen and refuses the key; one after it is a later disable of an owner, as any other.
      const member = await t.get<{ name: string }>(`SELECT name FROM staff WHERE name = ? AND disabled_at IS NULL${db.forUpdate}`, [owner]);
      if (!member) throw new RegistryError("unknown_staff", `no active staff account ${owner} to own the key`, "refused");
    }
    await t.run("INSERT INTO api_keys (id, role, secret_hash, label, created_at, revoked_at, owner) VALUES (?, ?, ?, ?, ?, NULL, ?)", [id, role, digest(secret), label ?? null, now, owner ?? null]);
  });
  return { id, key: `fbk_${id}_${secret}`, role, owner: owner ?? null };
}

/** The key's id and role, or undefined for a malformed, unknown or revoked key. */
export async function authenticateApiKey(db: Database, key: string): Promise<{ id: string; role: Role } | undefined> {
  const m = KEY_RE.exec(key);
  if (!m) return undefined;
  const row = await db.get<{ id: string; role: Role; secret_hash: Buffer | Uint8Array; revoked_at: number | null }>("SELECT id, role, secret_hash, revoked_at FROM api_keys WHERE id = ?", [m[1]]);
  if (!row || row.revoked_at !== null) return undefined;
  const stored = Buffer.from(row.secret_hash);
  const given = digest(m[2]);
  if (stored.length !== given.length || !timingSafeEqual(stored, given)) return undefined;
  return { id: row.id, role: row.role };
}

export async function listApiKeys(db: Database): Promise<ApiKeyInfo[]> {
  const rows = await db.all<{ id: string; role: Role; label: string | null; owner: string | null; created_at: number; revoked_at: number | null }>("SELECT id, role, label, owner, created_at, revoked_at FROM api_keys ORDER BY created_at, id");
  return rows.map((r) => ({
    id: r.id,
    role: r.role,
    label: r.label,
    owner: r.owner,
    createdAt: new Date(Number(r.created_at)).toISOString(),
    revokedAt: r.revoked_at === null ? null : new Date(Number(r.revoked_at)).toISOString(),
  }));
}

export async function revokeApiKey(db: Database, id: string, now = Date.now()): Promise<void> {
  if (!/^[0-9a-f]{12}$/.test(id)) throw new RegistryError("bad_key_id", "key id is 12 hex digits (the part after fbk_)", "bad_input");
  const n = await db.run("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", [now, id]);
  if (n === 0) throw new RegistryError("unknown_key", `no active API key with id ${id}`, "refused");
}
