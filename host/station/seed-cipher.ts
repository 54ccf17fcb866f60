/**
 * Seeds at rest in the factory record: AES-256-GCM (NIST SP 800-38D) under a
 * 32-byte key that lives in a key file, never in the database. Each sealed
 * seed is nonce(12) ‖ ciphertext ‖ tag(16), with the token's serial as
 * additional authenticated data, so a sealed seed copied onto another row
 * does not open. The database keeps only a key id (an HMAC of a fixed label
 * under the key) to refuse a wrong key file before anything is written.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";
import { closeSync, fchmodSync, fsyncSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { syncDirectory } from "../sync-directory.js";

export const KEY_BYTES = 32;
/** SP 800-38D §8.2: 96-bit random IVs; far below the 2^32 invocations per key limit here. */
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const AAD_LABEL = "fobkit-factory-seed-v1:";

export class FactoryKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FactoryKeyError";
  }
}

export class SeedCipher {
  readonly keyId: string;
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new FactoryKeyError(`factory key must be ${KEY_BYTES} bytes, got ${key.length}`);
    this.key = Buffer.from(key);
    this.keyId = createHmac("sha256", this.key).update("fobkit factory key id").digest("hex").slice(0, 16);
  }

  seal(seed: Uint8Array, serial: string): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const c = createCipheriv("aes-256-gcm", this.key, nonce);
    c.setAAD(Buffer.from(AAD_LABEL + serial));
    const body = Buffer.concat([c.update(seed), c.final()]);
    return Buffer.concat([nonce, body, c.getAuthTag()]);
  }

  /** The seed, or a FactoryKeyError if the tag does not verify (wrong key, wrong row, tampered). */
  open(sealed: Buffer, serial: string): Buffer {
    if (sealed.length < NONCE_BYTES + TAG_BYTES + 1) throw new FactoryKeyError(`sealed seed of ${serial} is truncated`);
    const d = createDecipheriv("aes-256-gcm", this.key, sealed.subarray(0, NONCE_BYTES));
    d.setAAD(Buffer.from(AAD_LABEL + serial));
    d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      return Buffer.concat([d.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), d.final()]);
    } catch {
      throw new FactoryKeyError(`sealed seed of ${serial} does not verify (wrong key file or altered record)`);
    }
  }

  wipe(): void {
    this.key.fill(0);
  }
}

/** A key file holds the key as 64 hex digits (a trailing newline allowed). */
export function readKeyFile(path: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new FactoryKeyError(`cannot read factory key file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const hex = text.replace(/\r?\n$/, "");
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new FactoryKeyError(`factory key file ${path} must hold ${KEY_BYTES} bytes as 64 hex digits`);
  return Buffer.from(hex, "hex");
}

/**
 * Create a new key file (owner read/write only); refuses to overwrite. The
 * file and its directory entry are fsynced before it returns: the record
 * commits seeds sealed under this key with synchronous=FULL, and a power cut
 * must never leave those rows on disk without the key that opens them.
 */
export function createKeyFile(path: string): Buffer {
  const key = randomBytes(KEY_BYTES);
  let fd: number | undefined;
  let created = false;
  try {
    fd = openSync(path, "wx", 0o600);
    created = true;
    fchmodSync(fd, 0o600);
    writeSync(fd, key.toString("hex") + "\n");
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    syncDirectory(dirname(path));
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    // A key file that may not be on disk seals nothing: the next run makes a new one.
    if (created) rmSync(path, { force: true });
    key.fill(0);
    throw new FactoryKeyError(`cannot create factory key file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return key;
}
