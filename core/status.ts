/**
 * Status codes of the OTP core. The subset has no exceptions, so a function
 * that can fail returns a negative status where its result would be (a code
 * is never negative) or a status number in place of an object. Host code
 * turns a status into a message with statusMessage().
 */

export const OK = 0;
/** Algorithm id is not ALG_SHA1 or ALG_SHA256 (3, SHA-512, is not implemented: hash.ts). */
export const ERR_ALG = -1;
/** HOTP/TOTP digits outside 6..8 (RFC 4226 §5.3 asks for at least 6). */
export const ERR_DIGITS = -2;
/** TOTP period outside 1..2147483647 seconds. */
export const ERR_PERIOD = -3;
/** Time outside the representable range, or a malformed UnixTime. */
export const ERR_TIME = -4;
/** An argument that must be bytes holds something other than integers 0..255. */
export const ERR_BYTES = -5;
/** A civil date-time field out of range (year 1970..2199, real calendar day). */
export const ERR_CIVIL = -6;
/** Serialised prepared key of the wrong length or with an unknown algorithm. */
export const ERR_PREPARED = -7;
/** Message or key longer than MAX_MESSAGE_BYTES. */
export const ERR_LENGTH = -8;

/** A message for a status, for host logs and errors (never contains key material). */
export function statusMessage(status: number): string {
  if (status === OK) return "ok";
  if (status === ERR_ALG) return "unknown algorithm (expected 1 = SHA-1 or 2 = SHA-256; the keyfob has no SHA-512)";
  if (status === ERR_DIGITS) return "digits must be 6..8";
  if (status === ERR_PERIOD) return "period must be 1..2147483647 seconds";
  if (status === ERR_TIME) return "time must be 0..2^47-1 seconds as {hi 0..2^31-1, lo 0..65535}";
  if (status === ERR_BYTES) return "expected a byte array (integers 0..255)";
  if (status === ERR_CIVIL) return "date-time out of range (years 1970..2199, valid month/day, 00:00:00..23:59:59)";
  if (status === ERR_PREPARED) return "prepared key bytes malformed (wrong length or algorithm)";
  if (status === ERR_LENGTH) return "input longer than 16 MiB";
  return "unknown status";
}
