/**
 * SHA-1 compression function, FIPS 180-4 §6.1.2 (also RFC 3174 §6).
 *
 * SHA-1 is broken for collisions but not as HMAC-SHA-1 (RFC 6194 §3.2), which
 * is what RFC 4226 HOTP mandates; it stays the default of deployed tokens.
 */
import { shr } from "../../core/intrinsics.js";
import { word } from "../../core/bytes.js";

/** §5.3.1 initial hash value H(0). */
export const SHA1_IV: number[] = [word(0x6745, 0x2301), word(0xefcd, 0xab89), word(0x98ba, 0xdcfe), word(0x1032, 0x5476), word(0xc3d2, 0xe1f0)];

/** §4.2.1 constants K_t, one per 20-round stage. */
const K0 = word(0x5a82, 0x7999);
const K1 = word(0x6ed9, 0xeba1);
const K2 = word(0x8f1b, 0xbcdc);
const K3 = word(0xca62, 0xc1d6);

/**
 * Compress one block into state[0..4]. w[0..15] holds the block as big-endian
 * words; w[16..79] is overwritten with the message schedule (§6.1.2 step 1).
 *
 * The rounds are unrolled by five with the working variables renamed instead
 * of shifted (a..e rotate their roles every round), which removes the five
 * moves of every round and four loop tests in five: a code costs two
 * compressions, so this is most of a press (issue 10: <= 5,900 Lua
 * instructions for an 8-digit SHA-1 code). A variable may hold an unreduced
 * sum of five words (< 2^35) between rounds: JS stays exact, the shifts and
 * bitwise operators reduce it where it matters, and 32-bit Lua wraps.
 */
export function sha1Compress(state: number[], w: number[]): void {
  // Two schedule words per pass (w[t+1] needs w[t-2], already there).
  for (let t = 16; t < 80; t += 2) {
    const x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16];
    w[t] = (x << 1) | shr(x, 31);
    const y = w[t - 2] ^ w[t - 7] ^ w[t - 13] ^ w[t - 15];
    w[t + 1] = (y << 1) | shr(y, 31);
  }
  let a = state[0];
  let b = state[1];
  let c = state[2];
  let d = state[3];
  let e = state[4];
  // Four stages of §4.1.1 f_t: Ch, Parity, Maj, Parity (Ch and Maj in their
  // cheaper equivalent forms). Round r: T = ROTL5(a) + f(b, c, d) + e + K + W;
  // e = d; d = c; c = ROTL30(b); b = a; a = T -- written as "the variable
  // that would become a takes T, b's variable is rotated in place".
  for (let t = 0; t < 20; t += 5) {
    e += ((a << 5) | shr(a, 27)) + (d ^ (b & (c ^ d))) + K0 + w[t];
    b = (b << 30) | shr(b, 2);
    d += ((e << 5) | shr(e, 27)) + (c ^ (a & (b ^ c))) + K0 + w[t + 1];
    a = (a << 30) | shr(a, 2);
    c += ((d << 5) | shr(d, 27)) + (b ^ (e & (a ^ b))) + K0 + w[t + 2];
    e = (e << 30) | shr(e, 2);
    b += ((c << 5) | shr(c, 27)) + (a ^ (d & (e ^ a))) + K0 + w[t + 3];
    d = (d << 30) | shr(d, 2);
    a += ((b << 5) | shr(b, 27)) + (e ^ (c & (d ^ e))) + K0 + w[t + 4];
    c = (c << 30) | shr(c, 2);
  }
  for (let t = 20; t < 40; t += 5) {
    e += ((a << 5) | shr(a, 27)) + (b ^ c ^ d) + K1 + w[t];
    b = (b << 30) | shr(b, 2);
    d += ((e << 5) | shr(e, 27)) + (a ^ b ^ c) + K1 + w[t + 1];
    a = (a << 30) | shr(a, 2);
    c += ((d << 5) | shr(d, 27)) + (e ^ a ^ b) + K1 + w[t + 2];
    e = (e << 30) | shr(e, 2);
    b += ((c << 5) | shr(c, 27)) + (d ^ e ^ a) + K1 + w[t + 3];
    d = (d << 30) | shr(d, 2);
    a += ((b << 5) | shr(b, 27)) + (c ^ d ^ e) + K1 + w[t + 4];
    c = (c << 30) | shr(c, 2);
  }
  for (let t = 40; t < 60; t += 5) {
    e += ((a << 5) | shr(a, 27)) + ((b & c) | (d & (b | c))) + K2 + w[t];
    b = (b << 30) | shr(b, 2);
    d += ((e << 5) | shr(e, 27)) + ((a & b) | (c & (a | b))) + K2 + w[t + 1];
    a = (a << 30) | shr(a, 2);
    c += ((d << 5) | shr(d, 27)) + ((e & a) | (b & (e | a))) + K2 + w[t + 2];
    e = (e << 30) | shr(e, 2);
    b += ((c << 5) | shr(c, 27)) + ((d & e) | (a & (d | e))) + K2 + w[t + 3];
    d = (d << 30) | shr(d, 2);
    a += ((b << 5) | shr(b, 27)) + ((c & d) | (e & (c | d))) + K2 + w[t + 4];
    c = (c << 30) | shr(c, 2);
  }
  for (let t = 60; t < 80; t += 5) {
    e += ((a << 5) | shr(a, 27)) + (b ^ c ^ d) + K3 + w[t];
    b = (b << 30) | shr(b, 2);
    d += ((e << 5) | shr(e, 27)) + (a ^ b ^ c) + K3 + w[t + 1];
    a = (a << 30) | shr(a, 2);
    c += ((d << 5) | shr(d, 27)) + (e ^ a ^ b) + K3 + w[t + 2];
    e = (e << 30) | shr(e, 2);
    b += ((c << 5) | shr(c, 27)) + (d ^ e ^ a) + K3 + w[t + 3];
    d = (d << 30) | shr(d, 2);
    a += ((b << 5) | shr(b, 27)) + (c ^ d ^ e) + K3 + w[t + 4];
    c = (c << 30) | shr(c, 2);
  }
  // `| 0` reduces in JS (so the state never grows across blocks); on Lua it
  // is a no-op and wrapping keeps the residue.
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0;
}
