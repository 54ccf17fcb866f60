/** A seeded PRNG (mulberry32) so random tests are reproducible: same seed, same run. */
export function prng(seed: number) {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number): number => Math.floor(next() * n),
    bytes: (n: number): number[] => Array.from({ length: n }, () => Math.floor(next() * 256)),
    pick: <T>(a: readonly T[]): T => a[Math.floor(next() * a.length)],
  };
}
