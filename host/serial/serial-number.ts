/**
 * fobkit serial numbers, shared by the factory (which issues them) and the
 * bank (which reads them as staff type them): host/station and host/registry
 * both depend on this folder, neither on the other.
 *
 * Format: "FK" + line (2 digits) + batch (4) + sequence (6) + 2 check digits,
 * e.g. FK07 0001 0000 4297 -> line 07, batch 0001, sequence 000042, check 97.
 *
 * Why a line number: serials were unique only within one factory record, so
 * two records (two production lines) both issued FK + batch 1 + sequence 1
 * with different seeds, and the bank refused the second keyfob, already
 * labelled and locked. The line number makes serials unique by design: a
 * record belongs to one line for life (fixed when it is created), and the
 * line is in every serial it issues. Chosen over ranges the bank allocates
 * because a factory works offline (the PSKC hand-over exists for that) and
 * serves many banks: the serial space is the vendor's, not one bank's. Chosen
 * over a longer factory id because two digits keep the serial at 16
 * characters, four groups of four as IBAN's paper format prints them, and
 * within the device's 16-byte serial (protocol MAX_SERIAL).
 *
 * Check digits: ISO/IEC 7064 MOD 97-10 over all 12 digits (the scheme of
 * IBAN, ISO 13616). Chosen over Luhn, which misses the 09<->90
 * transposition, and over MOD 11-2, whose check character can be "X" (a
 * letter on a numeric label invites misreading). MOD 97-10 detects every
 * single-digit error, every transposition of adjacent digits (and of digits
 * one apart), and all but about 1% of other errors.
 *
 * Legacy serials: records made before line numbers issued "FK" + batch (4) +
 * sequence (6) + check (2), 14 characters. They are still read (line null):
 * keyfobs carrying them are in the field and in the bank. Their length
 * differs, so no legacy serial equals a new one.
 */

/** DeviceInfo/Manufacturer of fobkit keyfobs (PSKC, bank registration): its serials carry check digits. */
export const FOBKIT_MANUFACTURER = "fobkit";
export const SERIAL_PREFIX = "FK";
/** Production lines 01..99 (00 is never issued, so a line-less serial cannot be mistaken for line 0). */
export const MAX_LINE = 99;
export const MAX_BATCH = 9999;
export const MAX_SEQUENCE = 999999;
const SERIAL_RE = /^FK(\d{2})(\d{4})(\d{6})(\d{2})$/;
const LEGACY_SERIAL_RE = /^FK(\d{4})(\d{6})(\d{2})$/;

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

function checkRange(what: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new RangeError(`${what} must be 1..${max}, got ${value}`);
}

/** The serial of a line's batch's sequence number: FK + LL + BBBB + SSSSSS + check. */
export function formatSerial(line: number, batch: number, sequence: number): string {
  checkRange("line", line, MAX_LINE);
  checkRange("batch", batch, MAX_BATCH);
  checkRange("sequence", sequence, MAX_SEQUENCE);
  const body = String(line).padStart(2, "0") + String(batch).padStart(4, "0") + String(sequence).padStart(6, "0");
  return SERIAL_PREFIX + body + mod97CheckDigits(body);
}

/** A serial in the format before line numbers (FK + BBBB + SSSSSS + check): only to read, and to test reading, old records. */
export function formatLegacySerial(batch: number, sequence: number): string {
  checkRange("batch", batch, MAX_BATCH);
  checkRange("sequence", sequence, MAX_SEQUENCE);
  const body = String(batch).padStart(4, "0") + String(sequence).padStart(6, "0");
  return SERIAL_PREFIX + body + mod97CheckDigits(body);
}

export interface ParsedSerial {
  serial: string;
  /** The production line; null for a legacy serial (issued before line numbers). */
  line: number | null;
  batch: number;
  sequence: number;
}

function normalise(text: string): string {
  return text.trim().toUpperCase().replace(/[\s-]/g, "");
}

/**
 * Read a serial as a person types it: case, spaces and hyphens are
 * forgiven ("fk07 0001 0000 4297"); a wrong check is refused.
 */
export function parseSerial(text: string): ParsedSerial {
  const s = normalise(text);
  const m = SERIAL_RE.exec(s);
  const legacy = m ? null : LEGACY_SERIAL_RE.exec(s);
  if (!m && !legacy) throw new SerialNumberError(`'${text}' is not a fobkit serial (FK + 14 digits, e.g. ${groupSerial(formatSerial(7, 1, 42))})`);
  const digits = s.slice(SERIAL_PREFIX.length);
  if (!mod97Valid(digits)) throw new SerialNumberError(`'${text}': check digits do not match (mistyped?)`);
  const line = m ? Number(m[1]) : null;
  const batch = Number(m ? m[2] : legacy![1]);
  const sequence = Number(m ? m[3] : legacy![2]);
  if (line === 0 || batch < 1 || sequence < 1) throw new SerialNumberError(`'${text}': line, batch and sequence start at 1`);
  return { serial: s, line, batch, sequence };
}

export function isValidSerial(text: string): boolean {
  try {
    parseSerial(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Shaped like a fobkit serial (FK + 14 digits, or the legacy FK + 12) but its
 * check digits fail: mistyped. The bank says so instead of "no such token",
 * so staff look at the label again. Other vendors' serials are not judged.
 */
export function isMistypedFobkitSerial(serial: string): boolean {
  return (SERIAL_RE.test(serial) || LEGACY_SERIAL_RE.test(serial)) && !isValidSerial(serial);
}

/** For the label and for reading out: groups of four, as IBAN's paper format ("FK07 0001 0000 4297"). */
export function groupSerial(serial: string): string {
  return serial.replace(/(.{4})(?=.)/g, "$1 ");
}
