/**
 * The keyfob's behaviour: one function per request, one for the button.
 * State lives in the flash record (record.ts) and in the RTC; everything the
 * device does to hardware goes through the Board boundary (board/board.ts).
 *
 * Rules (issue 3, DESIGN.md "Keyfob behaviour"):
 * - blank -> provisioned (seed written) -> locked. Serial and clock can be set
 *   in blank or provisioned; LOCK needs seed, serial and clock.
 * - SET_SERIAL, WRITE_SEED and SET_CLOCK are staged in RAM (the RTC itself is
 *   set at once); LOCK writes the record to flash, the one flash write of a
 *   provisioning (stage(), commit()). Until then a reboot returns the keyfob
 *   to what its flash holds.
 * - After lock nothing writes: every write command answers STATUS_LOCKED and
 *   nothing is read back but INFO; SELF_TEST (a code over USB) is refused too.
 * - The clock never moves backwards without CLOCK_FORCE.
 * - Fails closed: a fault (RTC absent, RTC time lost, corrupt record) puts the
 *   device in STATE_ERROR; it never computes a code from a zero clock or seed.
 */
import { idiv, shr } from "../../core/intrinsics.js";
// Each from its own module, never an index: the image holds only what is imported (tools/build-firmware.ts).
import { prepareKey } from "../otp/hmac.js";
import { formatCode } from "../otp/hotp.js";
import { compareTime, type UnixTime } from "../../core/time.js";
import { totp } from "../otp/totp.js";
import {
  CMD_INFO, CMD_LOCK, CMD_SELF_TEST, CMD_SET_CLOCK, CMD_SET_SERIAL, CMD_WIPE, CMD_WRITE_SEED, CLOCK_FORCE,
  INFO_CLOCK_SET, INFO_LOCK_SET, INFO_SEED_SET, REASON_FLASH_CORRUPT, REASON_FLASH_WRITE, REASON_NONE,
  REASON_RTC_MISSING, REASON_RTC_TIME_LOST, STATE_BLANK, STATE_ERROR, STATE_LOCKED, STATE_PROVISIONED,
  STATUS_BAD_ARGUMENT, STATUS_BAD_STATE, STATUS_CLOCK_BACKWARDS, STATUS_FLASH_ERROR, STATUS_HW_FAULT,
  STATUS_INTERNAL, STATUS_LOCKED, STATUS_NOT_PROVISIONED, STATUS_OK, STATUS_SERIAL_MISMATCH,
} from "../../protocol/codes.js";
import type { DeviceInfo, Reply, Request } from "../../protocol/messages.js";
import {
  blankRecord, decodeRecord, encodeRecord, RECORD_LOCKED, RECORD_NAME, RECORD_PROVISIONED,
  REC_CLOCK_SET, REC_SEED_SET, type TokenRecord,
} from "./record.js";
import { BOARD_ERR_NOT_FOUND, BOARD_ERR_RTC_TIME_LOST, BOARD_OK, HARDWARE_ID_LENGTH, type Board } from "../board/board.js";

export const FW_MAJOR = 1;
export const FW_MINOR = 1;
export const FW_PATCH = 0;
/** "FOBKIT-1" in ASCII. */
const DIGIT_TEXT: string[] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const MODEL: number[] = [0x46, 0x4f, 0x42, 0x4b, 0x49, 0x54, 0x2d, 0x31];

export interface Device {
  /** The hardware, passed in by the caller (main.ts: the NodeMCU board; tests: an in-memory one). */
  board: Board;
  rec: TokenRecord;
  /** REASON_* of a fault that makes the device unusable, REASON_NONE if healthy. */
  fault: number;
  hwid: number[];
  /** Scratch for clock reads. */
  now: UnixTime;
}

/** The 8-byte hardware id; all zeros if the board cannot tell (INFO still answers). */
function hardwareIdOrZeros(board: Board): number[] {
  const out: number[] = [];
  if (board.hardwareId(out) === BOARD_OK && out.length === HARDWARE_ID_LENGTH) return out;
  const zeros: number[] = [];
  for (let i = 0; i < HARDWARE_ID_LENGTH; i++) zeros.push(0);
  return zeros;
}

/** Load the record and check the RTC: what boot does. */
export function deviceBoot(board: Board): Device {
  const dev: Device = {
    board: board, rec: blankRecord(), fault: REASON_NONE, hwid: hardwareIdOrZeros(board), now: { hi: 0, lo: 0 },
  };
  const raw: number[] = [];
  const st = board.flashRead(RECORD_NAME, raw);
  if (st === BOARD_OK) {
    const rec = decodeRecord(raw);
    for (let i = 0; i < raw.length; i++) raw[i] = 0;
    if (rec === undefined) dev.fault = REASON_FLASH_CORRUPT;
    else dev.rec = rec;
  } else if (st !== BOARD_ERR_NOT_FOUND) {
    dev.fault = REASON_FLASH_CORRUPT;
  }
  return dev;
}

/** Read the RTC into dev.now; REASON_NONE or the RTC fault. */
function readClock(dev: Device): number {
  const st = dev.board.rtcRead(dev.now);
  if (st === BOARD_OK) return REASON_NONE;
  if (st === BOARD_ERR_RTC_TIME_LOST) return REASON_RTC_TIME_LOST;
  return REASON_RTC_MISSING;
}

/** The state INFO reports and the reason when it is STATE_ERROR. */
function currentState(dev: Device, clockReason: number): number {
  if (dev.fault !== REASON_NONE) return STATE_ERROR;
  // A clock that was set and has since been lost makes codes unverifiable.
  if (clockReason !== REASON_NONE && (dev.rec.flags & REC_CLOCK_SET) !== 0) return STATE_ERROR;
  if (clockReason === REASON_RTC_MISSING) return STATE_ERROR;
  if (dev.rec.state === RECORD_LOCKED) return STATE_LOCKED;
  if (dev.rec.state === RECORD_PROVISIONED) return STATE_PROVISIONED;
  return STATE_BLANK;
}

function errorReason(dev: Device, clockReason: number): number {
  return dev.fault !== REASON_NONE ? dev.fault : clockReason;
}

function sameBytes(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function copyBytes(a: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) out.push(a[i]);
  return out;
}

/**
 * Stage rec in RAM: SET_SERIAL, WRITE_SEED and SET_CLOCK change only the
 * device's record in memory, and LOCK writes it to flash once (commit). Each
 * SPIFFS record write blocks Lua for tens of ms (hil/flash.ts), so writing
 * after every command cost the station most of its time per keyfob (issue
 * 10, item 10). A power cut before LOCK leaves the flash as it was (blank,
 * for a keyfob the station provisions), and the station provisions it again.
 */
function stage(dev: Device, rec: TokenRecord): number {
  dev.rec = rec;
  return STATUS_OK;
}

/**
 * Persist rec; on success it becomes the device's record. A failed write
 * (flash-store.ts) left the board's record as it was, or, when it failed
 * between its two renames, the new record that the next read finishes: so
 * the record is read back. The new one: the write did happen (OK). The old
 * one, or none: FLASH_ERROR, and the device stays as it was, healthy. Nothing
 * readable: the device no longer knows its record (REASON_FLASH_WRITE).
 */
function commit(dev: Device, rec: TokenRecord): number {
  const bytes = encodeRecord(rec);
  if (bytes === undefined) return STATUS_INTERNAL;
  let status = STATUS_OK;
  if (dev.board.flashWrite(RECORD_NAME, bytes) !== BOARD_OK) {
    status = STATUS_FLASH_ERROR;
    const raw: number[] = [];
    const st = dev.board.flashRead(RECORD_NAME, raw);
    if (st === BOARD_OK && sameBytes(raw, bytes)) {
      status = STATUS_OK;
    } else if (st === BOARD_OK) {
      if (decodeRecord(raw) === undefined) dev.fault = REASON_FLASH_WRITE;
    } else if (st !== BOARD_ERR_NOT_FOUND) {
      dev.fault = REASON_FLASH_WRITE;
    }
    for (let i = 0; i < raw.length; i++) raw[i] = 0;
  }
  for (let i = 0; i < bytes.length; i++) bytes[i] = 0;
  if (status === STATUS_OK) {
    dev.rec = rec;
    // The record reads again: an earlier unreadable write no longer stands.
    if (dev.fault === REASON_FLASH_WRITE) dev.fault = REASON_NONE;
  }
  return status;
}

function cloneRecord(r: TokenRecord): TokenRecord {
  return { state: r.state, flags: r.flags, algorithm: r.algorithm, digits: r.digits, period: r.period, serial: r.serial, key: r.key };
}

/** Protocol time words (hi * 2^32 + lo) -> the OTP core's UnixTime (hi * 2^16 + lo). */
function toUnixTime(timeHi: number, timeLo: number): UnixTime | undefined {
  // The OTP core holds up to 2^47 s; the protocol's hi word must stay below 2^15.
  if (timeHi < 0 || timeHi >= 32768) return undefined;
  return { hi: (timeHi << 16) | shr(timeLo, 16), lo: timeLo & 65535 };
}

function timeHiWord(t: UnixTime): number {
  return shr(t.hi, 16);
}

function timeLoWord(t: UnixTime): number {
  return (t.hi << 16) | t.lo;
}

function info(dev: Device): DeviceInfo {
  const clockReason = readClock(dev);
  const state = currentState(dev, clockReason);
  const rec = dev.rec;
  let flags = 0;
  if ((rec.flags & REC_CLOCK_SET) !== 0) flags = flags | INFO_CLOCK_SET;
  if ((rec.flags & REC_SEED_SET) !== 0) flags = flags | INFO_SEED_SET;
  if (rec.state === RECORD_LOCKED) flags = flags | INFO_LOCK_SET;
  const seeded = (rec.flags & REC_SEED_SET) !== 0;
  const clockOk = clockReason === REASON_NONE;
  return {
    state: state,
    reason: state === STATE_ERROR ? errorReason(dev, clockReason) : REASON_NONE,
    flags: flags,
    fwMajor: FW_MAJOR,
    fwMinor: FW_MINOR,
    fwPatch: FW_PATCH,
    hwid: dev.hwid,
    timeHi: clockOk ? timeHiWord(dev.now) : 0,
    timeLo: clockOk ? timeLoWord(dev.now) : 0,
    algorithm: seeded ? rec.algorithm : 0,
    digits: seeded ? rec.digits : 0,
    period: seeded ? rec.period : 0,
    model: MODEL,
    serial: rec.serial,
  };
}

/** A write is allowed: not locked, no fault that hides whether it is locked. */
function writable(dev: Device): number {
  if (dev.fault === REASON_FLASH_CORRUPT) return STATUS_BAD_STATE;
  if (dev.rec.state === RECORD_LOCKED) return STATUS_LOCKED;
  return STATUS_OK;
}

function reply(req: Request, status: number): Reply {
  return { rid: req.rid, cmd: req.cmd, status: status, info: undefined, selfTest: undefined };
}

/** Handle one decoded, well-formed request. */
export function deviceHandle(dev: Device, req: Request): Reply {
  if (req.cmd === CMD_INFO) {
    const r = reply(req, STATUS_OK);
    r.info = info(dev);
    return r;
  }
  if (req.cmd === CMD_WIPE) {
    // A corrupt record may be wiped (nothing secret is readable from it);
    // a locked one never.
    if (dev.fault !== REASON_FLASH_CORRUPT && dev.rec.state === RECORD_LOCKED) return reply(req, STATUS_LOCKED);
    if (dev.fault !== REASON_FLASH_CORRUPT && !sameBytes(req.serial, dev.rec.serial)) return reply(req, STATUS_SERIAL_MISMATCH);
    if (dev.board.flashRemove(RECORD_NAME) !== BOARD_OK) return reply(req, STATUS_FLASH_ERROR);
    dev.rec = blankRecord();
    dev.fault = REASON_NONE;
    return reply(req, STATUS_OK);
  }
  const w = writable(dev);
  if (req.cmd === CMD_SET_SERIAL) {
    if (w !== STATUS_OK) return reply(req, w);
    const rec = cloneRecord(dev.rec);
    rec.serial = copyBytes(req.serial);
    return reply(req, stage(dev, rec));
  }
  if (req.cmd === CMD_WRITE_SEED) {
    if (w !== STATUS_OK) return reply(req, w);
    const pk = prepareKey(req.seed, req.algorithm);
    for (let i = 0; i < req.seed.length; i++) req.seed[i] = 0;
    if (typeof pk === "number") return reply(req, STATUS_BAD_ARGUMENT);
    const rec = cloneRecord(dev.rec);
    rec.state = RECORD_PROVISIONED;
    rec.flags = rec.flags | REC_SEED_SET;
    rec.algorithm = req.algorithm;
    rec.digits = req.digits;
    rec.period = req.period;
    rec.key = pk;
    return reply(req, stage(dev, rec));
  }
  if (req.cmd === CMD_SET_CLOCK) {
    if (w !== STATUS_OK) return reply(req, w);
    const t = toUnixTime(req.timeHi, req.timeLo);
    if (t === undefined) return reply(req, STATUS_BAD_ARGUMENT);
    const clockReason = readClock(dev);
    if (clockReason === REASON_RTC_MISSING) return reply(req, STATUS_HW_FAULT);
    // Backwards is judged against a clock that still holds valid time.
    if (clockReason === REASON_NONE && (req.flags & CLOCK_FORCE) === 0 && compareTime(t, dev.now) < 0) {
      return reply(req, STATUS_CLOCK_BACKWARDS);
    }
    if (dev.board.rtcWrite(t) !== BOARD_OK) return reply(req, STATUS_HW_FAULT);
    if ((dev.rec.flags & REC_CLOCK_SET) !== 0) return reply(req, STATUS_OK);
    const rec = cloneRecord(dev.rec);
    rec.flags = rec.flags | REC_CLOCK_SET;
    return reply(req, stage(dev, rec));
  }
  if (req.cmd === CMD_SELF_TEST) {
    if (w !== STATUS_OK) return reply(req, w);
    if (dev.rec.key === undefined) return reply(req, STATUS_NOT_PROVISIONED);
    const code = currentCode(dev);
    if (code === undefined) return reply(req, STATUS_HW_FAULT);
    const r = reply(req, STATUS_OK);
    r.selfTest = { timeHi: timeHiWord(dev.now), timeLo: timeLoWord(dev.now), code: code };
    return r;
  }
  if (req.cmd === CMD_LOCK) {
    if (w !== STATUS_OK) return reply(req, w);
    if (!sameBytes(req.serial, dev.rec.serial)) return reply(req, STATUS_SERIAL_MISMATCH);
    const rec = dev.rec;
    if (rec.key === undefined || rec.serial.length === 0 || (rec.flags & REC_CLOCK_SET) === 0) {
      return reply(req, STATUS_BAD_STATE);
    }
    if (readClock(dev) !== REASON_NONE) return reply(req, STATUS_HW_FAULT);
    const locked = cloneRecord(rec);
    locked.state = RECORD_LOCKED;
    return reply(req, commit(dev, locked));
  }
  return reply(req, STATUS_BAD_ARGUMENT);
}

/** ASCII digits of the code for the RTC's time (left in dev.now), or undefined on any fault. */
function currentCode(dev: Device): number[] | undefined {
  const key = dev.rec.key;
  if (key === undefined || dev.fault !== REASON_NONE || (dev.rec.flags & REC_CLOCK_SET) === 0) return undefined;
  if (readClock(dev) !== REASON_NONE) return undefined;
  const code = totp(key, dev.now, dev.rec.period, dev.rec.digits);
  if (code < 0) return undefined;
  // ASCII digits, most significant first (formatCode's text, as bytes).
  const out: number[] = [];
  let rest = code;
  for (let i = 0; i < dev.rec.digits; i++) out.push(0);
  for (let i = dev.rec.digits - 1; i >= 0; i--) {
    out[i] = 0x30 + (rest % 10);
    rest = idiv(rest, 10);
  }
  return out;
}

/**
 * What the display shows on a button press: the code when locked and
 * healthy, otherwise a status word (letters the seven-segment font has).
 */
export function devicePressText(dev: Device): string {
  const clockReason = readClock(dev);
  const state = currentState(dev, clockReason);
  if (state === STATE_ERROR) {
    const reason = errorReason(dev, clockReason);
    return "Err  " + DIGIT_TEXT[idiv(reason, 10) % 10] + DIGIT_TEXT[reason % 10];
  }
  if (state === STATE_BLANK) return "bLAnK";
  if (state === STATE_PROVISIONED) return "oPEn";
  const key = dev.rec.key;
  if (key === undefined) return "Err";
  const code = totp(key, dev.now, dev.rec.period, dev.rec.digits);
  if (code < 0) return "Err";
  return formatCode(code, dev.rec.digits);
}
