/**
 * SHA-512 compression function, FIPS 180-4 §6.4.2, on 32-bit words only.
 *
 * Each 64-bit word is a pair (hi, lo) of 32-bit words, big-endian: state and
 * schedule are flat arrays [w0hi, w0lo, w1hi, w1lo, ...], which is also the
 * byte order of the block and the digest. ROTR/SHR of a pair are written out
 * per half with literal shift counts (§3.2: ROTR^n for n >= 32 swaps the
 * halves and rotates by n - 32). A 64-bit sum adds the low words as 16-bit
 * halves, so the carry into the high word is exact on every VM without an
 * unsigned comparison: at most five terms, so no partial sum reaches 2^20.
 */
import { shr } from "../lib/intrinsics.js";
import { wordTable } from "./words.js";

/** §5.3.5 initial hash value H(0): each 64-bit word as four 16-bit pieces. */
export const SHA512_IV: number[] = wordTable([
  0x6a09, 0xe667, 0xf3bc, 0xc908, 0xbb67, 0xae85, 0x84ca, 0xa73b,
  0x3c6e, 0xf372, 0xfe94, 0xf82b, 0xa54f, 0xf53a, 0x5f1d, 0x36f1,
  0x510e, 0x527f, 0xade6, 0x82d1, 0x9b05, 0x688c, 0x2b3e, 0x6c1f,
  0x1f83, 0xd9ab, 0xfb41, 0xbd6b, 0x5be0, 0xcd19, 0x137e, 0x2179,
]);

/** §4.2.3 constants K_0..K_79: each 64-bit word as four 16-bit pieces. */
const K: number[] = wordTable([
  0x428a, 0x2f98, 0xd728, 0xae22, 0x7137, 0x4491, 0x23ef, 0x65cd,
  0xb5c0, 0xfbcf, 0xec4d, 0x3b2f, 0xe9b5, 0xdba5, 0x8189, 0xdbbc,
  0x3956, 0xc25b, 0xf348, 0xb538, 0x59f1, 0x11f1, 0xb605, 0xd019,
  0x923f, 0x82a4, 0xaf19, 0x4f9b, 0xab1c, 0x5ed5, 0xda6d, 0x8118,
  0xd807, 0xaa98, 0xa303, 0x0242, 0x1283, 0x5b01, 0x4570, 0x6fbe,
  0x2431, 0x85be, 0x4ee4, 0xb28c, 0x550c, 0x7dc3, 0xd5ff, 0xb4e2,
  0x72be, 0x5d74, 0xf27b, 0x896f, 0x80de, 0xb1fe, 0x3b16, 0x96b1,
  0x9bdc, 0x06a7, 0x25c7, 0x1235, 0xc19b, 0xf174, 0xcf69, 0x2694,
  0xe49b, 0x69c1, 0x9ef1, 0x4ad2, 0xefbe, 0x4786, 0x384f, 0x25e3,
  0x0fc1, 0x9dc6, 0x8b8c, 0xd5b5, 0x240c, 0xa1cc, 0x77ac, 0x9c65,
  0x2de9, 0x2c6f, 0x592b, 0x0275, 0x4a74, 0x84aa, 0x6ea6, 0xe483,
  0x5cb0, 0xa9dc, 0xbd41, 0xfbd4, 0x76f9, 0x88da, 0x8311, 0x53b5,
  0x983e, 0x5152, 0xee66, 0xdfab, 0xa831, 0xc66d, 0x2db4, 0x3210,
  0xb003, 0x27c8, 0x98fb, 0x213f, 0xbf59, 0x7fc7, 0xbeef, 0x0ee4,
  0xc6e0, 0x0bf3, 0x3da8, 0x8fc2, 0xd5a7, 0x9147, 0x930a, 0xa725,
  0x06ca, 0x6351, 0xe003, 0x826f, 0x1429, 0x2967, 0x0a0e, 0x6e70,
  0x27b7, 0x0a85, 0x46d2, 0x2ffc, 0x2e1b, 0x2138, 0x5c26, 0xc926,
  0x4d2c, 0x6dfc, 0x5ac4, 0x2aed, 0x5338, 0x0d13, 0x9d95, 0xb3df,
  0x650a, 0x7354, 0x8baf, 0x63de, 0x766a, 0x0abb, 0x3c77, 0xb2a8,
  0x81c2, 0xc92e, 0x47ed, 0xaee6, 0x9272, 0x2c85, 0x1482, 0x353b,
  0xa2bf, 0xe8a1, 0x4cf1, 0x0364, 0xa81a, 0x664b, 0xbc42, 0x3001,
  0xc24b, 0x8b70, 0xd0f8, 0x9791, 0xc76c, 0x51a3, 0x0654, 0xbe30,
  0xd192, 0xe819, 0xd6ef, 0x5218, 0xd699, 0x0624, 0x5565, 0xa910,
  0xf40e, 0x3585, 0x5771, 0x202a, 0x106a, 0xa070, 0x32bb, 0xd1b8,
  0x19a4, 0xc116, 0xb8d2, 0xd0c8, 0x1e37, 0x6c08, 0x5141, 0xab53,
  0x2748, 0x774c, 0xdf8e, 0xeb99, 0x34b0, 0xbcb5, 0xe19b, 0x48a8,
  0x391c, 0x0cb3, 0xc5c9, 0x5a63, 0x4ed8, 0xaa4a, 0xe341, 0x8acb,
  0x5b9c, 0xca4f, 0x7763, 0xe373, 0x682e, 0x6ff3, 0xd6b2, 0xb8a3,
  0x748f, 0x82ee, 0x5def, 0xb2fc, 0x78a5, 0x636f, 0x4317, 0x2f60,
  0x84c8, 0x7814, 0xa1f0, 0xab72, 0x8cc7, 0x0208, 0x1a64, 0x39ec,
  0x90be, 0xfffa, 0x2363, 0x1e28, 0xa450, 0x6ceb, 0xde82, 0xbde9,
  0xbef9, 0xa3f7, 0xb2c6, 0x7915, 0xc671, 0x78f2, 0xe372, 0x532b,
  0xca27, 0x3ece, 0xea26, 0x619c, 0xd186, 0xb8c7, 0x21c0, 0xc207,
  0xeada, 0x7dd6, 0xcde0, 0xeb1e, 0xf57d, 0x4f7f, 0xee6e, 0xd178,
  0x06f0, 0x67aa, 0x7217, 0x6fba, 0x0a63, 0x7dc5, 0xa2c8, 0x98a6,
  0x113f, 0x9804, 0xbef9, 0x0dae, 0x1b71, 0x0b35, 0x131c, 0x471b,
  0x28db, 0x77f5, 0x2304, 0x7d84, 0x32ca, 0xab7b, 0x40c7, 0x2493,
  0x3c9e, 0xbe0a, 0x15c9, 0xbebc, 0x431d, 0x67c4, 0x9c10, 0x0d4c,
  0x4cc5, 0xd4be, 0xcb3e, 0x42b6, 0x597f, 0x299c, 0xfc65, 0x7e2a,
  0x5fcb, 0x6fab, 0x3ad6, 0xfaec, 0x6c44, 0x198c, 0x4a47, 0x5817,
]);

const M16 = 65535;

/**
 * Compress one 128-byte block into state[0..15]. w[0..31] holds the block as
 * big-endian words; w[32..159] is overwritten with the schedule.
 */
export function sha512Compress(state: number[], w: number[]): void {
  for (let t = 32; t < 160; t += 2) {
    const xh = w[t - 30];
    const xl = w[t - 29];
    const yh = w[t - 4];
    const yl = w[t - 3];
    // (4.12) sigma0 = ROTR1 ^ ROTR8 ^ SHR7; (4.13) sigma1 = ROTR19 ^ ROTR61 ^ SHR6
    const s0h = (shr(xh, 1) | (xl << 31)) ^ (shr(xh, 8) | (xl << 24)) ^ shr(xh, 7);
    const s0l = (shr(xl, 1) | (xh << 31)) ^ (shr(xl, 8) | (xh << 24)) ^ (shr(xl, 7) | (xh << 25));
    const s1h = (shr(yh, 19) | (yl << 13)) ^ (shr(yl, 29) | (yh << 3)) ^ shr(yh, 6);
    const s1l = (shr(yl, 19) | (yh << 13)) ^ (shr(yh, 29) | (yl << 3)) ^ (shr(yl, 6) | (yh << 26));
    const w7l = w[t - 13];
    const w16l = w[t - 31];
    const l16 = (s1l & M16) + (w7l & M16) + (s0l & M16) + (w16l & M16);
    const h16 = shr(s1l, 16) + shr(w7l, 16) + shr(s0l, 16) + shr(w16l, 16) + shr(l16, 16);
    w[t] = (s1h + w[t - 14] + s0h + w[t - 32] + shr(h16, 16)) | 0;
    w[t + 1] = (h16 << 16) | (l16 & M16);
  }
  let ah = state[0];
  let al = state[1];
  let bh = state[2];
  let bl = state[3];
  let ch = state[4];
  let cl = state[5];
  let dh = state[6];
  let dl = state[7];
  let eh = state[8];
  let el = state[9];
  let fh = state[10];
  let fl = state[11];
  let gh = state[12];
  let gl = state[13];
  let hh = state[14];
  let hl = state[15];
  for (let t = 0; t < 160; t += 2) {
    // (4.11) SIGMA1(e) = ROTR14 ^ ROTR18 ^ ROTR41
    const s1h = (shr(eh, 14) | (el << 18)) ^ (shr(eh, 18) | (el << 14)) ^ (shr(el, 9) | (eh << 23));
    const s1l = (shr(el, 14) | (eh << 18)) ^ (shr(el, 18) | (eh << 14)) ^ (shr(eh, 9) | (el << 23));
    // (4.8) Ch
    const chh = gh ^ (eh & (fh ^ gh));
    const chl = gl ^ (el & (fl ^ gl));
    const kl = K[t + 1];
    const wl = w[t + 1];
    // T1 = h + SIGMA1(e) + Ch(e,f,g) + K_t + W_t
    let l16 = (hl & M16) + (s1l & M16) + (chl & M16) + (kl & M16) + (wl & M16);
    let h16 = shr(hl, 16) + shr(s1l, 16) + shr(chl, 16) + shr(kl, 16) + shr(wl, 16) + shr(l16, 16);
    const t1l = (h16 << 16) | (l16 & M16);
    const t1h = (hh + s1h + chh + K[t] + w[t] + shr(h16, 16)) | 0;
    // (4.10) SIGMA0(a) = ROTR28 ^ ROTR34 ^ ROTR39, (4.9) Maj
    const s0h = (shr(ah, 28) | (al << 4)) ^ (shr(al, 2) | (ah << 30)) ^ (shr(al, 7) | (ah << 25));
    const s0l = (shr(al, 28) | (ah << 4)) ^ (shr(ah, 2) | (al << 30)) ^ (shr(ah, 7) | (al << 25));
    const mjh = (ah & bh) | (ch & (ah | bh));
    const mjl = (al & bl) | (cl & (al | bl));
    hh = gh;
    hl = gl;
    gh = fh;
    gl = fl;
    fh = eh;
    fl = el;
    // e = d + T1
    l16 = (dl & M16) + (t1l & M16);
    h16 = shr(dl, 16) + shr(t1l, 16) + shr(l16, 16);
    eh = (dh + t1h + shr(h16, 16)) | 0;
    el = (h16 << 16) | (l16 & M16);
    dh = ch;
    dl = cl;
    ch = bh;
    cl = bl;
    bh = ah;
    bl = al;
    // a = T1 + SIGMA0(a) + Maj(a,b,c)
    l16 = (t1l & M16) + (s0l & M16) + (mjl & M16);
    h16 = shr(t1l, 16) + shr(s0l, 16) + shr(mjl, 16) + shr(l16, 16);
    ah = (t1h + s0h + mjh + shr(h16, 16)) | 0;
    al = (h16 << 16) | (l16 & M16);
  }
  add64(state, 0, ah, al);
  add64(state, 2, bh, bl);
  add64(state, 4, ch, cl);
  add64(state, 6, dh, dl);
  add64(state, 8, eh, el);
  add64(state, 10, fh, fl);
  add64(state, 12, gh, gl);
  add64(state, 14, hh, hl);
}

/** state[i..i+1] += (hi, lo) mod 2^64. */
function add64(state: number[], i: number, hi: number, lo: number): void {
  const sl = state[i + 1];
  const l16 = (sl & M16) + (lo & M16);
  const h16 = shr(sl, 16) + shr(lo, 16) + shr(l16, 16);
  state[i] = (state[i] + hi + shr(h16, 16)) | 0;
  state[i + 1] = (h16 << 16) | (l16 & M16);
}
