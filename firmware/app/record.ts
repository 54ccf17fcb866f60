/**
 * The keyfob's one persistent record: state, serial, token parameters and the
 * prepared HMAC key (never the raw seed). Written whole through the board's
 * atomic flash store, so a power cut leaves the previous or the next record.
 *
 * Layout (the flash store adds its own length + CRC envelope):
 *   0  'F' 'K'         magic
 *   2  RECORD_VERSION
 *   3  state           RECORD_BLANK | RECORD_PROVISIONED | RECORD_LOCKED
 *   4  flags           REC_CLOCK_SET | REC_SEED_SET
 *   5  algorithm, 6 digits
 *   7  period          4 bytes, big-endian
 *   11 serial length n, then n serial bytes
 *   .. prepared key length m (0 when no seed), then m bytes (otp serializePreparedKey)
 */
import { pushWord, readWord } from "../../core/bytes.js";
import { parsePreparedKey, serializePreparedKey, type PreparedKey } from "../otp/hmac.js";

export const RECORD_NAME = "token.rec";
export const RECORD_VERSION = 1;
export const RECORD_BLANK = 0;
export const RECORD_PROVISIONED = 1;
export const RECORD_LOCKED = 2;
export const REC_CLOCK_SET = 1;
export const REC_SEED_SET = 2;

const MAGIC_0 = 0x46;
const MAGIC_1 = 0x4b;

export interface TokenRecord {
  state: number;
  flags: number;
  algorithm: number;
  digits: number;
  period: number;
  serial: number[];
  /** Present exactly when REC_SEED_SET is in flags. */
  key: PreparedKey | undefined;
}

export function blankRecord(): TokenRecord {
  return { state: RECORD_BLANK, flags: 0, algorithm: 0, digits: 0, period: 0, serial: [], key: undefined };
}

export function encodeRecord(r: TokenRecord): number[] | undefined {
  const out: number[] = [MAGIC_0, MAGIC_1, RECORD_VERSION, r.state, r.flags, r.algorithm, r.digits];
  pushWord(out, r.period);
  out.push(r.serial.length);
  for (let i = 0; i < r.serial.length; i++) out.push(r.serial[i]);
  if (r.key === undefined) {
    out.push(0);
    return out;
  }
  const kb = serializePreparedKey(r.key);
  if (typeof kb === "number") return undefined;
  out.push(kb.length);
  for (let i = 0; i < kb.length; i++) {
    out.push(kb[i]);
    kb[i] = 0;
  }
  return out;
}

/** The record in bytes, or undefined when it is not one this firmware wrote. */
export function decodeRecord(b: number[]): TokenRecord | undefined {
  const n = b.length;
  if (n < 13 || b[0] !== MAGIC_0 || b[1] !== MAGIC_1 || b[2] !== RECORD_VERSION) return undefined;
  const state = b[3];
  const flags = b[4];
  if (state !== RECORD_BLANK && state !== RECORD_PROVISIONED && state !== RECORD_LOCKED) return undefined;
  const period = readWord(b, 7);
  const serialLen = b[11];
  let at = 12;
  if (at + serialLen + 1 > n) return undefined;
  const serial: number[] = [];
  for (let i = 0; i < serialLen; i++) serial.push(b[at + i]);
  at = at + serialLen;
  const keyLen = b[at];
  at = at + 1;
  if (at + keyLen !== n) return undefined;
  let key: PreparedKey | undefined = undefined;
  if (keyLen > 0) {
    const kb: number[] = [];
    for (let i = 0; i < keyLen; i++) kb.push(b[at + i]);
    const pk = parsePreparedKey(kb);
    for (let i = 0; i < keyLen; i++) kb[i] = 0;
    if (typeof pk === "number") return undefined;
    key = pk;
  }
  // The seed flag and the key must agree, and a locked record must be complete.
  if ((key !== undefined) !== ((flags & REC_SEED_SET) !== 0)) return undefined;
  if (state === RECORD_LOCKED && (key === undefined || serialLen === 0 || (flags & REC_CLOCK_SET) === 0)) return undefined;
  return { state: state, flags: flags, algorithm: b[5], digits: b[6], period: period, serial: serial, key: key };
}
