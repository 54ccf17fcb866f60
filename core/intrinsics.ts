/**
 * Integer primitives the TS subset cannot spell with operators.
 *
 * These bodies are the Node (tsc) build. In the Lua build the TSTL plugin
 * (tools/tstl-int32-plugin.cjs) replaces every call with an inline Lua
 * expression, so this file never reaches the image. Both sides must agree
 * on every input the subset can produce; test/firmware/intrinsics.test.ts
 * checks that on all three VMs.
 *
 * Word model (see firmware/SUBSET.md): a 32-bit word is any integer
 * congruent to it mod 2^32. +, -, &, |, ^, ~, << keep that congruence on
 * every VM; only shr/idiv/comparisons need the word reduced.
 */

/** Logical right shift of a 32-bit word by a literal 1..31. Result in [0, 2^(32-n)). */
export function shr(x: number, n: number): number {
  return x >>> n;
}

/** Floor division of integers (Lua `//`). b must not be 0. */
export function idiv(a: number, b: number): number {
  return Math.floor(a / b);
}

/** Reduce a word to its canonical signed 32-bit value. */
export function i32(x: number): number {
  return x | 0;
}
