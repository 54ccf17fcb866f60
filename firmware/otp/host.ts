/**
 * Conveniences for the Node host (station, registry, CLI), which holds the
 * seed and Unix time as a JS number. Part of the subset like the rest (same
 * source, same results), but written for the tsc build: on a 32-bit-integer
 * Lua a number >= 2^31 is already a float, so these take such inputs only on
 * the host; the device works with prepared keys and UnixTime throughout.
 */
import { idiv } from "../../core/intrinsics.js";
import { formatCode, hotp } from "./hotp.js";
import { prepareKey } from "./hmac.js";
import { ERR_COUNTER, ERR_TIME } from "../../core/status.js";
import { UnixTime } from "../../core/time.js";
import { totp } from "./totp.js";

/** A code and its display text. */
export interface OtpCode {
  code: number;
  text: string;
}

/**
 * Split integer Unix seconds 0..2^47-1 into a UnixTime; ERR_TIME otherwise.
 * Only non-negative values reach idiv and %, where Lua and JS agree.
 */
export function timeFromUnixSeconds(seconds: number): UnixTime | number {
  if (!(seconds >= 0 && idiv(seconds, 1) === seconds)) return ERR_TIME;
  const hi = idiv(seconds, 65536);
  if (hi > 2147483647) return ERR_TIME;
  return { hi: hi, lo: seconds % 65536 };
}

/** Unix seconds of a UnixTime. Host only: the product needs more than 32 bits. */
export function unixSecondsFromTime(t: UnixTime): number {
  return t.hi * 65536 + t.lo;
}

/** TOTP from a raw seed (bytes) at Unix seconds; a status number for bad input. */
export function totpAt(seed: number[], unixSeconds: number, period: number, digits: number, alg: number): OtpCode | number {
  const t = timeFromUnixSeconds(unixSeconds);
  if (typeof t === "number") return t;
  return totpAtTime(seed, t, period, digits, alg);
}

/** TOTP from a raw seed at a UnixTime, through the same prepared-key path the device uses. */
export function totpAtTime(seed: number[], t: UnixTime, period: number, digits: number, alg: number): OtpCode | number {
  const pk = prepareKey(seed, alg);
  if (typeof pk === "number") return pk;
  const code = totp(pk, t, period, digits);
  if (code < 0) return code;
  return { code: code, text: formatCode(code, digits) };
}

/** HOTP from a raw seed at an integer counter 0..2^53-1; a status number for bad input. */
export function hotpAt(seed: number[], counter: number, digits: number, alg: number): OtpCode | number {
  if (!(counter >= 0 && idiv(counter, 1) === counter)) return ERR_COUNTER;
  const pk = prepareKey(seed, alg);
  if (typeof pk === "number") return pk;
  // Two base-2^16 digit steps instead of one division by 2^32 (not a 32-bit literal).
  const upper = idiv(counter, 65536);
  const hi = idiv(upper, 65536);
  const lo = ((upper % 65536) << 16) | (counter % 65536);
  const code = hotp(pk, hi, lo, digits);
  if (code < 0) return code;
  return { code: code, text: formatCode(code, digits) };
}
