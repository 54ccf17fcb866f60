/**
 * Staff accounts for the console (issue 13): named people, not API keys.
 *
 * Passwords: scrypt (RFC 7914) from node:crypto, N = 2^17, r = 8, p = 1,
 * OWASP Password Storage Cheat Sheet's recommendation (128 MiB and ~0.3-0.7 s
 * per check on a branch server): memory-hard, so a stolen table costs an
 * attacker memory as well as time per guess; built into Node, so nothing
 * native to compile on a closed bank network (the argon2 package needs
 * node-gyp or a prebuilt download). The stored string names its parameters
 * (`scrypt$logN$r$p$salt$key`), so a hash made under older ones (N = 2^15
 * before 2026-11-30) still verifies, and is re-made under the current ones
 * at the member's next right password, in the transaction that records the
 * sign-in: no migration, no reset.
 *
 * Sign-in throttle, per staff member and client address (migration 15,
 * table staff_signin_locks; the address as client-key.ts keys it, an IPv6
 * client's /64): five wrong passwords in a row from one address lock the
 * member out from that address for 15 minutes; each further five (the count
 * is reset only by a right password from that address or an unlock, never by
 * the timer) lock it twice as long as the last, at most a day
 * (SIGNIN_LOCK_MS), so a guesser gets about five tries a day per address. A
 * supervisor lifts every lock of a member at once (console, or `fobkit bank
 * unlock-staff`, audited). Why per address: staff IDs are not secret inside
 * a bank, and a lock of the account (migration 11) let anyone who knew an
 * ID keep that teller, or every supervisor (who alone unlock staff), out
 * with about five wrong passwords a day; now such a guesser locks out only
 * its own address, and the member signs in from theirs (OWASP
 * Authentication Cheat Sheet, "Account Lockout": lockout is a denial-of-
 * service lever; count per account and source; NIST SP 800-63B 5.2.2 rate
 * limiting). The price: a guesser with many addresses gets five tries a day
 * from each, and one who shares the member's address (a branch behind one
 * NAT) still locks them out there; the staff page shows every locked
 * address and its end to supervisors. A lock set before migration 15
 * (staff.locked_until, its address unknown) holds from every address until
 * it ends. Every lock is audited with its end (signin bad_password, detail
 * lockedUntil) and the address.
 * The try is counted BEFORE the password is checked, by one conditional
 * UPDATE (this address not locked now; the fifth try sets the lock), so any
 * number of parallel sign-ins from one address get at most five tries
 * between them; a right password then resets that address's count. A try
 * whose scrypt fails (a server error, not a wrong password) is given back
 * (giveBack says why that keeps the limit), so server errors never lock. An unknown,
 * disabled or locked account still costs one scrypt against a dummy hash, so
 * the answer's timing does not tell a known staff ID from an unknown one
 * (the dummy is at today's N = 2^17: a member whose hash is still N = 2^15
 * answers a wrong password about four times faster until their next right
 * one; accepted, as a locked account tells its ID anyway, just below).
 * The lock itself is shown to whoever signs in next (the member needs to
 * know to call a supervisor); staff IDs are not secret inside a bank.
 *
 * Sessions: 32 random bytes in the cookie; the database holds their SHA-256
 * only, with a CSRF token and the time last seen. A session idle for
 * IDLE_MS is gone; so is every session of a disabled member. A session is
 * made only by a right password, in the transaction that audits the sign-in
 * `ok` and finds the member still enabled; a member disabled during their
 * sign-in is refused and audited `disabled` (attack review L1).
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from "node:crypto";
import type { Database, Sql } from "./database.js";
import { clientKey } from "./client-key.js";
import { RegistryError, type Actor } from "./types.js";

export type StaffRole = "teller" | "supervisor";
export const STAFF_ROLES: StaffRole[] = ["teller", "supervisor"];

/** Wrong passwords in a row that lock a staff account (issue 13 item 2). */
export const SIGNIN_LOCK_AFTER = 5;
/** How long the first lock lasts; each further one twice the last, at most SIGNIN_LOCK_MAX_MS. */
export const SIGNIN_LOCK_MS = 15 * 60_000;
export const SIGNIN_LOCK_MAX_MS = 24 * 3600_000;
/**
 * How long a row of staff_signin_locks is kept after its lock ends; older ones are deleted whenever a sign-in
 * writes a lock, so the table does not keep every address that ever guessed. Deleting a row resets its count
 * (its next lock is again the shortest), so the time is what keeps "about five tries a day per address": a
 * guesser who stops after k locks and four more tries to get its row deleted gains 5k + 4 tries per run of
 * locks plus this wait: under five a day with a week, as without pruning (a day would give 22 a day, at k = 5).
 */
export const SIGNIN_LOCK_KEPT_MS = 7 * 24 * 3600_000;

/** The length of the k-th lock in a row (k = 1 after five wrong passwords, 2 after ten, ...). */
export function signinLockMs(k: number): number {
  return Math.min(SIGNIN_LOCK_MS * 2 ** Math.min(k - 1, 20), SIGNIN_LOCK_MAX_MS);
}
/** Locks past this many in a row all last SIGNIN_LOCK_MAX_MS (the CASE below lists the ones before). */
const LOCK_STEPS = Math.ceil(Math.log2(SIGNIN_LOCK_MAX_MS / SIGNIN_LOCK_MS)) + 1;
/** A console session idle this long is over (issue 13 item 2: 15 minutes). */
export const IDLE_MS = 15 * 60_000;
/** Even an active session ends after a working day. */
export const SESSION_MAX_MS = 12 * 3600_000;
/** seen_at is written at most this often per session (one write per page would be wasted). */
const SEEN_RESOLUTION_MS = 10_000;

/** For new hashes, and the ones a right password upgrades (see needsRehash), unless FOBKIT_STAFF_SCRYPT_LOGN says otherwise. */
export const SCRYPT = { logN: 17, r: 8, p: 1, keyLen: 32 };
/** The environment variable that sets scrypt's cost (log2 N) for new and upgraded hashes: a deployment's tuning, as a KDF's cost is. */
export const SCRYPT_LOGN_ENV = "FOBKIT_STAFF_SCRYPT_LOGN";
/**
 * What SCRYPT_LOGN_ENV may say: never below the N = 2^15 fobkit used before; at most 2^18 (256 MiB a check at r = 8,
 * 512 MiB for the sign-in gate's KDF_PARALLEL checks at once), the most memory SCRYPT_MAX lets a stored hash ask for.
 */
const SCRYPT_LOGN_RANGE = { min: 15, max: 18 };

/**
 * The parameters new and upgraded hashes are made under: SCRYPT, with log2 N from FOBKIT_STAFF_SCRYPT_LOGN when set
 * (15 to 18). A branch server too slow for 2^17 (0.3-0.7 s and 128 MiB a check) may keep 15; `make test` runs at 15, so
 * its hundreds of sign-ins cost what they did (test/console/staff-password-hash.test.ts checks 17 without it). A value
 * out of range or not an integer is refused, naming the variable, rather than read as the default.
 */
export function scryptParams(env: NodeJS.ProcessEnv = process.env): typeof SCRYPT {
  const v = env[SCRYPT_LOGN_ENV];
  if (v === undefined || v === "") return SCRYPT;
  const logN = /^\d{1,2}$/.test(v) ? Number(v) : NaN;
  if (!(logN >= SCRYPT_LOGN_RANGE.min && logN <= SCRYPT_LOGN_RANGE.max)) {
    throw new RangeError(`${SCRYPT_LOGN_ENV} must be an integer from ${SCRYPT_LOGN_RANGE.min} to ${SCRYPT_LOGN_RANGE.max} (scrypt's N = 2^value; unset: ${SCRYPT.logN}), got ${JSON.stringify(v)}`);
  }
  return { ...SCRYPT, logN };
}
/**
 * The most a stored hash may ask of one check: scrypt's memory is 128·r·N bytes, its time grows with r·N·p. A hash
 * past either is refused as a wrong password, not run, so a damaged or planted row cannot make a sign-in take 2 GiB
 * and seconds (the attack review measured 7.4 s and 2.1 GiB for logN 20, r 16: the bound was once `logN <= 20`).
 * The bound is what FOBKIT_STAFF_SCRYPT_LOGN's largest value makes: N = 2^18 at r = 8, p = 1, 256 MiB.
 */
const SCRYPT_MAX = { memory: 128 * 8 * 2 ** 18, p: 2 };
export const MIN_PASSWORD = 12;
const MAX_PASSWORD = 1024;
const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

function scrypt(password: Buffer, salt: Buffer, keyLen: number, o: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, keyLen, o, (err, key) => (err ? reject(err) : resolve(key))));
}

function scryptOptions(logN: number, r: number, p: number): ScryptOptions {
  // OpenSSL needs 128·r·(N + 2) + 128·r·p bytes (128 MiB and a little at N = 2^17, r = 8), past Node's 32 MiB default
  // maxmem: without raising it, scrypt fails (ERR_CRYPTO_INVALID_SCRYPT_PARAMS). maxmem is only a ceiling; what is
  // taken per check is the 128·r·(N + 2), and the sign-in gate (KDF_PARALLEL) bounds how many checks run at once.
  return { N: 2 ** logN, r, p, maxmem: 256 * 2 ** logN * r };
}

interface ScryptHash {
  logN: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

/** A stored hash's parameters, salt and key; undefined when malformed or past SCRYPT_MAX (never run). */
export function parseHash(stored: string): ScryptHash | undefined {
  const m = /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(stored);
  if (!m) return undefined;
  const [logN, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (logN < 1 || r < 1 || p < 1 || 128 * r * 2 ** logN > SCRYPT_MAX.memory || p > SCRYPT_MAX.p) return undefined;
  return { logN, r, p, salt: Buffer.from(m[4], "base64"), key: Buffer.from(m[5], "base64") };
}

/** A hash's parameters, for the audit ("scrypt N=2^15 r=8 p=1"); never its salt or key. */
function hashParams(stored: string): string {
  const h = parseHash(stored);
  return h ? `scrypt N=2^${h.logN} r=${h.r} p=${h.p}` : "unknown";
}

/**
 * True when a stored hash is weaker than what this server makes (scryptParams): a right password re-makes it. Only
 * weaker: a server set lower (FOBKIT_STAFF_SCRYPT_LOGN=15 on a slow branch) must not lower the hashes every server
 * shares (attack review: it re-made 2^17 hashes at 2^15). Such a server checks a stronger hash at its own cost, so a
 * wrong password for that ID answers slower than its dummy for an unknown one: keep every server on one setting.
 */
export function needsRehash(stored: string): boolean {
  const h = parseHash(stored);
  const want = scryptParams();
  return !h || h.logN < want.logN || h.r < want.r || h.key.length < want.keyLen;
}

export async function hashPassword(password: string): Promise<string> {
  return makeHash(checkPassword(password));
}

/** A hash under SCRYPT's parameters. No rule checked: the upgrade at sign-in re-hashes what was verified, as it is. */
async function makeHash(password: string): Promise<string> {
  const salt = randomBytes(16);
  const pw = Buffer.from(password, "utf8");
  try {
    const o = scryptParams();
    const key = await scrypt(pw, salt, o.keyLen, scryptOptions(o.logN, o.r, o.p));
    return `scrypt$${o.logN}$${o.r}$${o.p}$${salt.toString("base64")}$${key.toString("base64")}`;
  } finally {
    pw.fill(0);
  }
}

/** Checks a password against a stored hash, under the parameters the hash names (older ones too). */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  const h = parseHash(stored);
  if (!h || h.key.length === 0) return false;
  const want = h.key;
  const pw = Buffer.from(password.slice(0, MAX_PASSWORD), "utf8");
  try {
    const got = await scrypt(pw, h.salt, want.length, scryptOptions(h.logN, h.r, h.p));
    return got.length === want.length && timingSafeEqual(got, want);
  } finally {
    pw.fill(0);
  }
}

/**
 * Made once per process and cost: the hash an unknown or locked account is checked against, for equal timing. Only a
 * made one is kept: a making that failed (scrypt refused its memory, say) is forgotten as it fails, so the next sign-in
 * tries again. Kept, its rejection answered every later sign-in for an unknown or disabled ID at once and for good
 * (attack review L2): a lasting denial, and an answer unlike a known ID's, whose own scrypt may well succeed. The
 * failure itself reaches the caller, so this sign-in fails as a server error (the console's 500, which names nothing),
 * as a known ID's does when its own scrypt fails.
 */
const dummyHashes = new Map<number, Promise<string>>();
function dummy(): Promise<string> {
  const logN = scryptParams().logN;
  const kept = dummyHashes.get(logN);
  if (kept) return kept;
  const made = hashPassword(randomBytes(18).toString("base64"));
  dummyHashes.set(logN, made);
  // Only if it is still the kept one (callers sharing it all get its rejection; a later making is left alone).
  made.catch(() => {
    if (dummyHashes.get(logN) === made) dummyHashes.delete(logN);
  });
  return made;
}

export function checkStaffName(name: unknown): string {
  if (typeof name !== "string" || !NAME_RE.test(name)) {
    throw new RegistryError("bad_staff_name", "a staff ID is 1-64 of A-Z a-z 0-9 . _ -", "bad_input");
  }
  return name;
}

/** The message never contains the password. */
export function checkPassword(password: unknown): string {
  if (typeof password !== "string" || password.length < MIN_PASSWORD || password.length > MAX_PASSWORD) {
    throw new RegistryError("bad_password", `a staff password is ${MIN_PASSWORD} to ${MAX_PASSWORD} characters`, "bad_input");
  }
  if (/[\x00-\x1f\x7f]/.test(password)) throw new RegistryError("bad_password", "a staff password may not contain control characters (a stray newline?)", "bad_input");
  return password;
}

export interface StaffInfo {
  name: string;
  role: StaffRole;
  /** Locked out now from some address (until lockedUntil, the latest end). */
  locked: boolean;
  lockedUntil: string | null;
  /** The client addresses locked out now (client-key.ts: an IPv6 client's /64), each with its end; "*": every address (a lock from before migration 15). */
  lockedFrom: { source: string; until: string }[];
  /** The most wrong passwords in a row counted from one address. */
  failedSignins: number;
  disabled: boolean;
  createdAt: string;
  disabledAt: string | null;
  lastSigninAt: string | null;
}

interface StaffRow {
  name: string;
  role: StaffRole;
  password_hash: string;
  failed_signins: number;
  locked_until: number | null;
  created_at: number;
  disabled_at: number | null;
  last_signin_at: number | null;
}

/** A member's count and lock from one client address (migration 15). */
interface LockRow {
  staff: string;
  source: string;
  failed_signins: number;
  locked_until: number | null;
}

const iso = (ms: number | null) => (ms === null || ms === undefined ? null : new Date(Number(ms)).toISOString());

/** Is the account (or the address's row) locked at `now`? */
const lockedAt = (r: Pick<StaffRow, "locked_until">, now: number) => r.locked_until !== null && r.locked_until !== undefined && Number(r.locked_until) > now;

/** A lock row for the lock from before migration 15: the account's, from every address ("*"). */
const legacyLock = (r: StaffRow): LockRow => ({ staff: r.name, source: "*", failed_signins: Number(r.failed_signins), locked_until: r.locked_until });

function info(r: StaffRow, locks: LockRow[], now: number): StaffInfo {
  const all = [legacyLock(r), ...locks];
  const lockedFrom = all.filter((l) => lockedAt(l, now)).sort((a, b) => Number(b.locked_until) - Number(a.locked_until));
  return {
    name: r.name,
    role: r.role,
    locked: lockedFrom.length > 0,
    lockedUntil: lockedFrom.length ? iso(lockedFrom[0].locked_until) : null,
    lockedFrom: lockedFrom.map((l) => ({ source: l.source, until: iso(l.locked_until)! })),
    failedSignins: Math.max(...all.map((l) => Number(l.failed_signins))),
    disabled: r.disabled_at !== null,
    createdAt: iso(r.created_at)!,
    disabledAt: iso(r.disabled_at),
    lastSigninAt: iso(r.last_signin_at),
  };
}

/** One audit record written by the staff and console code (same table, same shape as the registry's). */
export async function auditRecord(
  t: Sql,
  actor: Actor,
  action: string,
  outcome: string,
  at: number,
  more: { serial?: string | null; customer?: string | null; detail?: Record<string, unknown> } = {},
): Promise<void> {
  await t.run("INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
    at,
    actor.name,
    actor.source,
    action,
    outcome,
    more.serial ?? null,
    more.customer ?? null,
    more.detail ? JSON.stringify(more.detail) : null,
    actor.request ?? null,
  ]);
}

/** The audit actor of a console user: `console:<staff ID>`. */
export function consoleActor(name: string, source: string): Actor {
  return { name: "console:" + name, source };
}

export async function addStaff(db: Database, name: string, role: StaffRole, password: string, actor: Actor, now = Date.now()): Promise<StaffInfo> {
  checkStaffName(name);
  if (!STAFF_ROLES.includes(role)) throw new RegistryError("bad_role", `role must be one of ${STAFF_ROLES.join(", ")}`, "bad_input");
  const hash = await hashPassword(password);
  return db.tx(async (t) => {
    // Case too: "Yamada" beside "yamada" would be two people the audit (console:<ID>) and the staff list tell apart by one letter's case.
    const same = await t.get<{ name: string }>(`SELECT name FROM staff WHERE lower(name) = lower(?)${db.forUpdate}`, [name]);
    if (same) {
      const like = same.name === name ? "" : ` as ${same.name} (IDs that differ only in case would name two people alike)`;
      throw new RegistryError("staff_exists", `staff ID ${name} exists already${like} (IDs are never reused, so the audit names one person)`, "refused");
    }
    await t.run("INSERT INTO staff (name, role, password_hash, failed_signins, created_at) VALUES (?, ?, ?, 0, ?)", [name, role, hash, now]);
    await auditRecord(t, actor, "add_staff", "ok", now, { detail: { staff: name, role } });
    return info({ name, role, password_hash: hash, failed_signins: 0, locked_until: null, created_at: now, disabled_at: null, last_signin_at: null }, [], now);
  });
}

/** Rows with a count (a right password deletes its address's row), by member. */
async function locksOf(db: Sql, name?: string): Promise<Map<string, LockRow[]>> {
  const rows = await db.all<LockRow>(`SELECT staff, source, failed_signins, locked_until FROM staff_signin_locks WHERE failed_signins > 0${name === undefined ? "" : " AND staff = ?"}`, name === undefined ? [] : [name]);
  const out = new Map<string, LockRow[]>();
  for (const l of rows) out.set(l.staff, [...(out.get(l.staff) ?? []), l]);
  return out;
}

export async function listStaff(db: Database, now = Date.now()): Promise<StaffInfo[]> {
  const locks = await locksOf(db);
  return (await db.all<StaffRow>("SELECT * FROM staff ORDER BY name")).map((r) => info(r, locks.get(r.name) ?? [], now));
}

export async function getStaff(db: Database, name: string, now = Date.now()): Promise<StaffInfo | undefined> {
  const r = await db.get<StaffRow>("SELECT * FROM staff WHERE name = ?", [checkStaffName(name)]);
  return r ? info(r, (await locksOf(db, name)).get(name) ?? [], now) : undefined;
}

/** Disabled for good (IDs are not reused); every session of the member ends at once. */
export async function disableStaff(db: Database, name: string, actor: Actor, now = Date.now()): Promise<void> {
  checkStaffName(name);
  await db.tx(async (t) => {
    const n = await t.run("UPDATE staff SET disabled_at = ? WHERE name = ? AND disabled_at IS NULL", [now, name]);
    if (n === 0) throw new RegistryError("unknown_staff", `no active staff account ${name}`, "refused");
    await t.run("DELETE FROM staff_sessions WHERE staff = ?", [name]);
    await auditRecord(t, actor, "disable_staff", "ok", now, { detail: { staff: name } });
  });
}

/**
 * Lifts the member's sign-in locks, from every address, and resets the counts of wrong passwords (so the next
 * lock is again the shortest); a supervisor's action. Also for a member whose lock has ended but whose count
 * still stands (its next lock would be longer); staff_not_locked only when fewer than five wrong passwords are
 * counted from every address.
 */
export async function unlockStaff(db: Database, name: string, actor: Actor, now = Date.now()): Promise<void> {
  checkStaffName(name);
  await db.tx(async (t) => {
    const row = await t.get<StaffRow>(`SELECT * FROM staff WHERE name = ?${db.forUpdate}`, [name]);
    if (!row || row.disabled_at !== null) throw new RegistryError("unknown_staff", `no active staff account ${name}`, "refused");
    const was = info(row, (await locksOf(t, name)).get(name) ?? [], now);
    if (was.failedSignins < SIGNIN_LOCK_AFTER) throw new RegistryError("staff_not_locked", `staff account ${name} is not locked`, "refused");
    await t.run("UPDATE staff SET failed_signins = 0, locked_until = NULL WHERE name = ?", [name]);
    await t.run("DELETE FROM staff_signin_locks WHERE staff = ?", [name]);
    await auditRecord(t, actor, "unlock_staff", "ok", now, { detail: { staff: name, failures: was.failedSignins, lockedNow: was.locked, lockedFrom: was.lockedFrom } });
  });
}

/**
 * scrypt checks at once, and sign-ins waiting for one. A sign-in needs no
 * session, so anyone who reaches the port can ask for 128 MiB and ~0.3-0.7 s
 * of a libuv pool thread (4 threads, shared with fs, dns and zlib) per
 * request; unbounded, a flood queued seconds of work ahead of every staff
 * member's sign-in and held a socket for each. Past the queue a sign-in is
 * refused at once (`signin_busy`, 503 with Retry-After), before any scrypt,
 * count or audit. One address may hold only KDF_PER_SOURCE of the places.
 * Memory: each running place holds one scrypt's 128 MiB (a sign-in that
 * upgrades an old hash runs its two scrypts one after the other, in the same
 * place), so the gate bounds scrypt memory at KDF_PARALLEL x 128 MiB =
 * 256 MiB per server process at the default cost (measured: a process's peak RSS
 * goes from 43 to 299 MiB with two at once), 512 MiB at most (FOBKIT_STAFF_SCRYPT_LOGN=18,
 * or stored hashes at SCRYPT_MAX); waiting places hold none. The gate is per
 * process: `bank serve --workers N` can take N times that at worst.
 */
export const KDF_PARALLEL = 2;
export const KDF_QUEUE = 16;
/**
 * Sign-ins one client address may have in the gate (running or waiting; a
 * branch behind NAT is one address, so not few): a
 * flood from one address fills only these, and staff at other addresses
 * still get the rest (the address is the audit's, behind --trust-proxy too;
 * an IPv6 client's places are its /64's, since it may use every address of
 * it: client-key.ts).
 */
export const KDF_PER_SOURCE = 12;
let kdfRunning = 0;
interface Waiter {
  source: string;
  go(): void;
  refuse(e: Error): void;
  /** Gives up the address's place, once (at once when refused, so the next newcomer sees the counts as they are). */
  leave(): void;
}
const kdfWaiting: Waiter[] = [];
const kdfBySource = new Map<string, number>();
const busy = () => new RegistryError("signin_busy", "too many sign-ins at once; try again in a moment", "unavailable");

/**
 * The gate is full: the address holding the most places gives up its newest waiting one to a newcomer holding
 * fewer, so no handful of addresses can keep staff at every other address out (the web attack review: two
 * addresses at KDF_PER_SOURCE each filled all 18 places, and a member's right password got 503 every time).
 * True when a place was freed.
 */
function yieldPlaceTo(mine: number): boolean {
  let victim = -1;
  let most = mine + 1;
  // Newest first, so among the heaviest address's waiters the one that came last goes.
  for (let i = kdfWaiting.length - 1; i >= 0; i--) {
    const held = kdfBySource.get(kdfWaiting[i].source) ?? 0;
    if (held > most) {
      most = held;
      victim = i;
    }
  }
  if (victim < 0) return false;
  const w = kdfWaiting.splice(victim, 1)[0];
  w.leave();
  w.refuse(busy());
  return true;
}

async function gated<T>(source: string, fn: () => Promise<T>): Promise<T> {
  const mine = kdfBySource.get(source) ?? 0;
  if (mine >= KDF_PER_SOURCE) throw busy();
  if (kdfRunning >= KDF_PARALLEL && kdfWaiting.length >= KDF_QUEUE && !yieldPlaceTo(mine)) throw busy();
  kdfBySource.set(source, mine + 1);
  let left = false;
  const leave = () => {
    if (left) return;
    left = true;
    const n = (kdfBySource.get(source) ?? 1) - 1;
    if (n > 0) kdfBySource.set(source, n);
    else kdfBySource.delete(source);
  };
  try {
    // A waiter refused by yieldPlaceTo never held a running place, and has left already.
    if (kdfRunning >= KDF_PARALLEL) await new Promise<void>((go, refuse) => kdfWaiting.push({ source, go, refuse, leave }));
    else kdfRunning++;
    try {
      return await fn();
    } finally {
      const next = kdfWaiting.shift();
      if (next) next.go();
      else kdfRunning--;
    }
  } finally {
    leave();
  }
}

/** A console session just made: the cookie's value (`id`; the database keeps its SHA-256 only) and its CSRF token. */
export interface NewSession {
  id: string;
  csrf: string;
}

export type SignIn = { ok: true; name: string; role: StaffRole; session: NewSession } | { ok: false; reason: "bad_credentials" | "locked" };

/**
 * Checks a staff ID and password, counting the try first (see the file's
 * comment), and on a right one starts the member's console session. Audited:
 * `signin` ok / bad_password / locked / disabled / unknown_staff / error (a server error: see failedSignIn), one record
 * per sign-in, saying what it came to: `ok` is written in the transaction
 * that makes the session, and only if the member is still enabled there.
 */
export function signIn(db: Database, name: string, password: string, source: string, now = Date.now()): Promise<SignIn> {
  return gated(clientKey(source), () => checkSignIn(db, name, password, source, now));
}

async function checkSignIn(db: Database, name: string, password: string, source: string, now: number): Promise<SignIn> {
  const actor = consoleActor(NAME_RE.test(name) ? name : "?", source);
  const row = NAME_RE.test(name) ? await db.get<StaffRow>("SELECT * FROM staff WHERE name = ?", [name]) : undefined;
  if (!row || row.disabled_at !== null) {
    // An ID no account has is not written down: it is as often a password typed into the
    // Staff ID field, and every teller reads the audit.
    const who = row ? actor : consoleActor("?", source);
    await dummy().then((d) => verifyPassword(d, password)).catch((e) => failedSignIn(db, who, now, e));
    await db.tx((t) => auditRecord(t, who, "signin", row ? "disabled" : "unknown_staff", now));
    return { ok: false, reason: "bad_credentials" };
  }
  // Counted per member and client address (an IPv6 client's /64). The try counts only while this address is not
  // locked (nor the account, by a lock from before migration 15); the try that makes the count a multiple of five
  // sets the lock, k-th in a row lasting signinLockMs(k) (integer division on both engines: failed_signins is an INTEGER).
  const from = clientKey(source);
  await db.run("INSERT INTO staff_signin_locks (staff, source, failed_signins, locked_until) VALUES (?, ?, 0, NULL) ON CONFLICT (staff, source) DO NOTHING", [name, from]);
  const ends = Array.from({ length: LOCK_STEPS }, (_, i) => now + signinLockMs(i + 1));
  const counted = await db.run(
    `UPDATE staff_signin_locks SET failed_signins = failed_signins + 1,
       locked_until = CASE WHEN (failed_signins + 1) % ${SIGNIN_LOCK_AFTER} <> 0 THEN locked_until
         ${ends.map((_, i) => `WHEN (failed_signins + 1) / ${SIGNIN_LOCK_AFTER} = ${i + 1} THEN CAST(? AS BIGINT)`).join(" ")}
         ELSE CAST(? AS BIGINT) END
     WHERE staff = ? AND source = ? AND (locked_until IS NULL OR locked_until <= ?)
       AND EXISTS (SELECT 1 FROM staff s WHERE s.name = ? AND s.disabled_at IS NULL AND (s.locked_until IS NULL OR s.locked_until <= ?))`,
    [...ends, now + SIGNIN_LOCK_MAX_MS, name, from, now, name, now],
  );
  const mine = () => db.get<{ failed_signins: number; locked_until: number | null }>("SELECT failed_signins, locked_until FROM staff_signin_locks WHERE staff = ? AND source = ?", [name, from]);
  if (counted === 0) {
    await dummy().then((d) => verifyPassword(d, password)).catch((e) => failedSignIn(db, actor, now, e));
    const account = await db.get<{ locked_until: number | null; disabled_at: number | null }>("SELECT locked_until, disabled_at FROM staff WHERE name = ?", [name]);
    // Not counted because the member was disabled since the SELECT above (the count's EXISTS refuses a disabled
    // member too): audited and answered as a disabled account, not as a lock (attack review L1).
    if (!account || account.disabled_at !== null) {
      await db.tx((t) => auditRecord(t, actor, "signin", "disabled", now));
      return { ok: false, reason: "bad_credentials" };
    }
    const here = await mine();
    const until = Math.max(...[account?.locked_until, here?.locked_until].filter((x) => x !== null && x !== undefined && Number(x) > now).map(Number), 0);
    await db.tx((t) => auditRecord(t, actor, "signin", "locked", now, { detail: { lockedUntil: until ? iso(until) : null } }));
    return { ok: false, reason: "locked" };
  }
  let right: boolean;
  try {
    right = await verifyPassword(row.password_hash, password);
  } catch (e) {
    // scrypt failed (a server error: OpenSSL refused the memory, say): no password was checked, so the try is given
    // back (see giveBack for why that keeps the limit on parallel guesses). Before, it stayed counted: five server
    // errors locked the member out from this address, audited as their guesses. The error still reaches the caller
    // (the console's plain 500); if the give-back itself fails, that error is dropped and the try stays counted, as before.
    await giveBack(db, name, from).catch(() => undefined);
    return failedSignIn(db, actor, now, e);
  }
  if (right) {
    // A hash under older parameters is re-made under SCRYPT's now that the password is known right. Computed here,
    // still inside the sign-in gate (so at most KDF_PARALLEL scrypts run at once, upgrades included) and before the
    // transaction (which would otherwise hold the database's write lock, or a connection, for the whole scrypt);
    // written in the transaction that records the sign-in, and only over the hash just verified. A re-making that
    // fails (a server error) does not fail the sign-in: the password was checked right, so the member signs in under
    // the old hash, re-made at a later sign-in (the audit's `ok` says passwordRehashFailed). Failing it left the try
    // counted and the member answered 500, so a server short of memory locked out every member with an old hash.
    let rehashFailed = false;
    const upgraded = needsRehash(row.password_hash)
      ? await makeHash(password.slice(0, MAX_PASSWORD)).catch(() => {
          rehashFailed = true;
          return undefined;
        })
      : undefined;
    // The member may have been disabled since the SELECT above (during the scrypt, most likely). Whether they still
    // may sign in is decided by the first statement of the transaction that makes the session and writes the audit,
    // so the two cannot disagree (attack review L1: the sign-in was audited `ok` and its session, made after, refused).
    // On PostgreSQL the UPDATE row-locks the member until commit: a disable_staff committed first makes it match no
    // row (READ COMMITTED re-checks the WHERE on the newest row); one that comes later waits, then its DELETE of the
    // member's sessions (a later statement, so a later snapshot) takes this one too (PostgreSQL 15 manual, 13.2.1 "Read
    // Committed Isolation Level": a waiting UPDATE re-evaluates its WHERE on the updated row; each command sees a
    // snapshot taken at its start). test/console/staff-signin-race.test.ts forces both orders. On SQLite the transaction holds
    // the write lock (BEGIN IMMEDIATE), so a disable is wholly before or wholly after.
    return db.tx(async (t): Promise<SignIn> => {
      // Only this address's count: a guesser's at another address stands (and its lock holds there).
      const enabled = await t.run("UPDATE staff SET failed_signins = 0, locked_until = NULL, last_signin_at = ? WHERE name = ? AND disabled_at IS NULL", [now, name]);
      if (enabled === 0) {
        // Answered as the disabled account it now is (bad_credentials, as before the password: no hint that it was right).
        await auditRecord(t, actor, "signin", "disabled", now);
        return { ok: false, reason: "bad_credentials" };
      }
      await t.run("DELETE FROM staff_signin_locks WHERE staff = ? AND source = ?", [name, from]);
      const rehashed = upgraded !== undefined && (await t.run("UPDATE staff SET password_hash = ? WHERE name = ? AND password_hash = ?", [upgraded, name, row.password_hash])) > 0;
      const session = await insertSession(t, name, source, now);
      const detail = rehashed ? { passwordRehashed: { from: hashParams(row.password_hash), to: hashParams(upgraded!) } } : rehashFailed ? { passwordRehashFailed: hashParams(row.password_hash) } : undefined;
      await auditRecord(t, actor, "signin", "ok", now, detail ? { detail } : {});
      return { ok: true, name: row.name, role: row.role, session };
    });
  }
  const after = await mine();
  const locked = after ? lockedAt(after, now) : true;
  await db.tx(async (t) => {
    await auditRecord(t, actor, "signin", "bad_password", now, { detail: { failures: Number(after?.failed_signins), locked, ...(locked && after ? { lockedUntil: iso(after.locked_until) } : {}) } });
    // This try wrote a lock (a try counts only while unlocked): prune rows, of any member, whose lock ended over
    // SIGNIN_LOCK_KEPT_MS ago. Rows never locked (fewer than five wrong) have no end to age by, and stay.
    if (locked) await t.run("DELETE FROM staff_signin_locks WHERE locked_until < ?", [now - SIGNIN_LOCK_KEPT_MS]);
  });
  return { ok: false, reason: "bad_credentials" };
}

/**
 * A sign-in whose scrypt failed (a server error: no password was checked, and it is answered with none of the
 * outcomes above) is audited `signin` `error`, so the audit holds one record per sign-in (attack review L5: before,
 * such a sign-in left none). The record is the same for every ID but for the actor, which is the one that ID's other
 * records carry (`console:?` for an ID no account has, as unknown_staff's): no detail, so nothing of the password or
 * its hash, and nothing that would tell a known ID from an unknown one where the other records do not. Best-effort:
 * if the record cannot be written (the database is in trouble too, say), that error is dropped and scrypt's reaches
 * the caller all the same (the console's plain 500, one page for every ID).
 */
async function failedSignIn(db: Database, who: Actor, now: number, e: unknown): Promise<never> {
  await db.tx((t) => auditRecord(t, who, "signin", "error", now)).catch(() => undefined);
  throw e;
}

/**
 * Takes back one try counted by checkSignIn's UPDATE, for a try whose password was never checked (its scrypt failed).
 * Why this keeps the guarantee that parallel tries from one address get at most SIGNIN_LOCK_AFTER answers between
 * locks: a row's failed_signins is always (answered tries) + (tries counted and still in flight) since the row was
 * last reset, since each try adds one before its scrypt and only a try that got no answer takes one away, after its
 * scrypt failed. So answered <= failed_signins, at every moment. The lock is a function of the count: the try that
 * makes it 5k sets lock k, and no try counts while it holds. A give-back that brings the count from 5k to 5k - 1
 * lifts that lock (whichever try set it: the ones answered are at most 5k - 1, so lock k is not owed yet), and the
 * next try to count makes it 5k again and sets lock k anew; lock k - 1 had ended already, or no try could have
 * counted past 5(k - 1). Decrementing rather than "restoring the old value" is what makes it safe under races: each
 * UPDATE is one statement that reads the row's newest count (SQLite: one writer at a time; PostgreSQL 15 manual,
 * 13.2.1 "Read Committed Isolation Level": an UPDATE waits on a row another transaction updates, then works on its
 * newest version), so tries that counted between this try's count and its give-back keep theirs, and a try refused
 * as locked meanwhile was refused rightly (the count said so then) and was never counted.
 * What it cannot tell: a row reset during the failed try (a right password from this address or a supervisor's
 * unlock deletes it, so does the pruning of a lock ended a week ago) and counted anew; the give-back then takes one
 * of the new tries. That is one try per server error that straddles a reset, never below zero, and a guesser cannot
 * time it (it needs scrypt to fail on demand, and a right password at that address, or a supervisor's unlock, at that
 * moment). Exact would need a row generation the try carries (a column, a migration): not worth one try per such event.
 */
async function giveBack(db: Database, name: string, from: string): Promise<void> {
  await db.run(
    `UPDATE staff_signin_locks SET failed_signins = failed_signins - 1,
       locked_until = CASE WHEN failed_signins % ${SIGNIN_LOCK_AFTER} = 0 THEN NULL ELSE locked_until END
     WHERE staff = ? AND source = ? AND failed_signins > 0`,
    [name, from],
  );
}

// ------------------------------------------------------------------ sessions

export interface Session {
  staff: string;
  role: StaffRole;
  csrf: string;
}

const sessionKey = (id: string) => createHash("sha256").update(id, "utf8").digest("hex");

/**
 * A new session (never one the client named: no fixation), made by signIn in the transaction that found the member
 * enabled and records the sign-in (so there is no way to make one for a member without a sign-in).
 */
async function insertSession(t: Sql, staff: string, source: string, now: number): Promise<NewSession> {
  const id = randomBytes(32).toString("base64url");
  const csrf = randomBytes(32).toString("base64url");
  // Housekeeping: sessions idle past the timeout are gone anyway.
  await t.run("DELETE FROM staff_sessions WHERE seen_at < ? OR created_at < ?", [now - IDLE_MS, now - SESSION_MAX_MS]);
  await t.run("INSERT INTO staff_sessions (id_hash, staff, csrf, source, created_at, seen_at) VALUES (?, ?, ?, ?, ?, ?)", [sessionKey(id), staff, csrf, source, now, now]);
  return { id, csrf };
}

/** The live session for a cookie value, its idle clock restarted; undefined when unknown, idle, expired or its member disabled. */
export async function loadSession(db: Database, id: string, now = Date.now()): Promise<Session | undefined> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
  const key = sessionKey(id);
  const r = await db.get<{ staff: string; role: StaffRole; csrf: string; created_at: number; seen_at: number; disabled_at: number | null }>(
    "SELECT s.staff, st.role, s.csrf, s.created_at, s.seen_at, st.disabled_at FROM staff_sessions s JOIN staff st ON st.name = s.staff WHERE s.id_hash = ?",
    [key],
  );
  if (!r) return undefined;
  if (r.disabled_at !== null || Number(r.seen_at) < now - IDLE_MS || Number(r.created_at) < now - SESSION_MAX_MS) {
    await db.run("DELETE FROM staff_sessions WHERE id_hash = ?", [key]);
    return undefined;
  }
  if (now - Number(r.seen_at) >= SEEN_RESOLUTION_MS) await db.run("UPDATE staff_sessions SET seen_at = ? WHERE id_hash = ?", [now, key]);
  return { staff: r.staff, role: r.role, csrf: r.csrf };
}

export async function endSession(db: Database, id: string): Promise<void> {
  if (/^[A-Za-z0-9_-]{43}$/.test(id)) await db.run("DELETE FROM staff_sessions WHERE id_hash = ?", [sessionKey(id)]);
}
