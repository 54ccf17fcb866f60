/**
 * Key-encryption keys for seeds at rest. They live in a key file outside the
 * database (`--kek-file` or $FOBKIT_BANK_KEK_FILE), one key a line:
 *
 *     # newest first; the first key seals, every key listed opens
 *     k20261125-3f9a  <64 hex digits: an AES-256 key>
 *     k20250101-0c1d  <64 hex digits>
 *
 * A key may be marked `staged` (`fobkit bank rotate-key --stage`): it opens
 * but never seals, so the file can reach every server before any row is
 * sealed under it. The next rotation makes it the sealing key. A server
 * whose copy still has it staged opens the re-sealed rows, and when the
 * database refuses its sealing key as retired it seals under the staged
 * key: with a staged key distributed first, a rotation needs no file copy
 * to arrive in time.
 *
 * Rotation without downtime: `fobkit bank rotate-key` puts a new key at the
 * top of the file, then re-seals every row under it, one row per
 * transaction. Servers notice the file changed (looked at no more than once
 * a second, and at once on a key id they do not know, when its inode, mtime
 * or size changed; its bytes are compared by hash at most once a second, so
 * a rewrite that keeps all three is seen too: load()), so they
 * read rows sealed under either key throughout, and seal new rows under the
 * new one shortly after. The rotation records the older keys as retired in
 * the database first; from then on the database refuses any write sealed
 * under them (migration 3), and a server whose write is refused re-reads the
 * file at once and seals again under the newest key. Old keys are dropped
 * from the file (`--prune`) only after a transaction that marks them pruned
 * has counted no row under them.
 *
 * Changes are one at a time: every change reads the whole file, changes it and writes it back, so two at once
 * (two operators, cron and an operator) used to both read the old file and the later rename dropped the other's
 * new key while that process went on sealing rows under it. A change holds the key file's lock (KeyFileLock:
 * FILE.lock, created O_EXCL) and re-reads the file under it; `bank rotate-key` holds it for its whole run.
 *
 * Sealing: AES-256-GCM (NIST SP 800-38D) with a random 96-bit nonce (§8.2.2)
 * and the serial and key id as additional data, so a sealed seed cannot be
 * moved to another row. Stored: nonce ‖ ciphertext ‖ 128-bit tag.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { chmodSync, closeSync, fsyncSync, linkSync, lstatSync, openSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { ownerGone, processOwner } from "../process-owner.js";
import { syncDirectory } from "../sync-directory.js";

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const ID_RE = /^[A-Za-z0-9_-]{1,40}$/;
/** A ticket as sealTicket writes it: the key id, a dot, base64url without padding (the routes' schemas and the registry check it). */
export const TICKET_PATTERN = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$";
const TICKET_RE = new RegExp(TICKET_PATTERN);
/** Longest sealed part of a ticket accepted (base64url characters). */
const MAX_TICKET_BLOB = 16_000;

export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyFileError";
  }
}

interface Kek {
  id: string;
  key: Buffer;
  /** Opens, never seals (until a rotation makes it current). */
  staged?: boolean;
}

export function parseKeyFile(text: string, where: string): Kek[] {
  const keys: Kek[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) return;
    const m = /^(\S+)\s+([0-9A-Fa-f]+)(?:\s+(\S+))?$/.exec(line);
    // Never quote the line: it holds key material.
    if (!m) throw new KeyFileError(`${where}:${i + 1}: expected "<key id> <64 hex digits>" or "<key id> <64 hex digits> staged"`);
    if (m[3] !== undefined && m[3] !== "staged") throw new KeyFileError(`${where}:${i + 1}: after the key, only the word "staged" may follow`);
    if (!ID_RE.test(m[1])) throw new KeyFileError(`${where}:${i + 1}: key id must be 1-40 of A-Z a-z 0-9 _ -`);
    if (m[2].length !== KEY_BYTES * 2) throw new KeyFileError(`${where}:${i + 1}: key must be ${KEY_BYTES * 2} hex digits (AES-256), got ${m[2].length}`);
    if (keys.some((k) => k.id === m[1])) throw new KeyFileError(`${where}:${i + 1}: key id ${m[1]} appears twice`);
    if (m[3] && keys.some((k) => k.staged)) throw new KeyFileError(`${where}:${i + 1}: a second staged key; at most one key is staged at a time`);
    keys.push({ id: m[1], key: Buffer.from(m[2], "hex"), ...(m[3] ? { staged: true } : {}) });
  });
  if (keys.length === 0) throw new KeyFileError(`${where}: no key in the file`);
  if (keys.every((k) => k.staged)) throw new KeyFileError(`${where}: only a staged key; a key that seals must be listed too`);
  return keys;
}

export function formatKeyFile(keys: Kek[]): string {
  return (
    "# fobkit bank key-encryption keys: newest first; the first seals, all open.\n" +
    "# Keep this file out of the database and its backups; mode 0600.\n" +
    keys.map((k) => `${k.id} ${k.key.toString("hex")}${k.staged ? " staged" : ""}`).join("\n") +
    "\n"
  );
}

export function newKeyId(now = new Date()): string {
  return "k" + now.toISOString().slice(0, 10).replace(/-/g, "") + "-" + randomBytes(3).toString("hex");
}

/**
 * Writes the file whole or not at all (temp file in the same directory, then rename), and on the
 * disk before it returns: the temp file's data is fsynced before the rename and the directory after
 * it. Rows are sealed under a new key as soon as this returns, and the database commits them durably;
 * without the fsyncs a power cut could leave those rows with a key file that lacks their key
 * (ext4's delayed allocation: an empty or old file under the new name), so they could never be opened.
 */
function writeAtomically(path: string, text: string, beforeRename?: () => void): void {
  const tmp = join(dirname(path), `.${Date.now()}-${randomBytes(4).toString("hex")}.kek.tmp`);
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    beforeRename?.();
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
  renameSync(tmp, path);
  chmodSync(path, 0o600);
  syncDirectory(dirname(path));
}

/** Who holds a key file's lock (or the database's rotation lease, rotation-lock.ts): written into the lock, shown in refusals. */
export interface LockHolder {
  /** Random, per run: `bank rotate-key --clear-lock TOKEN` clears exactly this lock, not one taken since. */
  token: string;
  pid: number;
  host: string;
  /** The process as process-owner.ts names it (boot id, PID namespace, pid, start time), or null where it cannot. */
  owner: string | null;
  /** ISO time the lock was taken. */
  since: string;
  command: string;
}

export function newLockHolder(command: string): LockHolder {
  return { token: randomBytes(10).toString("hex"), pid: process.pid, host: hostname(), owner: processOwner(), since: new Date().toISOString(), command };
}

/** The holder certainly runs no more (process-owner.ts: same kernel and PID namespace, and its pid is gone or recycled). */
export function holderIsGone(holder: LockHolder): boolean {
  return ownerGone(holder.owner ?? null);
}

/** Whether this process can judge the holder (same kernel and PID namespace): if so and it is not gone, it runs. */
export function holderIsHere(holder: LockHolder): boolean {
  const mine = processOwner();
  const machine = (o: string) => o.replace(/:\d+:\d+$/, "");
  return !!mine && typeof holder.owner === "string" && machine(holder.owner) === machine(mine);
}

/** "bank rotate-key (pid 123 on host, since 2026-...)". */
export function describeHolder(h: LockHolder): string {
  return `${h.command} (pid ${h.pid} on ${h.host}, since ${h.since})`;
}

/** The lock is held by another run (or was left by one that died), or this run's lock was cleared; nothing was changed. */
export class KeyFileLockedError extends KeyFileError {
  constructor(
    message: string,
    readonly lockPath: string,
    readonly holder: LockHolder | undefined,
  ) {
    super(message);
    this.name = "KeyFileLockedError";
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const h = JSON.parse(text);
    if (h && typeof h.token === "string" && /^[0-9a-f]{1,64}$/.test(h.token) && Number.isInteger(h.pid) && typeof h.host === "string" && typeof h.since === "string" && typeof h.command === "string") return h;
  } catch {
    // below
  }
  return undefined;
}

/**
 * The key file's lock: FILE.lock, created with O_CREAT|O_EXCL (open(2): "if pathname already exists, then open()
 * fails with EEXIST"), so of two runs exactly one creates it, on a local filesystem and on NFS ("supported only
 * when using NFSv3 or later on kernel 2.6 or later", open(2) O_EXCL). Node has no flock(); a lock file also
 * outlives a crash visibly, and says who took it. Taking
 * it never waits: a run that finds it held is refused at once, naming the holder. A lock left by a run that died
 * (SIGKILL, power cut) stays until cleared (`bank rotate-key --clear-lock TOKEN`, clearStale): guessing that a
 * holder is gone and taking over is how two runs end up changing the file at once.
 */
export class KeyFileLock {
  private released = false;
  private constructor(
    readonly lockPath: string,
    readonly holder: LockHolder,
    private readonly onRelease?: () => void,
  ) {}

  static lockPathOf(keyFile: string): string {
    return keyFile + ".lock";
  }

  static take(keyFile: string, holder: LockHolder, onRelease?: () => void): KeyFileLock {
    const lockPath = KeyFileLock.lockPathOf(keyFile);
    let fd: number;
    try {
      fd = openSync(lockPath, "wx", 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new KeyFileError(`cannot create the key file's lock ${lockPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      throw KeyFileLock.refusal(keyFile, lockPath);
    }
    try {
      writeFileSync(fd, JSON.stringify(holder) + "\n");
    } finally {
      closeSync(fd);
    }
    return new KeyFileLock(lockPath, holder, onRelease);
  }

  /** The holder written in the lock of `keyFile`, or undefined when there is no lock or it names none (a crash while it was written). */
  static holderOf(keyFile: string): { exists: boolean; holder?: LockHolder } {
    let text: string;
    try {
      text = readFileSync(KeyFileLock.lockPathOf(keyFile), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return { exists: false };
      throw e;
    }
    return { exists: true, holder: parseHolder(text) };
  }

  private static refusal(keyFile: string, lockPath: string): KeyFileLockedError {
    const { exists, holder } = KeyFileLock.holderOf(keyFile);
    // Never retried: a run that finds the lock taken is refused, whatever happens to the lock next.
    if (!exists) return new KeyFileLockedError(`the key file ${keyFile} was locked by another key change a moment ago; run this again`, lockPath, undefined);
    if (!holder) {
      return new KeyFileLockedError(
        `the key file ${keyFile} is locked (${lockPath} names no holder: being taken at this moment, or left by a crash while it was taken); check that no fobkit bank rotate-key runs on this key file, then remove ${lockPath}`,
        lockPath,
        undefined,
      );
    }
    const gone = holderIsGone(holder)
      ? `; pid ${holder.pid} no longer runs on this host, so that run died and left its lock: clear it with fobkit bank rotate-key --clear-lock ${holder.token}`
      : `; run this again once it has finished (if that process is gone, clear its lock with fobkit bank rotate-key --clear-lock ${holder.token})`;
    return new KeyFileLockedError(`the key file ${keyFile} is locked by ${describeHolder(holder)}: another key change is running on this key file${gone}`, lockPath, holder);
  }

  /**
   * Removes the lock of `keyFile` if it is the one `token` names and its holder is known not to run any more, or
   * cannot be judged from here (another host or container: the operator's word that it is gone). Never one whose
   * holder runs here. Returns whether a lock was removed.
   */
  static clearStale(keyFile: string, token: string): boolean {
    const { exists, holder } = KeyFileLock.holderOf(keyFile);
    if (!exists || !holder || holder.token !== token) return false;
    const lockPath = KeyFileLock.lockPathOf(keyFile);
    if (holderIsHere(holder) && !holderIsGone(holder)) {
      throw new KeyFileLockedError(`the key file ${keyFile} is locked by ${describeHolder(holder)}, which is running: not cleared`, lockPath, holder);
    }
    // Between the read above and an unlink of FILE.lock, another operator may clear this lock and a new run take it:
    // the unlink would remove the new run's lock. So the lock is first renamed aside to a name of our own (rename(2)
    // is atomic, on NFS too: whatever lock is there at that instant moves, and nothing else), and its token is
    // checked again there; only the lock that TOKEN names is unlinked.
    const aside = `${lockPath}.${randomBytes(6).toString("hex")}.clearing`;
    try {
      renameSync(lockPath, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return false; // cleared by someone else meanwhile
      throw e;
    }
    let moved: LockHolder | undefined;
    try {
      moved = parseHolder(readFileSync(aside, "utf8"));
    } catch {
      moved = undefined;
    }
    if (moved?.token === token) {
      unlinkSync(aside);
      return true;
    }
    // Another run's lock, taken since the read: put it back. link(2) fails with EEXIST rather than replace a lock
    // taken in the instant it was away; then that one stays, and this one's holder finds at its next write that the
    // lock is not its own (assertHeld) and stops.
    try {
      linkSync(aside, lockPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    } finally {
      unlinkSync(aside);
    }
    return false;
  }

  /**
   * Refuses (KeyFileLockedError) unless FILE.lock is still this run's. `--clear-lock` removes a lock on the
   * operator's word when its holder runs on another host or container; a run whose lock was cleared so must not go
   * on writing the file, or it overwrites the keys of the run that took the lock since. Checked before every write.
   */
  assertHeld(keyFile: string): void {
    if (this.released) throw new KeyFileError(`the key file ${keyFile}'s lock was released by this run already`);
    const { exists, holder } = KeyFileLock.holderOf(keyFile);
    if (holder?.token === this.holder.token) return;
    const now = !exists ? "no run holds it now" : holder ? `it is held now by ${describeHolder(holder)}` : "it names no holder now";
    throw new KeyFileLockedError(
      `the key file ${keyFile}'s lock, taken by this run (${describeHolder(this.holder)}), was cleared (fobkit bank rotate-key --clear-lock) while it ran, and ${now}: stopped, the file was not written`,
      this.lockPath,
      holder,
    );
  }

  /** Removes the lock if it is still this one (an operator may have cleared it and another run taken it since). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease?.();
    try {
      if (parseHolder(readFileSync(this.lockPath, "utf8"))?.token === this.holder.token) unlinkSync(this.lockPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
}

/** The two tickets of the software token (SOFT-DESIGN.md). */
export type TicketPurpose = "fobkit-soft-ticket" | "fobkit-setup-ticket";

export interface Sealed {
  kekId: string;
  blob: Buffer;
}

export interface KeyRingOptions {
  /** Minimum milliseconds between looks at the file (a stat, and a read if the last read is as old). */
  recheckMs?: number;
}

export class KeyRing {
  private keys: Kek[] = [];
  /** Inode, mtime (ns) and size at the last read of the file. */
  private signature = "";
  /** When the file was last read (Date.now()), and the SHA-256 of the bytes whose keys this ring holds. */
  private lastRead = 0;
  private digest = "";
  private lastCheck = 0;
  private readonly recheckMs: number;

  private missing?: string;
  /** A staged key this process seals under because the database refused its sealing key as retired (sealingAfterRetired). */
  private promoted?: string;
  /** The key file's lock while this ring holds it (lock()). */
  private held?: KeyFileLock;

  private constructor(readonly path: string | undefined, keys: Kek[], options: KeyRingOptions) {
    this.keys = keys;
    this.recheckMs = options.recheckMs ?? 1000;
  }

  /** A ring without keys, for work that touches no seed; any seed operation fails with `why`. */
  static none(why: string): KeyRing {
    const ring = new KeyRing(undefined, [], {});
    ring.missing = why;
    return ring;
  }

  private need(): void {
    if (this.keys.length === 0) throw new KeyFileError(this.missing ?? "no key-encryption key loaded");
  }

  /** A ring read from a key file, re-read when the file changes. */
  static fromFile(path: string, options: KeyRingOptions = {}): KeyRing {
    const ring = new KeyRing(resolveKeyFile(path), [], options);
    ring.load();
    ring.lastCheck = Date.now();
    return ring;
  }

  /** A ring held in memory only (tests). */
  static fromKeys(keys: { id: string; key: Buffer }[]): KeyRing {
    return new KeyRing(undefined, keys.map((k) => ({ id: k.id, key: Buffer.from(k.key) })), {});
  }

  /** Creates a key file holding one fresh key (refuses to overwrite). */
  static create(given: string): KeyRing {
    const path = resolveKeyFile(given);
    // Under the lock: two at once both found no file, and the later rename replaced the first's key.
    const lock = KeyFileLock.take(path, newLockHolder("bank init-kek"));
    try {
      // lstat, not exists: a dangling symlink at the path is a name there too, which the rename would replace.
      if (lstatOrUndefined(path)) throw new KeyFileError(`${path} already exists; refusing to overwrite a key file`);
      writeAtomically(path, formatKeyFile([{ id: newKeyId(), key: randomBytes(KEY_BYTES) }]));
    } finally {
      lock.release();
    }
    return KeyRing.fromFile(path);
  }

  /**
   * Takes the key file's lock for a whole command (`bank rotate-key`: the file's change and the re-sealing under
   * it), refused at once with a KeyFileLockedError naming the holder if another run holds it, then re-reads the
   * file (whatever the last look saw: another run may have changed it a moment ago). Every change this ring makes
   * until release() is made under it; a change made without it takes the lock for itself. A ring without a file
   * has nothing to lock.
   */
  lock(holder: LockHolder): KeyFileLock | undefined {
    if (!this.path) return undefined;
    if (this.held) throw new KeyFileError(`the key file ${this.path} is locked by this process already`);
    const lock = KeyFileLock.take(this.path, holder, () => {
      if (this.held === lock) this.held = undefined;
    });
    this.held = lock;
    try {
      this.reload();
    } catch (e) {
      lock.release();
      throw e;
    }
    return lock;
  }

  /** Reads and parses the file whatever its signature and hash say (under the lock, before a change). */
  private reload(): void {
    this.load(true);
    this.lastCheck = Date.now();
  }

  /** Runs a read-change-write of the file under its lock, on the file as it is now. */
  private changing<T>(fn: () => T): T {
    if (!this.path) return fn();
    if (this.held) {
      // A lock cleared from under this run (--clear-lock) refuses the change before it reads, and write() checks again.
      this.held.assertHeld(this.path);
      this.reload();
      return fn();
    }
    const lock = this.lock(newLockHolder("key file change"))!;
    try {
      return fn();
    } finally {
      lock.release();
    }
  }

  /**
   * Reads the file if it may have changed: when its inode, mtime or size differ from the last read, or the last
   * read is recheckMs old or more. The stat alone misses a rewrite: writeAtomically's rename frees the old inode,
   * and ext4 gives the next file created in the directory that inode back (measured: 299 of 300 rewrites), so a
   * rewrite that a server did not see between two others (rotate-key --prune: a key added, then one dropped, the
   * same size again) can leave inode and size as they were; on a filesystem whose timestamps have whole seconds
   * (ext4 with 128-byte inodes, ext3, NFSv3 from such a server, HFS+) within the same second the mtime too (294 of
   * 300 on ext4 -I 128, and ctime with it, so ctime would not help). The bytes' SHA-256 then decides, so a
   * re-read that finds the same bytes parses nothing. Cost: about 25 µs a read (394 bytes), at most one read per
   * recheckMs per process (refresh() is throttled, and a forced look, for a key id this ring lacks, reads only
   * when the stat changed or the last read is that old) plus a stat per forced look, as before; opening a row
   * under a key the ring holds touches no file.
   */
  private load(always = false): void {
    if (!this.path) return;
    let bytes: Buffer;
    let signature: string;
    const now = Date.now();
    try {
      const st = statSync(this.path, { bigint: true });
      signature = `${st.ino}:${st.mtimeNs}:${st.size}`;
      if (!always && signature === this.signature && now - this.lastRead < this.recheckMs) return;
      bytes = readFileSync(this.path);
    } catch (e) {
      throw new KeyFileError(`cannot read key file ${this.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      this.signature = signature;
      this.lastRead = now;
      const digest = createHash("sha256").update(bytes).digest("hex");
      if (!always && digest === this.digest) return;
      this.keys = parseKeyFile(bytes.toString("utf8"), this.path);
      // Only once parsed: a half-edited file is read again at the next look, not taken as seen.
      this.digest = digest;
    } finally {
      bytes.fill(0);
    }
  }

  private refresh(force = false): void {
    if (!this.path) return;
    const now = Date.now();
    if (!force && now - this.lastCheck < this.recheckMs) return;
    // A forced look does not put off the next throttled one, which reads the file if its last read is as old.
    if (!force) this.lastCheck = now;
    try {
      this.load();
    } catch (e) {
      // A half-edited file must not take a serving process down: keep the keys we have.
      if (this.keys.length === 0) throw e;
    }
  }

  /** The key that seals: the first not staged, or a staged one taken over after a refusal (sealingAfterRetired). */
  private sealingKey(): Kek {
    this.need();
    const staged = this.keys.find((k) => k.staged);
    if (this.promoted !== undefined && staged?.id === this.promoted) return staged;
    this.promoted = undefined;
    return this.keys.find((k) => !k.staged)!;
  }

  get currentId(): string {
    this.refresh();
    return this.sealingKey().id;
  }

  get ids(): string[] {
    this.refresh();
    return this.keys.map((k) => k.id);
  }

  /** The staged key's id, if the file has one. */
  get stagedId(): string | undefined {
    this.refresh();
    return this.keys.find((k) => k.staged)?.id;
  }

  /** Every key but the sealing one and a staged one: what a rotation retires. */
  get olderIds(): string[] {
    const current = this.currentId;
    return this.keys.filter((k) => k.id !== current && !k.staged).map((k) => k.id);
  }

  /**
   * The key `id`. A seed or secret sealed under a key this process has not seen yet (another process rotated)
   * forces a re-read of the key file; `reread` false (tickets: anonymous input names the id) only lets the ring's
   * throttled re-check run, so a forged ticket costs no file read beyond it (review R3).
   */
  private find(id: string, reread = true): Kek {
    this.need();
    let k = this.keys.find((x) => x.id === id);
    if (!k) {
      // Tickets: only the ring's throttled re-check (at most one read per recheckMs, as every seal does), so a
      // ticket sealed under a key another process just added still opens after the throttle, and a flood of
      // made-up ids costs at most one file read per recheckMs, however many requests.
      this.refresh(reread);
      k = this.keys.find((x) => x.id === id);
    }
    if (!k) throw new KeyFileError(`seed sealed under key ${id}, which the key file${this.path ? " " + this.path : ""} does not hold`);
    return k;
  }

  seal(serial: string, secret: Buffer): Sealed {
    return this.sealAs("fobkit-seed", serial, secret);
  }

  open(serial: string, sealed: Sealed): Buffer {
    return this.openAs("fobkit-seed", serial, sealed, `sealed seed of ${serial}`);
  }

  /**
   * The registry's own secrets (the seed-index key), sealed like seeds but
   * with their own additional data, so a sealed seed can never be passed off
   * as a registry secret or the other way round.
   */
  sealSecret(name: string, secret: Buffer): Sealed {
    return this.sealAs("fobkit-registry-secret", name, secret);
  }

  openSecret(name: string, sealed: Sealed): Buffer {
    return this.openAs("fobkit-registry-secret", name, sealed, `registry secret ${name}`);
  }

  /**
   * The software token's tickets (soft-tokens.ts): state the bank hands to a
   * client and gets back, sealed under their own purpose so a ticket of one
   * kind can never be passed off as the other, as a seed or as a registry
   * secret; `name` binds it (the customer for issuance, the serial for
   * set-up). Text: "<key id>.<base64url of nonce, ciphertext, tag>".
   */
  sealTicket(purpose: TicketPurpose, name: string, data: Buffer): string {
    const s = this.sealAs(purpose, name, data);
    return `${s.kekId}.${s.blob.toString("base64url")}`;
  }

  /** The ticket's data, or undefined when it is malformed, under an unknown key, or does not authenticate for this purpose and name. */
  openTicket(purpose: TicketPurpose, name: string, ticket: string): Buffer | undefined {
    if (!TICKET_RE.test(ticket)) return undefined;
    const [kekId, blob] = ticket.split(".");
    if (!ID_RE.test(kekId) || blob.length > MAX_TICKET_BLOB) return undefined;
    try {
      // A ticket's key id is the caller's word: an id this ring does not hold is an invalid ticket, no file read
      // (a ticket under a key rotated in meanwhile by another process just means "start again"; it lives minutes).
      return this.openAs(purpose, name, { kekId, blob: Buffer.from(blob, "base64url") }, "ticket", false);
    } catch (e) {
      if (e instanceof KeyFileError) return undefined;
      throw e;
    }
  }

  private sealAs(purpose: string, name: string, secret: Buffer): Sealed {
    this.refresh();
    const k = this.sealingKey();
    const nonce = randomBytes(NONCE_BYTES);
    const c = createCipheriv("aes-256-gcm", k.key, nonce);
    c.setAAD(aad(purpose, name, k.id));
    const ct = Buffer.concat([c.update(secret), c.final()]);
    return { kekId: k.id, blob: Buffer.concat([nonce, ct, c.getAuthTag()]) };
  }

  private openAs(purpose: string, name: string, sealed: Sealed, what: string, reread = true): Buffer {
    const k = this.find(sealed.kekId, reread);
    const blob = sealed.blob;
    if (blob.length < NONCE_BYTES + TAG_BYTES + 1) throw new KeyFileError(`${what} is truncated`);
    const d = createDecipheriv("aes-256-gcm", k.key, blob.subarray(0, NONCE_BYTES));
    d.setAAD(aad(purpose, name, k.id));
    d.setAuthTag(blob.subarray(blob.length - TAG_BYTES));
    try {
      return Buffer.concat([d.update(blob.subarray(NONCE_BYTES, blob.length - TAG_BYTES)), d.final()]);
    } catch {
      throw new KeyFileError(`${what} does not authenticate under key ${k.id}`);
    }
  }

  /**
   * The new sealing key of a rotation, at the top of the key file: the staged key if the file has one (its marker
   * dropped), else a fresh key. Returns its id.
   */
  addNewestKey(): string {
    return this.changing(() => {
      const staged = this.keys.find((k) => k.staged);
      const next: Kek = staged ? { id: staged.id, key: staged.key } : { id: newKeyId(), key: randomBytes(KEY_BYTES) };
      this.write([next, ...this.keys.filter((k) => k !== staged)]);
      return next.id;
    });
  }

  /** Adds a fresh key marked staged (opens, never seals) at the top of the key file; returns its id. */
  stageKey(): string {
    return this.changing(() => {
      const staged = this.keys.find((k) => k.staged);
      if (staged) throw new KeyFileError(`key ${staged.id} is staged already: rotate to it (bank rotate-key), or remove its line from the file`);
      const id = newKeyId();
      this.write([{ id, key: randomBytes(KEY_BYTES), staged: true }, ...this.keys]);
      return id;
    });
  }

  private write(keys: Kek[]): void {
    if (this.path) {
      // Right before the rename (every write runs under this.held, changing()): a lock cleared from under this run
      // stops it there, the temp file removed. A clear that lands between that check and the rename is not caught:
      // without a lock the kernel keeps (Node has no flock), a check and a rename cannot be one step.
      const held = this.held;
      const path = this.path;
      writeAtomically(path, formatKeyFile(keys), held ? () => held.assertHeld(path) : undefined);
      this.reload();
    } else this.keys = keys;
  }

  /**
   * The database refused a seal under `retired`. Re-reads the file; if it still seals under that key and holds a
   * staged key that the database records as the active one (`active`: kek_states), this process seals under the
   * staged key from now on: another server's rotation made it current, and this copy of the file has not been
   * replaced yet. Only then: a rotation to some other key (from a copy without this staged key) must not have rows
   * sealed under a key the rotating server does not hold. Returns whether the sealing key changed.
   */
  sealingAfterRetired(retired: string, active: readonly string[]): boolean {
    this.refresh(true);
    if (this.sealingKey().id !== retired) return true;
    const staged = this.keys.find((k) => k.staged);
    if (!staged || !active.includes(staged.id)) return false;
    this.promoted = staged.id;
    return true;
  }


  /**
   * Drops the named keys from the file, never the newest. Only for keys the
   * database has marked pruned, in the transaction that proved no row uses
   * them (Registry.pruneRetiredKeys); returns the ids actually dropped.
   */
  dropKeys(ids: string[]): string[] {
    return this.changing(() => {
      const current = this.sealingKey().id;
      const droppable = (k: Kek) => k.id !== current && !k.staged && ids.includes(k.id);
      const dropped = this.keys.filter(droppable).map((k) => k.id);
      if (dropped.length) this.write(this.keys.filter((k) => !droppable(k)));
      return dropped;
    });
  }
}

/**
 * The key file's path with every symlink resolved (realpath(3)), once, when a ring is made: every write and the lock
 * derive from it. A key file that is a symlink (/etc/fobkit/bank.kek -> /srv/keys/bank.kek) was replaced by the
 * rename of writeAtomically with a regular file of its own, so servers reading through the target never saw the new
 * key; and the lock is FILE.lock on the path string, so two names of one file took two locks. For a file that does
 * not exist yet (create), its directory is resolved. A path that cannot be resolved is left as given: reading it
 * then fails with its own error.
 */
function resolveKeyFile(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    try {
      return join(realpathSync(dirname(path)), basename(path));
    } catch {
      return path;
    }
  }
}

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function aad(purpose: string, name: string, kekId: string): Buffer {
  return Buffer.from(`${purpose}\0${name}\0${kekId}`, "utf8");
}
