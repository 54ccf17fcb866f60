/**
 * fobkit serial numbers: "FK" + batch (4 digits) + sequence (6 digits) +
 * 2 check digits, e.g. FK00010000427 -> "FK" "0001" "000042" "97".
 *
 * Check digits: ISO/IEC 7064 MOD 97-10 over the 10 digits (the scheme of
 * IBAN, ISO 13616). Chosen over Luhn, which misses the 09<->90 transposition,
 * and over MOD 11-2, whose check character can be "X" (a letter on a numeric
 * label invites misreading). MOD 97-10 detects every single-digit error,
 * every transposition of adjacent digits (and of digits one apart), and all
 * but about 1% of other errors; the cost is a second check digit.
 * 14 characters fit the device's 16-byte serial (protocol MAX_SERIAL).
 */

/** DeviceInfo/Manufacturer of fobkit keyfobs (PSKC, bank registration): its serials carry check digits. */
export const FOBKIT_MANUFACTURER = "fobkit";
export const SERIAL_PREFIX = "FK";
export const MAX_BATCH = 9999;
export const MAX_SEQUENCE = 999999;
const SERIAL_RE = /^FK(\d{4})(\d{6})(\d{2})$/;

export class SerialNumberError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SerialNumberError";
  }
}

/** ISO 7064 MOD 97-10 check digits for a decimal string: 98 - (n * 100 mod 97). */
export function mod97CheckDigits(digits: string): string {
  let r = 0;
  for (const ch of digits + "00") r = (r * 10 + (ch.charCodeAt(0) - 48)) % 97;
  return String(98 - r).padStart(2, "0");
}

/** A decimal string with its check digits appended is valid iff it is 1 mod 97 (ISO 7064 §7). */
function mod97Valid(digitsWithCheck: string): boolean {
  let r = 0;
  for (const ch of digitsWithCheck) r = (r * 10 + (ch.charCodeAt(0) - 48)) % 97;
  return r === 1;
}

export function formatSerial(batch: number, sequence: number): string {
  if (!Number.isInteger(batch) || batch < 1 || batch > MAX_BATCH) throw new RangeError(`batch must be 1..${MAX_BATCH}, got ${batch}`);
  if (!Number.isInteger(sequence) || sequence < 1 || sequence > MAX_SEQUENCE) throw new RangeError(`sequence must be 1..${MAX_SEQUENCE}, got ${sequence}`);
  const body = String(batch).padStart(4, "0") + String(sequence).padStart(6, "0");
  return SERIAL_PREFIX + body + mod97CheckDigits(body);
}

export interface ParsedSerial {
  serial: string;
  batch: number;
  sequence: number;
}

/**
 * Read a serial as a person types it: case, spaces and hyphens are
 * forgiven ("fk-0001-000042-97"); a wrong check is refused.
 */
export function parseSerial(text: string): ParsedSerial {
  const s = text.trim().toUpperCase().replace(/[\s-]/g, "");
  const m = SERIAL_RE.exec(s);
  if (!m) throw new SerialNumberError(`'${text}' is not a fobkit serial (FK + 12 digits, e.g. ${formatSerial(1, 42)})`);
  if (!mod97Valid(m[1] + m[2] + m[3])) throw new SerialNumberError(`'${text}': check digits do not match (mistyped?)`);
  const batch = Number(m[1]);
  const sequence = Number(m[2]);
  if (batch < 1 || sequence < 1) throw new SerialNumberError(`'${text}': batch and sequence start at 1`);
  return { serial: s, batch, sequence };
}

export function isValidSerial(text: string): boolean {
  try {
    parseSerial(text);
    return true;
  } catch {
    return false;
  }
}
