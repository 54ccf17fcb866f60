/**
 * HOTP (RFC 4226 §5.3) and its time-step counter (RFC 6238 §4.2) with
 * node:crypto, for the verifier. The step is a JS number (< 2^53): the
 * 8-byte big-endian counter is written as two 32-bit halves.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export type Algorithm = "SHA1" | "SHA256" | "SHA512";

const HMAC_NAME: Record<Algorithm, string> = { SHA1: "sha1", SHA256: "sha256", SHA512: "sha512" };
const POW10 = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000, 10_000_000_000];

const counter = Buffer.alloc(8);

export function hotp(algorithm: Algorithm, secret: Buffer, step: number, digits: number): string {
  counter.writeUInt32BE(Math.floor(step / 0x1_0000_0000), 0);
  counter.writeUInt32BE(step >>> 0, 4);
  const mac = createHmac(HMAC_NAME[algorithm], secret).update(counter).digest();
  // RFC 4226 §5.4 dynamic truncation.
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(bin % POW10[digits]).padStart(digits, "0");
}

/** RFC 6238 §4.2: T = floor((unix time - T0) / X). */
export function stepAt(unixMs: number, t0: number, period: number): number {
  return Math.floor((Math.floor(unixMs / 1000) - t0) / period);
}

/** Constant-time comparison of two codes of equal length. */
export function sameCode(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
