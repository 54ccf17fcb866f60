/**
 * SHA-256 compression function, FIPS 180-4 §6.2.2 (also RFC 6234).
 */
import { shr } from "../../core/intrinsics.js";
import { wordTable } from "../../core/bytes.js";
import { registerSha256 } from "./hash.js";

/** §5.3.3 initial hash value H(0), as 16-bit halves of each word. */
export const SHA256_IV: number[] = wordTable([
  0x6a09, 0xe667, 0xbb67, 0xae85, 0x3c6e, 0xf372, 0xa54f, 0xf53a,
  0x510e, 0x527f, 0x9b05, 0x688c, 0x1f83, 0xd9ab, 0x5be0, 0xcd19,
]);

/** §4.2.2 constants K_0..K_63, as 16-bit halves of each word. */
const K: number[] = wordTable([
  0x428a, 0x2f98, 0x7137, 0x4491, 0xb5c0, 0xfbcf, 0xe9b5, 0xdba5, 0x3956, 0xc25b, 0x59f1, 0x11f1, 0x923f, 0x82a4, 0xab1c, 0x5ed5,
  0xd807, 0xaa98, 0x1283, 0x5b01, 0x2431, 0x85be, 0x550c, 0x7dc3, 0x72be, 0x5d74, 0x80de, 0xb1fe, 0x9bdc, 0x06a7, 0xc19b, 0xf174,
  0xe49b, 0x69c1, 0xefbe, 0x4786, 0x0fc1, 0x9dc6, 0x240c, 0xa1cc, 0x2de9, 0x2c6f, 0x4a74, 0x84aa, 0x5cb0, 0xa9dc, 0x76f9, 0x88da,
  0x983e, 0x5152, 0xa831, 0xc66d, 0xb003, 0x27c8, 0xbf59, 0x7fc7, 0xc6e0, 0x0bf3, 0xd5a7, 0x9147, 0x06ca, 0x6351, 0x1429, 0x2967,
  0x27b7, 0x0a85, 0x2e1b, 0x2138, 0x4d2c, 0x6dfc, 0x5338, 0x0d13, 0x650a, 0x7354, 0x766a, 0x0abb, 0x81c2, 0xc92e, 0x9272, 0x2c85,
  0xa2bf, 0xe8a1, 0xa81a, 0x664b, 0xc24b, 0x8b70, 0xc76c, 0x51a3, 0xd192, 0xe819, 0xd699, 0x0624, 0xf40e, 0x3585, 0x106a, 0xa070,
  0x19a4, 0xc116, 0x1e37, 0x6c08, 0x2748, 0x774c, 0x34b0, 0xbcb5, 0x391c, 0x0cb3, 0x4ed8, 0xaa4a, 0x5b9c, 0xca4f, 0x682e, 0x6ff3,
  0x748f, 0x82ee, 0x78a5, 0x636f, 0x84c8, 0x7814, 0x8cc7, 0x0208, 0x90be, 0xfffa, 0xa450, 0x6ceb, 0xbef9, 0xa3f7, 0xc671, 0x78f2,
]);

/**
 * Compress one block into state[0..7]. w[0..15] holds the block as big-endian
 * words; w[16..63] is overwritten with the schedule (§6.2.2 step 1).
 * ROTR^n(x) = shr(x, n) | (x << 32-n) (§3.2). The schedule words and the new
 * a and e are reduced with `| 0` so no JS sum ever adds more than seven words.
 */
export function sha256Compress(state: number[], w: number[]): void {
  for (let t = 16; t < 64; t++) {
    const x = w[t - 15];
    const y = w[t - 2];
    // §4.1.2 (4.6) sigma0 and (4.7) sigma1
    const s0 = (shr(x, 7) | (x << 25)) ^ (shr(x, 18) | (x << 14)) ^ shr(x, 3);
    const s1 = (shr(y, 17) | (y << 15)) ^ (shr(y, 19) | (y << 13)) ^ shr(y, 10);
    w[t] = (s1 + w[t - 7] + s0 + w[t - 16]) | 0;
  }
  let a = state[0];
  let b = state[1];
  let c = state[2];
  let d = state[3];
  let e = state[4];
  let f = state[5];
  let g = state[6];
  let h = state[7];
  for (let t = 0; t < 64; t++) {
    // (4.5) SIGMA1, (4.2) Ch as g ^ (e & (f ^ g))
    const t1 = h + ((shr(e, 6) | (e << 26)) ^ (shr(e, 11) | (e << 21)) ^ (shr(e, 25) | (e << 7))) + (g ^ (e & (f ^ g))) + K[t] + w[t];
    // (4.4) SIGMA0, (4.3) Maj
    const t2 = ((shr(a, 2) | (a << 30)) ^ (shr(a, 13) | (a << 19)) ^ (shr(a, 22) | (a << 10))) + ((a & b) | (c & (a | b)));
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0;
  state[5] = (state[5] + f) | 0;
  state[6] = (state[6] + g) | 0;
  state[7] = (state[7] + h) | 0;
}

// Loading this module makes SHA-256 available to hash.ts (see registerSha256 there).
registerSha256(SHA256_IV, sha256Compress);
