/**
 * OTP core: SHA-1/SHA-256 (FIPS 180-4), HMAC with prepared keys (RFC 2104),
 * HOTP (RFC 4226), TOTP (RFC 6238) with a 32-bit-safe time representation.
 * The image exposes this as `otp`; the host imports the tsc build of it.
 */
export { ALG_SHA1, ALG_SHA256 } from "../../core/algorithms.js";
export { MAX_MESSAGE_BYTES, isAlg } from "./hash.js";
// Registers SHA-256 with hash.ts: the host and the test library always have it.
import "./sha256.js";
export { digest, hmac, hmacPrepared, isPreparedKey, parsePreparedKey, prepareKey, serializePreparedKey } from "./hmac.js";
export type { PreparedKey } from "./hmac.js";
export { formatCode, hotp, MAX_DIGITS, MIN_DIGITS } from "./hotp.js";
export { totp, totpStep } from "./totp.js";
export type { TotpStep } from "./totp.js";
export {
  addSeconds,
  civilFromTime,
  civilStatus,
  compareTime,
  daysInMonth,
  isLeapYear,
  isTime,
  timeFromCivil,
  YEAR_MAX,
  YEAR_MIN,
} from "../../core/time.js";
export type { CivilTime, UnixTime } from "../../core/time.js";
export {
  ERR_ALG,
  ERR_BYTES,
  ERR_CIVIL,
  ERR_DIGITS,
  ERR_LENGTH,
  ERR_PERIOD,
  ERR_PREPARED,
  ERR_TIME,
  OK,
  statusMessage,
} from "../../core/status.js";
