/**
 * `fobkit app`'s token store: a directory holding one set-up token, its
 * seed sealed at rest.
 *
 *   DIR/            0700, owned by the user
 *   DIR/store.key   32 random bytes, 0600: the AES-256 key (never printed)
 *   DIR/token.json  {format, bankUrl, serviceId, userId, params, setupAt, iv, sealed}
 *   DIR/setup.claim while a `fobkit app setup` runs (claimStore), naming its holder
 *
 * - Sealed with AES-256-GCM (NIST SP 800-38D; a fresh 96-bit IV per write,
 *   §8.2.2's random construction), the additional data binding the format,
 *   service ID, user ID and the params text the bank's MAC covered: a
 *   token.json whose IDs or bank name were edited, or a sealed seed copied
 *   from another token, fails to open.
 * - Like ssh with a private key (OpenSSH sshkey_perm_ok, authfile.c), a key
 *   file that group or others can read, a key file that is a symlink or not
 *   ours, or a store directory others can write to is refused: it may have
 *   been read or swapped.
 * - token.json is written whole or not at all: a temp file in the same
 *   directory, fsync, rename over, fsync the directory (POSIX rename(2) is
 *   atomic). Temp files hold only the sealed form.
 * - The seed exists in memory only while sealing or while a code is made,
 *   and is wiped (filled with zeros) after; a garbage-collected runtime may
 *   still hold copies it made itself, which no JavaScript can reach.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { closeSync, constants, fstatSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, join } from "node:path";
import { ownerGone, processOwner } from "../process-owner.js";
import { hotp } from "../registry/totp.js";
import { SoftParamsError, parseSoftTokenParams, stepAt, type SoftTokenParams } from "../soft/protocol.js";

export const KEY_FILE = "store.key";
export const TOKEN_FILE = "token.json";
export const CLAIM_FILE = "setup.claim";
const FORMAT = "fobkit-app-store-v1";
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export type StoreErrorCode = "no_store" | "not_a_directory" | "unsafe_store" | "unsafe_key_file" | "bad_key_file" | "no_token" | "token_exists" | "busy" | "bad_token_file" | "tampered";

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "StoreError";
  }
}

interface TokenFile {
  format: typeof FORMAT;
  bankUrl: string;
  serviceId: string;
  userId: string;
  /** SetupFinishResponse.params, the exact text the bank's MAC covered. */
  params: string;
  setupAt: number;
  iv: string;
  /** Ciphertext and the 16-byte GCM tag, base64. */
  sealed: string;
}

export interface StoredTokenInfo {
  bankUrl: string;
  serviceId: string;
  userId: string;
  params: SoftTokenParams;
  setupAt: number;
}

function aad(t: Pick<TokenFile, "serviceId" | "userId" | "params">): Buffer {
  // Length-prefixed, so no two different triples encode alike.
  return Buffer.concat([FORMAT, t.serviceId, t.userId, t.params].flatMap((s) => {
    const b = Buffer.from(s, "utf8");
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return [len, b];
  }));
}

const uid = () => (typeof process.getuid === "function" ? process.getuid() : undefined);

/** The store directory, created 0700 when `create`; refused when others can write to it. */
function checkDir(dir: string, create: boolean): void {
  let st;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    if (!create) throw new StoreError("no_store", `no token store at ${dir}: run \`fobkit app setup --store ${dir} ...\` first`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    st = lstatSync(dir);
  }
  if (!st.isDirectory()) throw new StoreError("not_a_directory", `${dir} is not a directory (a symlink is refused too): give the store's own directory`);
  if (st.mode & 0o022) throw new StoreError("unsafe_store", `the store directory ${dir} can be written by group or others (mode ${(st.mode & 0o777).toString(8)}): its files could be swapped. Run \`chmod 700 ${dir}\``);
  const me = uid();
  if (me !== undefined && st.uid !== me) throw new StoreError("unsafe_store", `the store directory ${dir} belongs to another user (uid ${st.uid})`);
}

/** The store's key; created (0600, exclusively) when `create` and absent. */
function storeKey(dir: string, create: boolean): Buffer {
  const path = join(dir, KEY_FILE);
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    if (!create) throw new StoreError("bad_key_file", `${path} is missing: the store cannot be opened (set the token up again into a new store)`);
    // Written whole to a temp file, then linked into place: link(2) fails with EEXIST rather than replace, so two
    // set-ups racing into one new store agree on one key, and no reader ever sees a half-written key file.
    const key = randomBytes(KEY_BYTES);
    const tmp = join(dir, `.${KEY_FILE}.${randomBytes(6).toString("hex")}.tmp`);
    try {
      writeNew(tmp, key);
      try {
        linkSync(tmp, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        key.fill(0);
        return storeKey(dir, false); // another process made it first: use (and check) theirs
      }
    } finally {
      rmSync(tmp, { force: true });
    }
    fsyncDir(dir);
    return key;
  }
  if (!st.isFile()) throw new StoreError("unsafe_key_file", `${path} is not a regular file (a symlink is refused)`);
  if (st.mode & 0o077) throw new StoreError("unsafe_key_file", `${path} can be read by group or others (mode ${(st.mode & 0o777).toString(8)}): treat the token as exposed. If it was never shared, run \`chmod 600 ${path}\``);
  const me = uid();
  if (me !== undefined && st.uid !== me) throw new StoreError("unsafe_key_file", `${path} belongs to another user (uid ${st.uid})`);
  const key = readFileSync(path);
  if (key.length !== KEY_BYTES) {
    key.fill(0);
    throw new StoreError("bad_key_file", `${path} must hold exactly ${KEY_BYTES} bytes`);
  }
  return key;
}

/** Creates `path` (never an existing file or a symlink), 0600, with `data`, synced. */
function writeNew(path: string, data: Buffer): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw e;
  }
  closeSync(fd);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function readTokenFile(dir: string): TokenFile | undefined {
  const path = join(dir, TOKEN_FILE);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  let t: TokenFile;
  try {
    t = JSON.parse(text) as TokenFile;
  } catch {
    throw new StoreError("bad_token_file", `${path} is not JSON`);
  }
  const str = (v: unknown) => typeof v === "string";
  if (t?.format !== FORMAT || ![t.bankUrl, t.serviceId, t.userId, t.params, t.iv, t.sealed].every(str) || typeof t.setupAt !== "number") {
    throw new StoreError("bad_token_file", `${path} is not a ${FORMAT} token file`);
  }
  return t;
}

function parseParams(text: string, path: string): SoftTokenParams {
  try {
    return parseSoftTokenParams(text);
  } catch (e) {
    if (e instanceof SoftParamsError) throw new StoreError("bad_token_file", `${path}: ${e.message}`);
    throw e;
  }
}

/**
 * Claims DIR for one `fobkit app setup` until the returned release is called. A second set-up into the same store
 * is refused `busy` here, before it asks the bank: each set-up start spends one of the user ID's five tries, and of
 * two starts only the later one's ticket can finish.
 *
 * DIR/setup.claim names its holder: `linux:<boot id>:<pid namespace>:<pid>:<start time>` (host/process-owner.ts),
 * a random nonce, and `machine:<machine id>` (/etc/machine-id, machine-id(5)). It is published whole (a temp file
 * linked into place), so no crash leaves half a claim. A claim whose holder is gone is taken over:
 * - this boot's, whose PID is gone or now another process (host/process-owner.ts ownerGone);
 * - another boot's of this same machine, written before this boot began: one machine runs one boot at a time, so
 *   its holder ended with that boot (a crash, then a reboot). Another machine's claim (a store on a shared file
 *   system), or one written since this boot, is not judged, and refuses until deleted by hand.
 * The take-over is atomic (replaceStale): of any number of set-ups finding one stale claim, exactly one replaces it.
 */
export function claimStore(dir: string): () => void {
  checkDir(dir, true);
  const path = join(dir, CLAIM_FILE);
  const mine = `${processOwner() ?? "unknown"}\n${randomBytes(6).toString("hex")}\n${machineId() ? `machine:${machineId()}\n` : ""}`;
  const release = () => {
    try {
      if (readClaim(path)?.text === mine) rmSync(path, { force: true });
    } catch {
      // not ours any more (replaced by hand): left as it is
    }
  };
  let pid: string | undefined;
  for (let attempt = 0; attempt < 4; attempt++) {
    if (publish(dir, path, mine)) return release;
    const held = readClaim(path);
    if (held === undefined) continue; // released meanwhile
    pid = /:(\d+):\d+$/.exec(held.text.split("\n")[0])?.[1];
    if (!holderGone(held)) break;
    if (replaceStale(dir, path, held.text, mine, 0)) return release;
    // Another set-up took it over first: look at its claim.
  }
  throw new StoreError("busy", `another fobkit app setup is under way in ${dir}${pid ? ` (process ${pid})` : ""}: let it finish, nothing was asked of the bank. If no set-up runs, delete ${path}`);
}

/** Creates `path` holding `text`, whole or not at all: written to a temp file, then linked (EEXIST: false, nothing changed). */
function publish(dir: string, path: string, text: string): boolean {
  const tmp = join(dir, `.${CLAIM_FILE}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    writeNew(tmp, Buffer.from(text));
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * Replaces the stale claim `stale` at `path` with `mine`, if this run is the one to do it. Who may is decided by
 * link(2): the first to create the lock `.<name>.<hash of the stale claim>.takeover` (EEXIST for every other), so
 * each stale claim has one taker. Only a lock's holder replaces its claim, so the claim is still the stale one when
 * the holder looks (unless a person removed it: then nothing is replaced), and rename(2) swaps it for ours in one
 * step: the store is never without a claim that a third set-up could make meanwhile. A later taker of the same
 * stale claim finds ours in its place and gives up. A lock left by a taker that died is itself a stale claim, taken
 * over the same way (one level deep; past that, refused).
 */
function replaceStale(dir: string, path: string, stale: string, mine: string, depth: number): boolean {
  const lock = join(dir, `.${basename(path)}.${createHash("sha256").update(stale, "latin1").digest("hex").slice(0, 16)}.takeover`);
  if (!publish(dir, lock, mine)) {
    const taker = readClaim(lock);
    if (!taker || depth > 0 || !holderGone(taker) || !replaceStale(dir, lock, taker.text, mine, depth + 1)) return false;
  }
  try {
    if (readClaim(path)?.text !== stale) return false;
    const tmp = join(dir, `.${CLAIM_FILE}.${randomBytes(6).toString("hex")}.tmp`);
    try {
      writeNew(tmp, Buffer.from(mine));
      renameSync(tmp, path);
    } finally {
      rmSync(tmp, { force: true });
    }
    fsyncDir(dir);
    return true;
  } finally {
    if (readClaim(lock)?.text === mine) rmSync(lock, { force: true });
  }
}

/** This machine's id (machine-id(5): /etc/machine-id, or D-Bus's copy), or undefined where there is none. */
function machineId(): string | undefined {
  for (const f of ["/etc/machine-id", "/var/lib/dbus/machine-id"]) {
    try {
      const id = readFileSync(f, "latin1").trim();
      if (/^[0-9a-f]{32}$/.test(id)) return id;
    } catch {
      // next
    }
  }
  return undefined;
}

/** When this boot began, unix ms (proc(5): /proc/stat `btime`, seconds), or undefined. */
function bootTimeMs(): number | undefined {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync("/proc/stat", "latin1"));
    return m ? Number(m[1]) * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** True only when the claim's holder certainly runs no more (see claimStore); false when alive or when it cannot be told. */
function holderGone(held: Claim): boolean {
  const [owner, , machine] = held.text.split("\n");
  if (ownerGone(owner)) return true;
  const theirBoot = /^linux:([0-9a-f-]+):/.exec(owner)?.[1];
  const ourBoot = /^linux:([0-9a-f-]+):/.exec(processOwner() ?? "")?.[1];
  if (!theirBoot || !ourBoot || theirBoot === ourBoot) return false;
  const id = machineId();
  const booted = bootTimeMs();
  return id !== undefined && machine === `machine:${id}` && booted !== undefined && held.mtimeMs < booted;
}

interface Claim {
  text: string;
  mtimeMs: number;
}

/**
 * A claim (or take-over lock) and when it was written, or undefined when there is none. Opened without following a
 * symlink and without waiting (a FIFO would block the read until a writer came), and read only when it is a regular
 * file: anything else in its place is no set-up's claim, refused by name.
 */
function readClaim(path: string): Claim | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code !== "ELOOP") throw e;
    fd = -1;
  }
  try {
    const st = fd < 0 ? undefined : fstatSync(fd);
    if (!st?.isFile()) {
      throw new StoreError("unsafe_store", `${path} is not a regular file (a symlink, directory or FIFO there is no set-up's claim, and is not followed or read): remove it if you put it there`);
    }
    return { text: readFileSync(fd, "latin1"), mtimeMs: st.mtimeMs };
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** Refuses before any network call when set-up could not be stored: an unsafe store, or one that already holds a token. */
export function prepareStore(dir: string): void {
  checkDir(dir, true);
  const existing = readTokenFile(dir);
  if (existing) throw new StoreError("token_exists", `${dir} already holds the token of user ID ${existing.userId} (service ID ${existing.serviceId}): give another --store, or delete that directory if the token is no longer used`);
  const key = storeKey(dir, true);
  key.fill(0);
}

/** Seals `seed` into DIR/token.json (atomically) and wipes it. */
export function saveToken(dir: string, t: { bankUrl: string; serviceId: string; userId: string; params: string; setupAt: number }, seed: Uint8Array): void {
  try {
    checkDir(dir, true);
    if (readTokenFile(dir)) throw new StoreError("token_exists", `${dir} already holds a token`);
    const key = storeKey(dir, true);
    const iv = randomBytes(IV_BYTES);
    let sealed: Buffer;
    try {
      const c = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
      c.setAAD(aad(t));
      sealed = Buffer.concat([c.update(seed), c.final(), c.getAuthTag()]);
    } finally {
      key.fill(0);
    }
    const file: TokenFile = { format: FORMAT, ...t, iv: iv.toString("base64"), sealed: sealed.toString("base64") };
    const tmp = join(dir, `.${TOKEN_FILE}.${randomBytes(6).toString("hex")}.tmp`);
    // link(2), not rename(2): rename would silently replace a token another `fobkit app setup` stored into this
    // directory since the check above (two set-ups racing into one store); link refuses with EEXIST instead.
    try {
      writeNew(tmp, Buffer.from(JSON.stringify(file, null, 2) + "\n"));
      try {
        linkSync(tmp, join(dir, TOKEN_FILE));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new StoreError("token_exists", `${dir} already holds a token (stored by another set-up meanwhile)`);
        throw e;
      }
    } finally {
      rmSync(tmp, { force: true });
    }
    fsyncDir(dir);
  } finally {
    seed.fill(0);
  }
}

/** The code at `nowMs`: the seed is opened, used for one HMAC, and wiped. */
export async function codeAt(dir: string, nowMs: number): Promise<{ code: string; info: StoredTokenInfo; step: number; msLeft: number }> {
  checkDir(dir, false);
  const t = readTokenFile(dir);
  if (!t) throw new StoreError("no_token", `${dir} holds no token: run \`fobkit app setup --store ${dir} ...\``);
  const key = storeKey(dir, false);
  const blob = Buffer.from(t.sealed, "base64");
  const iv = Buffer.from(t.iv, "base64");
  let seed: Buffer;
  try {
    if (iv.length !== IV_BYTES || blob.length < TAG_BYTES) throw new Error("short");
    const d = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
    d.setAAD(aad(t));
    d.setAuthTag(blob.subarray(blob.length - TAG_BYTES));
    seed = Buffer.concat([d.update(blob.subarray(0, blob.length - TAG_BYTES)), d.final()]);
  } catch {
    throw new StoreError("tampered", `${join(dir, TOKEN_FILE)} does not open with ${join(dir, KEY_FILE)}: the file was changed, or belongs with another key`);
  } finally {
    key.fill(0);
  }
  try {
    const params = parseParams(t.params, join(dir, TOKEN_FILE));
    const { step, msLeft } = stepAt(nowMs, params.period, params.t0);
    // node:crypto's HOTP, the one the bank verifies with (registry/totp.ts). The browser holds a non-extractable
    // CryptoKey instead of bytes and uses protocol.ts's totpFromKey.
    const code = hotp(params.algorithm, seed, step, params.digits);
    return { code, step, msLeft, info: { bankUrl: t.bankUrl, serviceId: t.serviceId, userId: t.userId, params, setupAt: t.setupAt } };
  } finally {
    seed.fill(0);
  }
}
