/**
 * TOTP, RFC 6238 §4.2: HOTP with the counter T = floor((t - T0) / X), T0 = 0
 * (the RFC's default), any period X in 1..2^31-1 seconds, t a UnixTime (see
 * time.ts for why the division is exact on a 32-bit VM up to 2^47 s).
 */
import { i32, idiv, shr } from "../../core/intrinsics.js";
import { hotp } from "./hotp.js";
import { PreparedKey } from "./hmac.js";
import { ERR_PERIOD, ERR_TIME } from "../../core/status.js";
import { divideTime, isTime, UnixTime } from "../../core/time.js";

/** The time step as the counter's two 32-bit words, and the seconds already spent in it. */
export interface TotpStep {
  hi: number;
  lo: number;
  elapsed: number;
}

const Q: number[] = [0, 0];

function isPeriod(period: number): boolean {
  return period >= 1 && period <= 2147483647 && idiv(period, 1) === period;
}

/** floor(t / period) as counter words; ERR_TIME or ERR_PERIOD for bad input. */
export function totpStep(t: UnixTime, period: number): TotpStep | number {
  if (!isTime(t)) return ERR_TIME;
  if (!isPeriod(period)) return ERR_PERIOD;
  const elapsed = divideTime(t.hi, t.lo, period, Q);
  const lo = (Q[0] << 16) | Q[1];
  // Canonical signed word, so every VM reports the same number.
  return { hi: shr(Q[0], 16), lo: i32(lo), elapsed: elapsed };
}

/** The TOTP value at t (0..10^digits-1), or ERR_TIME / ERR_PERIOD / ERR_DIGITS / ERR_PREPARED. */
export function totp(pk: PreparedKey, t: UnixTime, period: number, digits: number): number {
  if (!isTime(t)) return ERR_TIME;
  if (!isPeriod(period)) return ERR_PERIOD;
  divideTime(t.hi, t.lo, period, Q);
  // q_hi < 2^31: its top 15 bits are the counter's high word, the rest join the 16-bit digit.
  return hotp(pk, shr(Q[0], 16), (Q[0] << 16) | Q[1], digits);
}
