/**
 * The forms a seed could leak in, for the tests that search for it
 * (as test/station/station-pty.test.ts searches a station's output: raw,
 * hex both cases, base32, base64), plus base64 without padding and base64url,
 * the forms JSON bodies and this protocol's wire messages use.
 */

/** RFC 4648 §6 base32, no padding. */
export function base32(buf: Uint8Array): string {
  const A = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const b of buf) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += A[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += A[(value << (5 - bits)) & 31];
  return out;
}

/** The byte strings to look for: raw, hex (lower, upper), base32, base64 (padded or not), base64url. */
export function seedForms(seed: Uint8Array): Buffer[] {
  const b = Buffer.from(seed);
  const b64 = b.toString("base64");
  return [
    b,
    Buffer.from(b.toString("hex")),
    Buffer.from(b.toString("hex").toUpperCase()),
    Buffer.from(base32(b)),
    Buffer.from(base32(b).toLowerCase()),
    Buffer.from(b64),
    Buffer.from(b64.replace(/=+$/, "")),
    Buffer.from(b.toString("base64url")),
  ];
}

/** Which forms of `seed` occur in `haystack` (names, for a failure message that shows nothing of the seed). */
export function seedFound(seed: Uint8Array, haystack: Buffer): string[] {
  const names = ["raw", "hex", "HEX", "base32", "base32-lower", "base64", "base64-nopad", "base64url"];
  return seedForms(seed).flatMap((f, i) => (haystack.includes(f) ? [names[i]] : []));
}
