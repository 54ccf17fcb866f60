/**
 * Time for TOTP on a VM whose integers are 32 bits.
 *
 * Representation: UnixTime { hi, lo } = hi * 2^16 + lo seconds since
 * 1970-01-01T00:00:00Z, with lo in [0, 2^16) and hi in [0, 2^31): every
 * instant up to 2^47 s (about 4.4 million years), far past 2038 and the
 * RFC 6238 row t = 20000000000 (> 2^34).
 *
 * Why base 2^16 (and not 2^24, or day + second-of-day):
 * - The TOTP step floor(t / period) is schoolbook long division with one
 *   16-bit digit: q_hi = hi // p, r = hi % p, then (r * 2^16 + lo) // p. For
 *   p < 2^15 that middle value is below 2^31, so two integer divisions do it
 *   exactly on every VM. With 2^24 digits the same trick only works for
 *   p < 2^7. Periods up to 2^31-1 (allowed, if unusual) take the 16-bit
 *   digit one bit at a time with a remainder that never exceeds p.
 * - The quotient comes out as (q_hi, 16-bit q_lo), which slices straight into
 *   the 8-byte big-endian counter of RFC 4226 §5.2 (q_hi < 2^31).
 * - Comparing and adding seconds are two-digit carries; converting from a
 *   civil date is days * 86400 = (days * 675) * 2^7 plus second-of-day, all
 *   products below 2^28. A day+second form would make the step a division of
 *   days * 86400 + s, which needs the same long division anyway.
 * Float math is never used: NodeMCU's floats are 32-bit, and
 * floor(1700000000 / 60) is already wrong there (FIELD-NOTES.md).
 *
 * Civil conversion uses Howard Hinnant's days_from_civil / civil_from_days
 * (proleptic Gregorian, "chrono-Compatible Low-Level Date Algorithms"), on
 * non-negative values only so `//` and `%` agree on Lua and JS.
 */
import { idiv, shr } from "./intrinsics.js";
import { ERR_CIVIL, ERR_TIME } from "./status.js";

export interface UnixTime {
  hi: number;
  lo: number;
}

/** A UTC civil date-time; weekday 0 = Sunday .. 6 = Saturday (DS3231 stores 1..7). */
export interface CivilTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  weekday: number;
}

/** Unix time has no years before 1970; the DS3231's century bit ends at 2199. */
export const YEAR_MIN = 1970;
export const YEAR_MAX = 2199;
const MAX_WORD = 2147483647;
const SECONDS_PER_DAY = 86400;
/** 86400 = 675 * 2^7: days * 675 stays below 2^28 for any day before year 2199. */
const DAY_ODD_FACTOR = 675;
/** Days from 0000-03-01 to 1970-01-01 in Hinnant's shifted calendar. */
const EPOCH_SHIFT_DAYS = 719468;
const DAYS_PER_ERA = 146097;

function isInt(x: number): boolean {
  return idiv(x, 1) === x;
}

/** True if t is a well-formed UnixTime. */
export function isTime(t: UnixTime): boolean {
  const hi = t.hi;
  const lo = t.lo;
  return hi >= 0 && hi <= MAX_WORD && lo >= 0 && lo <= 65535 && isInt(hi) && isInt(lo);
}

/**
 * floor((hi * 2^16 + lo) / divisor) into q[0] (high part, < 2^31) and q[1]
 * (16-bit low digit); returns the remainder. Needs a valid time and
 * 1 <= divisor <= 2^31-1.
 */
export function divideTime(hi: number, lo: number, divisor: number, q: number[]): number {
  const qHi = idiv(hi, divisor);
  let r = hi % divisor;
  let qLo = 0;
  if (divisor < 32768) {
    // r < 2^15, so r * 2^16 + lo < 2^31.
    const x = (r << 16) | lo;
    qLo = idiv(x, divisor);
    r = x % divisor;
  } else {
    // Restoring division, one bit of lo at a time, MSB first. The test
    // 2r + b >= p is rewritten as r >= p - r - b so nothing exceeds p < 2^31.
    let bits = lo << 16;
    for (let i = 0; i < 16; i++) {
      const b = shr(bits, 31);
      bits = bits << 1;
      const d = divisor - r - b;
      if (r >= d) {
        r = r - d;
        qLo = (qLo << 1) | 1;
      } else {
        r = r + r + b;
        qLo = qLo << 1;
      }
    }
  }
  q[0] = qHi;
  q[1] = qLo;
  return r;
}

/** -1, 0 or 1 as a is before, equal to or after b (both valid). */
export function compareTime(a: UnixTime, b: UnixTime): number {
  if (a.hi !== b.hi) return a.hi < b.hi ? -1 : 1;
  if (a.lo !== b.lo) return a.lo < b.lo ? -1 : 1;
  return 0;
}

/**
 * t + seconds for a signed seconds in -2147483647..2147483647 (the RTC tick,
 * a clock correction). ERR_TIME for a bad t or seconds, or a result before
 * 1970 or past 2^47 s.
 */
export function addSeconds(t: UnixTime, seconds: number): UnixTime | number {
  if (!isTime(t)) return ERR_TIME;
  if (!(seconds >= -MAX_WORD && seconds <= MAX_WORD && isInt(seconds))) return ERR_TIME;
  // Floor division and & 65535 split a negative count too: -1 = -1 * 2^16 + 65535.
  const sHi = idiv(seconds, 65536);
  let lo = t.lo + (seconds & 65535);
  const hi = t.hi + sHi + shr(lo, 16);
  lo = lo & 65535;
  // t.hi >= 0 and sHi >= -2^15, so only the upper end can wrap (negative on 32-bit Lua).
  if (hi < 0 || hi > MAX_WORD) return ERR_TIME;
  return { hi: hi, lo: lo };
}

export function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Days in a month (1..12) of a year. */
export function daysInMonth(year: number, month: number): number {
  if (month === 2 && isLeapYear(year)) return 29;
  return MONTH_DAYS[month - 1];
}

/** Days since 1970-01-01 of a valid civil date (Hinnant days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = idiv(y, 400);
  const yoe = y - era * 400;
  const mp = month > 2 ? month - 3 : month + 9;
  const doy = idiv(153 * mp + 2, 5) + day - 1;
  const doe = yoe * 365 + idiv(yoe, 4) - idiv(yoe, 100) + doy;
  return era * DAYS_PER_ERA + doe - EPOCH_SHIFT_DAYS;
}

/** ERR_CIVIL unless every field is an integer inside its range. */
export function civilStatus(year: number, month: number, day: number, hour: number, minute: number, second: number): number {
  if (!(isInt(year) && isInt(month) && isInt(day) && isInt(hour) && isInt(minute) && isInt(second))) return ERR_CIVIL;
  if (year < YEAR_MIN || year > YEAR_MAX || month < 1 || month > 12) return ERR_CIVIL;
  if (day < 1 || day > daysInMonth(year, month)) return ERR_CIVIL;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return ERR_CIVIL;
  return 0;
}

/** A UTC date-time (years 1970..2199; second 0..59, Unix time has no leap seconds) as UnixTime. */
export function timeFromCivil(year: number, month: number, day: number, hour: number, minute: number, second: number): UnixTime | number {
  const status = civilStatus(year, month, day, hour, minute, second);
  if (status !== 0) return status;
  const m = daysFromCivil(year, month, day) * DAY_ODD_FACTOR;
  // t = m * 2^7 + s: the low 9 bits of m land in lo, the rest in hi; then carry.
  let lo = ((m & 511) << 7) + hour * 3600 + minute * 60 + second;
  const hi = shr(m, 9) + shr(lo, 16);
  lo = lo & 65535;
  return { hi: hi, lo: lo };
}

const Q: number[] = [0, 0];

/** The UTC date-time of t (Hinnant civil_from_days); ERR_TIME for a bad t, ERR_CIVIL past 2199. */
export function civilFromTime(t: UnixTime): CivilTime | number {
  if (!isTime(t)) return ERR_TIME;
  const sod = divideTime(t.hi, t.lo, SECONDS_PER_DAY, Q);
  // Days < 2^47 / 86400 < 2^31, so q_hi < 2^15 and the shift cannot overflow.
  const days = (Q[0] << 16) | Q[1];
  const z = days + EPOCH_SHIFT_DAYS;
  const era = idiv(z, DAYS_PER_ERA);
  const doe = z - era * DAYS_PER_ERA;
  const yoe = idiv(doe - idiv(doe, 1460) + idiv(doe, 36524) - idiv(doe, 146096), 365);
  const doy = doe - (365 * yoe + idiv(yoe, 4) - idiv(yoe, 100));
  const mp = idiv(5 * doy + 2, 153);
  const day = doy - idiv(153 * mp + 2, 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  if (year > YEAR_MAX) return ERR_CIVIL;
  const hour = idiv(sod, 3600);
  const rest = sod - hour * 3600;
  const minute = idiv(rest, 60);
  return {
    year: year,
    month: month,
    day: day,
    hour: hour,
    minute: minute,
    second: rest - minute * 60,
    // 1970-01-01 was a Thursday (4).
    weekday: (days + 4) % 7,
  };
}
