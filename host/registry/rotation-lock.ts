/**
 * The database's rotation lease: at most one `fobkit bank rotate-key` at a time on a database, whichever server and
 * key file it runs from. The key file's own lock (key-ring.ts, KeyFileLock) serialises runs on one file; servers with
 * their own copies of the file share only the database, and two rotations at once there each made their own new key
 * active and re-sealed rows under it, so each server's file could open only part of the rows (and each rotation
 * failed on the other's rows). The lease is one row (migration 16), taken by an INSERT that only one run can make
 * (the primary key), released by deleting it. Taking it never waits: a second run is refused at once, naming the
 * holder. A run that dies leaves the row; `bank rotate-key --clear-lock TOKEN` removes it (clearRotationLease).
 */
import type { Database } from "./database.js";
import { describeHolder, holderIsGone, holderIsHere, type LockHolder } from "./key-ring.js";
import { RegistryError } from "./types.js";

export class RotationLease {
  private released = false;
  constructor(
    private readonly db: Database,
    readonly holder: LockHolder,
  ) {}

  /**
   * Refuses (rotation_lock_lost) unless the lease row is still this run's. `--clear-lock` deletes a lease on the
   * operator's word when its holder runs on another host or container; a run whose lease was cleared so must not go
   * on retiring, re-sealing or pruning while the run that took the lease since changes the keys under it.
   */
  async assertHeld(): Promise<void> {
    const row = this.released ? undefined : await this.db.get<{ token: string }>("SELECT token FROM key_rotation_lease WHERE id = 1");
    if (row?.token === this.holder.token) return;
    const other = row ? await rotationLeaseHolder(this.db) : undefined;
    const now = other ? `it is held now by ${describeHolder(other)}` : row ? "another run holds it now" : "no run holds it now";
    throw new RegistryError(
      "rotation_lock_lost",
      `the database ${this.db.description}'s rotation lease, taken by this run (${describeHolder(this.holder)}), was cleared (fobkit bank rotate-key --clear-lock) while it ran, and ${now}: stopped before changing more; run fobkit bank rotate-key --no-new-key once no other rotation runs`,
      "refused",
    );
  }

  /** Deletes the lease if it is still this run's (an operator may have cleared it and another run taken it since). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.db.run("DELETE FROM key_rotation_lease WHERE id = 1 AND token = ?", [this.holder.token]);
  }
}

function parse(text: string): LockHolder | undefined {
  try {
    return JSON.parse(text) as LockHolder;
  } catch {
    return undefined;
  }
}

/** The holder of the database's lease, if any. */
export async function rotationLeaseHolder(db: Database): Promise<LockHolder | undefined> {
  const row = await db.get<{ holder: string }>("SELECT holder FROM key_rotation_lease WHERE id = 1");
  return row ? parse(row.holder) : undefined;
}

/** Takes the lease for `holder`, or refuses (rotation_in_progress) naming the run that holds it. */
export async function takeRotationLease(db: Database, holder: LockHolder, keyFile: string | undefined): Promise<RotationLease> {
  const n = await db.run("INSERT INTO key_rotation_lease (id, token, holder, taken_at) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO NOTHING", [
    holder.token,
    JSON.stringify({ ...holder, ...(keyFile ? { keyFile } : {}) }),
    Date.now(),
  ]);
  if (n === 1) return new RotationLease(db, holder);
  const other = await rotationLeaseHolder(db);
  if (!other) {
    // Released between our INSERT and the SELECT: refused all the same (never wait, never retry in a loop).
    throw new RegistryError("rotation_in_progress", `the database ${db.description} was locked for a key rotation a moment ago; run this again`, "refused");
  }
  const where = (other as { keyFile?: string }).keyFile ? ` with key file ${(other as { keyFile?: string }).keyFile}` : "";
  const gone = holderIsGone(other)
    ? `; pid ${other.pid} no longer runs on this host, so that run died and left the lease: clear it with fobkit bank rotate-key --clear-lock ${other.token}`
    : `; run this again once it has finished (if that process is gone, clear its lease with fobkit bank rotate-key --clear-lock ${other.token})`;
  throw new RegistryError(
    "rotation_in_progress",
    `the database ${db.description} is locked by ${describeHolder(other)}${where}: a key rotation is running from another server or key file${gone}`,
    "refused",
    { holder: { pid: other.pid, host: other.host, since: other.since, command: other.command } },
  );
}

/**
 * Deletes the lease if it is the one `token` names. Refused (nothing deleted) when its holder runs on this host;
 * a holder this process cannot judge (another host or container) is taken on the operator's word to be gone. Returns the holder removed, if any.
 */
export async function clearRotationLease(db: Database, token: string): Promise<LockHolder | undefined> {
  const holder = await rotationLeaseHolder(db);
  if (!holder || holder.token !== token) return undefined;
  if (holderIsHere(holder) && !holderIsGone(holder)) {
    throw new RegistryError("rotation_in_progress", `the database's rotation lease is held by ${describeHolder(holder)}, which is running: not cleared`, "refused");
  }
  const n = await db.run("DELETE FROM key_rotation_lease WHERE id = 1 AND token = ?", [token]);
  return n ? holder : undefined;
}
