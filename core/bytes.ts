/**
 * Bytes and 32-bit big-endian words: the one copy of the helpers the OTP
 * core (FIPS 180-4 §3.1: words are big-endian), the wire format
 * (protocol/SPEC.md: every multi-byte field is big-endian) and the keyfob's
 * record all use.
 *
 * Word model (core/intrinsics.ts): a word is any integer congruent to it
 * mod 2^32; 32-bit Lua wraps, 64-bit Lua wraps mod 2^64 (same residue), JS
 * reduces at every bitwise operator. Words that leave through readWord are
 * canonicalised to signed int32.
 */
import { i32, idiv, shr } from "./intrinsics.js";

/**
 * A word from two 16-bit halves, so constants >= 2^31 can be written in hex
 * as the standard prints them ("8f1bbcdc" -> word(0x8f1b, 0xbcdc)) without a
 * literal the 32-bit VM would turn into a float.
 */
export function word(hi16: number, lo16: number): number {
  const x = (hi16 << 16) | lo16;
  return i32(x);
}

/** A table of words from a flat list of 16-bit halves (hi, lo, hi, lo, ...). */
export function wordTable(halves: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < halves.length; i += 2) out.push(word(halves[i], halves[i + 1]));
  return out;
}

/** True if every element is an integer 0..255 (a float 2.0 passes; it behaves as 2). */
export function isBytes(a: number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const b = a[i];
    if (!(b >= 0 && b <= 255 && idiv(b, 1) === b)) return false;
  }
  return true;
}

/** Append the word w as 4 big-endian bytes. */
export function pushWord(out: number[], w: number): void {
  out.push(shr(w, 24));
  out.push(shr(w, 16) & 255);
  out.push(shr(w, 8) & 255);
  out.push(w & 255);
}

/** Append words[from..from+n-1] to out as big-endian bytes. */
export function pushWordBytes(out: number[], words: number[], from: number, n: number): void {
  for (let i = from; i < from + n; i++) pushWord(out, words[i]);
}

/** The big-endian word at bytes[at..at+3], as a signed int32. */
export function readWord(bytes: number[], at: number): number {
  const x = (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
  return i32(x);
}

/** A copy of b[at..at+n-1]. */
export function readBytes(b: number[], at: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(b[at + i]);
  return out;
}

/** Append the bytes of a. */
export function pushBytes(out: number[], a: number[]): void {
  for (let i = 0; i < a.length; i++) out.push(a[i]);
}

/** A length byte, then the bytes (a.length <= 255). */
export function pushCounted(out: number[], a: number[]): void {
  out.push(a.length);
  pushBytes(out, a);
}
