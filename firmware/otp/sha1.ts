/**
 * SHA-1 compression function, FIPS 180-4 §6.1.2 (also RFC 3174 §6).
 *
 * SHA-1 is broken for collisions but not as HMAC-SHA-1 (RFC 6194 §3.2), which
 * is what RFC 4226 HOTP mandates; it stays the default of deployed tokens.
 */
import { shr } from "../lib/intrinsics.js";
import { word } from "./words.js";

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
 * Every sum below adds at most five reduced words, so JS stays exact.
 */
export function sha1Compress(state: number[], w: number[]): void {
  for (let t = 16; t < 80; t++) {
    const x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16];
    w[t] = (x << 1) | shr(x, 31);
  }
  let a = state[0];
  let b = state[1];
  let c = state[2];
  let d = state[3];
  let e = state[4];
  // Four stages of §4.1.1 f_t: Ch, Parity, Maj, Parity (Ch and Maj in their
  // cheaper equivalent forms).
  for (let t = 0; t < 20; t++) {
    const tmp = ((a << 5) | shr(a, 27)) + (d ^ (b & (c ^ d))) + e + K0 + w[t];
    e = d;
    d = c;
    c = (b << 30) | shr(b, 2);
    b = a;
    a = tmp;
  }
  for (let t = 20; t < 40; t++) {
    const tmp = ((a << 5) | shr(a, 27)) + (b ^ c ^ d) + e + K1 + w[t];
    e = d;
    d = c;
    c = (b << 30) | shr(b, 2);
    b = a;
    a = tmp;
  }
  for (let t = 40; t < 60; t++) {
    const tmp = ((a << 5) | shr(a, 27)) + ((b & c) | (d & (b | c))) + e + K2 + w[t];
    e = d;
    d = c;
    c = (b << 30) | shr(b, 2);
    b = a;
    a = tmp;
  }
  for (let t = 60; t < 80; t++) {
    const tmp = ((a << 5) | shr(a, 27)) + (b ^ c ^ d) + e + K3 + w[t];
    e = d;
    d = c;
    c = (b << 30) | shr(b, 2);
    b = a;
    a = tmp;
  }
  // `| 0` reduces in JS (so the state never grows across blocks); on Lua it
  // is a no-op and wrapping keeps the residue.
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0;
}
