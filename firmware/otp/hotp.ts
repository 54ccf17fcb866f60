/**
 * HOTP, RFC 4226: HMAC of the 8-byte big-endian counter (§5.2), dynamic
 * truncation (§5.3), code = Snum mod 10^Digit.
 *
 * The hot path never builds byte arrays: the counter goes straight into the
 * block words, the inner digest straight from the state into the outer block,
 * and truncation reads the outer state's words. With a prepared key that is
 * exactly two compressions and no allocation.
 */
import { idiv, shr } from "../../core/intrinsics.js";
import { blockBytes, clearWords, compress, stateWords, W } from "./hash.js";
import { isPreparedKey, PreparedKey } from "./hmac.js";
import { ERR_DIGITS, ERR_PREPARED } from "../../core/status.js";

export const MIN_DIGITS = 6;
export const MAX_DIGITS = 8;

/** 10^Digit for §5.3 step 3. */
const POW10 = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000];
const DIGIT_TEXT = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/** Inner and outer working states, reused by every code. */
const INNER: number[] = [];
const OUTER: number[] = [];
for (let i = 0; i < 16; i++) {
  INNER.push(0);
  OUTER.push(0);
}

function isDigits(digits: number): boolean {
  return digits >= MIN_DIGITS && digits <= MAX_DIGITS && idiv(digits, 1) === digits;
}

/**
 * The HOTP value for the counter whose high and low 32-bit words are given
 * (any integers congruent to them mod 2^32): 0..10^digits-1, or ERR_DIGITS /
 * ERR_PREPARED.
 */
export function hotp(pk: PreparedKey, counterHi: number, counterLo: number, digits: number): number {
  if (!isDigits(digits)) return ERR_DIGITS;
  if (!isPreparedKey(pk)) return ERR_PREPARED;
  const alg = pk.alg;
  const n = stateWords(alg);
  const block = blockBytes(alg);
  const blockWords = shr(block, 2);
  const inner = pk.inner;
  const outer = pk.outer;
  for (let i = 0; i < n; i++) {
    INNER[i] = inner[i];
    OUTER[i] = outer[i];
  }
  // Inner block: counter, 0x80 marker, zeros, bit length of ipad-block + 8 bytes.
  clearWords(W, 0, blockWords);
  W[0] = counterHi;
  W[1] = counterLo;
  W[2] = 1 << 31;
  W[blockWords - 1] = (block + 8) << 3;
  compress(alg, INNER, W);
  // Outer block: inner digest, marker, zeros, bit length of opad-block + digest.
  clearWords(W, 0, blockWords);
  for (let i = 0; i < n; i++) W[i] = INNER[i];
  W[n] = 1 << 31;
  W[blockWords - 1] = (block + (n << 2)) << 3;
  compress(alg, OUTER, W);
  // §5.3 DT: offset = low 4 bits of the last digest byte; 31 bits from there.
  const offset = OUTER[n - 1] & 15;
  const k = shr(offset, 2);
  const s = offset & 3;
  const hi = OUTER[k];
  let p = hi;
  if (s === 1) p = (hi << 8) | shr(OUTER[k + 1], 24);
  else if (s === 2) p = (hi << 16) | shr(OUTER[k + 1], 16);
  else if (s === 3) p = (hi << 24) | shr(OUTER[k + 1], 8);
  // offset <= 15 so k + 1 <= 4: inside every digest (5, 8 or 16 words).
  const snum = p & 2147483647;
  return snum % POW10[digits];
}

/** The code as a zero-padded decimal string of `digits` characters; "" for a code or digits out of range. */
export function formatCode(code: number, digits: number): string {
  if (!isDigits(digits)) return "";
  if (!(code >= 0 && code < POW10[digits] && idiv(code, 1) === code)) return "";
  let text = "";
  let rest = code;
  for (let i = 0; i < digits; i++) {
    text = DIGIT_TEXT[rest % 10] + text;
    rest = idiv(rest, 10);
  }
  return text;
}
