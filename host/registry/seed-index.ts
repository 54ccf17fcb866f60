/**
 * The seed index (issue 11, item 6a): no seed may be held by two tokens.
 *
 * A PSKC file's ValueMAC covers only each ciphertext (RFC 6030 §6.1.1), so a
 * Secret can be copied from one KeyPackage into another and the file still
 * imports: a lost keyfob's seed would stay live under a new serial. Seeds
 * are sealed with random nonces, so the database cannot compare them; it
 * keeps instead, per token, HMAC-SHA-256 (RFC 2104) of the seed under an
 * index key, with a unique index on it. Never the seed, and nothing from
 * which the seed follows without the index key.
 *
 * The index key is 32 random bytes made once per registry and stored in
 * registry_secrets sealed under the key-encryption key, like a seed, so
 * every server shares it through the database and the key file stays as it
 * is. A rotation re-seals it with the seeds (and a prune counts it), so its
 * value, and with it every stored index, survives any number of rotations.
 * A key derived from the key file's keys would change with each rotation
 * and force a re-index of every row at the very moment old and new keys
 * overlap.
 */
import { createHmac } from "node:crypto";

/** Name of the index key's row in registry_secrets. */
export const SEED_INDEX_SECRET = "seed_index";
export const INDEX_KEY_BYTES = 32;

/** The index of one seed: HMAC-SHA-256(index key, label ‖ seed). */
export function seedIndex(indexKey: Buffer, secret: Buffer): Buffer {
  return createHmac("sha256", indexKey).update("fobkit-seed-index\0").update(secret).digest();
}
