/**
 * The hash functions behind HMAC, by algorithm id: message padding (FIPS
 * 180-4 §5.1), block loading (§5.2) and dispatch to the compressions.
 *
 * Hashing can start from any chaining state after a whole number of blocks
 * (hashFrom): that is what lets HMAC keep the states after K^ipad and K^opad
 * instead of the key (RFC 2104 §4, "precomputations").
 */
import { ALG_SHA1, ALG_SHA256 } from "../../core/algorithms.js";
import { shr } from "../../core/intrinsics.js";
import { sha1Compress, SHA1_IV } from "./sha1.js";
import { pushWordBytes } from "../../core/bytes.js";

/**
 * The message-schedule scratch shared by the compressions: 80 words for
 * SHA-1 (§6.1.2), 64 for SHA-256 (§6.2.2). One allocation at load instead
 * of one per block; the heap is tens of KB.
 */
export const SCHEDULE_WORDS = 80;
export const W: number[] = [];
for (let i = 0; i < SCHEDULE_WORDS; i++) W.push(0);

/** Zero w[from..to-1]. */
export function clearWords(w: number[], from: number, to: number): void {
  for (let i = from; i < to; i++) w[i] = 0;
}

/**
 * Longest message or key hashed: keeps the bit length below 2^31 (one
 * positive word) on every VM. OTP inputs are tens of bytes.
 */
export const MAX_MESSAGE_BYTES = 1 << 24;

/**
 * Algorithm ids are core/algorithms.ts's, the values stored on the device
 * and sent by the host. The protocol also names 3 = SHA-512; the keyfob does
 * not implement it: no batch can use it (the station and its factory record
 * take SHA1 or SHA256 only), and it cost the image 8 KB of code and 7.6 KB
 * of resident heap (bench/results/memory.json, issue 10). isAlg(3) is false,
 * so prepareKey answers ERR_ALG and WRITE_SEED gets STATUS_BAD_ARGUMENT.
 */
export function isAlg(alg: number): boolean {
  return alg === ALG_SHA1 || alg === ALG_SHA256;
}

/** A hash's H(0) and compression function (FIPS 180-4 §5.3, §6). */
interface HashImpl {
  iv: number[];
  compress: (this: void, state: number[], w: number[]) => void;
}

/**
 * SHA-256, set by sha256.ts when that module loads (registerSha256). The
 * host always has it (otp/index.ts imports sha256.ts); the keyfob's core
 * does not import it, and loads it only for a record that names SHA-256
 * (firmware/app/device.ts; its own file fobkit-sha256.lua, issue 10 item 5).
 */
let sha256Impl: HashImpl | undefined = undefined;

export function registerSha256(iv: number[], compress: (this: void, state: number[], w: number[]) => void): void {
  sha256Impl = { iv: iv, compress: compress };
}

/** Whether alg's implementation is loaded (SHA-1 always is). */
export function hashLoaded(alg: number): boolean {
  return alg === ALG_SHA1 || (alg === ALG_SHA256 && sha256Impl !== undefined);
}

/** Callers check hashLoaded first (hmac.ts prepareKey, isPreparedKey, digest); unloaded, this raises rather than give a wrong digest. */
function sha256(): HashImpl {
  return sha256Impl as HashImpl;
}

/** Block size in bytes (§1, Figure 1): 64 for both. */
export function blockBytes(_alg: number): number {
  return 64;
}

/** Words of the chaining state, which is also the digest (no truncated variants here). */
export function stateWords(alg: number): number {
  if (alg === ALG_SHA1) return 5;
  return 8;
}

/** A fresh copy of the initial hash value H(0). */
export function initState(alg: number): number[] {
  const iv = alg === ALG_SHA1 ? SHA1_IV : sha256().iv;
  const out: number[] = [];
  for (let i = 0; i < iv.length; i++) out.push(iv[i]);
  return out;
}

/** Compress the block in w[0..blockBytes/4-1] into state. */
export function compress(alg: number, state: number[], w: number[]): void {
  if (alg === ALG_SHA1) sha1Compress(state, w);
  else sha256().compress(state, w);
}

/**
 * Hash msg starting from `state`, which already absorbed `prefixBytes` bytes
 * (a multiple of the block size), and finish with the padding of
 * §5.1.1/§5.1.2. The digest is left in state. msg.length must be at most
 * MAX_MESSAGE_BYTES (callers check).
 */
export function hashFrom(alg: number, state: number[], msg: number[], prefixBytes: number): void {
  const block = blockBytes(alg);
  const blockWords = shr(block, 2);
  const n = msg.length;
  let pos = 0;
  while (n - pos >= block) {
    for (let j = 0; j < blockWords; j++) {
      const at = pos + (j << 2);
      W[j] = (msg[at] << 24) | (msg[at + 1] << 16) | (msg[at + 2] << 8) | msg[at + 3];
    }
    compress(alg, state, W);
    pos += block;
  }
  // Tail, the 0x80 marker, zeros, then the bit length in the last 64 bits;
  // the length fits one word because n <= MAX_MESSAGE_BYTES.
  clearWords(W, 0, blockWords);
  const r = n - pos;
  for (let i = 0; i < r; i++) W[shr(i, 2)] |= msg[pos + i] << (24 - ((i & 3) << 3));
  W[shr(r, 2)] |= 128 << (24 - ((r & 3) << 3));
  if (r + 1 > block - 8) {
    compress(alg, state, W);
    clearWords(W, 0, blockWords);
  }
  W[blockWords - 1] = (prefixBytes + n) << 3;
  compress(alg, state, W);
}

/** The digest bytes of a finished state. */
export function stateBytes(alg: number, state: number[]): number[] {
  const out: number[] = [];
  pushWordBytes(out, state, 0, stateWords(alg));
  return out;
}
