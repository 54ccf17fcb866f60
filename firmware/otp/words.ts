/**
 * 32-bit big-endian words, the unit every hash here works in (FIPS 180-4 §3.1:
 * words are big-endian).
 *
 * Word model (firmware/lib/intrinsics.ts): a word is any integer congruent to
 * it mod 2^32; 32-bit Lua wraps, 64-bit Lua wraps mod 2^64 (same residue),
 * JS reduces at every bitwise operator. Words that leave this core (prepared
 * keys, digests) are canonicalised: signed int32 or bytes.
 */
import { i32, idiv, shr } from "../lib/intrinsics.js";

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

/**
 * The message-schedule scratch shared by the compressions: 80 words for
 * SHA-1, 64 for SHA-256. One allocation at load instead of one per block;
 * the heap is tens of KB.
 */
export const SCHEDULE_WORDS = 80;
export const W: number[] = [];
for (let i = 0; i < SCHEDULE_WORDS; i++) W.push(0);

/** Zero W[from..to-1]. */
export function clearWords(w: number[], from: number, to: number): void {
  for (let i = from; i < to; i++) w[i] = 0;
}

/** True if every element is an integer 0..255 (a float 2.0 passes; it behaves as 2). */
export function isBytes(a: number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const b = a[i];
    if (!(b >= 0 && b <= 255 && idiv(b, 1) === b)) return false;
  }
  return true;
}

/** Append words[from..from+n-1] to out as big-endian bytes. */
export function pushWordBytes(out: number[], words: number[], from: number, n: number): void {
  for (let i = from; i < from + n; i++) {
    const x = words[i];
    out.push(shr(x, 24));
    out.push(shr(x, 16) & 255);
    out.push(shr(x, 8) & 255);
    out.push(x & 255);
  }
}

/** The big-endian word at bytes[at..at+3]. */
export function readWord(bytes: number[], at: number): number {
  const x = (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
  return i32(x);
}
