/**
 * The station's own TOTP (RFC 6238 §4 over RFC 4226 §5.3), on node:crypto's
 * HMAC: the reference a keyfob's self-test code is checked against.
 *
 * Deliberately not the firmware's OTP core (firmware/otp): the keyfob runs
 * that core, so checking its code with the same core would let any bug in
 * it (a wrong truncation, a counter written in the wrong byte order, a key
 * padded wrongly) pass its own check, and every keyfob of the batch would
 * be locked showing codes the bank cannot verify. node:crypto is OpenSSL's
 * HMAC; what is ours here is a dozen lines written from the RFCs, checked
 * against their vectors (test/station/self-test-independent.test.ts).
 */
import { createHmac } from "node:crypto";
import type { TokenAlgorithmName } from "./factory-record.js";

const HMAC_NAME: Record<TokenAlgorithmName, string> = { SHA1: "sha1", SHA256: "sha256" };

/** RFC 6238 §4.2: T = floor((unix time - T0) / X), with T0 = 0 as fobkit keyfobs use. */
export function referenceTotp(seed: Uint8Array, unixSeconds: number, period: number, digits: number, algorithm: TokenAlgorithmName): string {
  if (!Number.isSafeInteger(unixSeconds) || unixSeconds < 0) throw new RangeError(`time must be whole unix seconds >= 0, got ${unixSeconds}`);
  if (!Number.isInteger(period) || period < 1) throw new RangeError(`period must be a whole number of seconds >= 1, got ${period}`);
  if (!Number.isInteger(digits) || digits < 6 || digits > 8) throw new RangeError(`digits must be 6..8, got ${digits}`);
  const step = Math.floor(unixSeconds / period);
  // RFC 4226 §5.1: the counter is 8 bytes, big-endian; a JS number past 2^32 is written as two halves.
  const counter = Buffer.alloc(8);
  counter.writeUInt32BE(Math.floor(step / 0x1_0000_0000), 0);
  counter.writeUInt32BE(step % 0x1_0000_0000, 4);
  const mac = createHmac(HMAC_NAME[algorithm], seed).update(counter).digest();
  // RFC 4226 §5.4: dynamic truncation.
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(bin % 10 ** digits).padStart(digits, "0");
}
