/**
 * The provisioning commands: WIPE, SET_SERIAL, WRITE_SEED, SET_CLOCK,
 * SELF_TEST and LOCK, moved out of device.ts (issue 10 item 5); SET_SERIAL,
 * WRITE_SEED and SET_CLOCK stage the record in RAM and LOCK is the one flash
 * write (issue 10 item 10).
 * The build puts this module and what only it needs (the record encoder,
 * key preparation) in a file of its own, fobkit-prov.lua
 * (tools/build-firmware.ts); device.ts loads it on the first write command of
 * a keyfob that is not locked. A locked keyfob answers every write
 * STATUS_LOCKED in device.ts and never loads it; if it cannot be loaded the
 * write is answered STATUS_INTERNAL and nothing changes.
 *
 * Rules: see device.ts.
 */
import { idiv, shr } from "../../core/intrinsics.js";
import { prepareKey } from "../otp/hmac.js";
import { compareTime, type UnixTime } from "../../core/time.js";
import { totp } from "../otp/totp.js";
import {
  ALG_SHA256, CMD_LOCK, CMD_SELF_TEST, CMD_SET_CLOCK, CMD_SET_SERIAL, CMD_WIPE, CMD_WRITE_SEED, CLOCK_FORCE,
  REASON_FLASH_CORRUPT, REASON_FLASH_WRITE, REASON_NONE, REASON_RTC_MISSING,
  STATUS_BAD_ARGUMENT, STATUS_BAD_STATE, STATUS_CLOCK_BACKWARDS, STATUS_FLASH_ERROR, STATUS_HW_FAULT,
  STATUS_INTERNAL, STATUS_LOCKED, STATUS_NOT_PROVISIONED, STATUS_OK, STATUS_SERIAL_MISMATCH,
} from "../../protocol/codes.js";
import type { Reply, Request } from "../../protocol/messages.js";
import { blankRecord, decodeRecord, encodeRecord, RECORD_LOCKED, RECORD_NAME, RECORD_PROVISIONED, REC_CLOCK_SET, REC_SEED_SET, type TokenRecord } from "./record.js";
import { BOARD_ERR_NOT_FOUND, BOARD_OK, type ProvisioningBoard } from "../board/board.js";
import { CLOCK_UNREAD, loadModule, readClock, reply, SHA256_MODULE, timeHiWord, timeLoWord, type Device } from "./device.js";

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
function commit(dev: Device, pb: ProvisioningBoard, rec: TokenRecord): number {
  const bytes = encodeRecord(rec);
  if (bytes === undefined) return STATUS_INTERNAL;
  let status = STATUS_OK;
  if (pb.flashWrite(RECORD_NAME, bytes) !== BOARD_OK) {
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

/** A write is allowed: not locked, no fault that hides whether it is locked. */
function writable(dev: Device): number {
  if (dev.fault === REASON_FLASH_CORRUPT) return STATUS_BAD_STATE;
  if (dev.rec.state === RECORD_LOCKED) return STATUS_LOCKED;
  return STATUS_OK;
}

/**
 * The clock's REASON_*, dev.now holding its time when REASON_NONE: this
 * request's read (device.ts deviceHandle took it for SPEC §4's HW_FAULT
 * check), or a read now when it took none.
 */
function clockFor(dev: Device, clockReason: number): number {
  return clockReason === CLOCK_UNREAD ? readClock(dev) : clockReason;
}

/**
 * Handle one decoded, well-formed write request (device.ts has answered INFO
 * and a locked keyfob); pb: the board's write side, loaded with this module;
 * clockReason: the RTC as deviceHandle read it for this request, or
 * CLOCK_UNREAD.
 */
export function provisionHandle(dev: Device, pb: ProvisioningBoard, req: Request, clockReason: number): Reply {
  if (req.cmd === CMD_WIPE) {
    // A corrupt record may be wiped (nothing secret is readable from it);
    // a locked one never.
    if (dev.fault !== REASON_FLASH_CORRUPT && dev.rec.state === RECORD_LOCKED) return reply(req, STATUS_LOCKED);
    if (dev.fault !== REASON_FLASH_CORRUPT && !sameBytes(req.serial, dev.rec.serial)) return reply(req, STATUS_SERIAL_MISMATCH);
    if (pb.flashRemove(RECORD_NAME) !== BOARD_OK) return reply(req, STATUS_FLASH_ERROR);
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
    // SHA-256 is not in the core (device.ts SHA256_MODULE): load it before preparing a key with it.
    if (req.algorithm === ALG_SHA256 && !loadModule(dev.load, SHA256_MODULE)) {
      for (let i = 0; i < req.seed.length; i++) req.seed[i] = 0;
      return reply(req, STATUS_INTERNAL);
    }
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
    const clock = clockFor(dev, clockReason);
    if (clock === REASON_RTC_MISSING) return reply(req, STATUS_HW_FAULT);
    // Backwards is judged against a clock that still holds valid time.
    if (clock === REASON_NONE && (req.flags & CLOCK_FORCE) === 0 && compareTime(t, dev.now) < 0) {
      return reply(req, STATUS_CLOCK_BACKWARDS);
    }
    if (pb.rtcWrite(t) !== BOARD_OK) return reply(req, STATUS_HW_FAULT);
    if ((dev.rec.flags & REC_CLOCK_SET) !== 0) return reply(req, STATUS_OK);
    const rec = cloneRecord(dev.rec);
    rec.flags = rec.flags | REC_CLOCK_SET;
    return reply(req, stage(dev, rec));
  }
  if (req.cmd === CMD_SELF_TEST) {
    if (w !== STATUS_OK) return reply(req, w);
    if (dev.rec.key === undefined) return reply(req, STATUS_NOT_PROVISIONED);
    const code = currentCode(dev, clockReason);
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
    if (clockFor(dev, clockReason) !== REASON_NONE) return reply(req, STATUS_HW_FAULT);
    const locked = cloneRecord(rec);
    locked.state = RECORD_LOCKED;
    return reply(req, commit(dev, pb, locked));
  }
  return reply(req, STATUS_BAD_ARGUMENT);
}

/** ASCII digits of the code for the RTC's time (left in dev.now), or undefined on any fault. */
function currentCode(dev: Device, clockReason: number): number[] | undefined {
  const key = dev.rec.key;
  if (key === undefined || dev.fault !== REASON_NONE || (dev.rec.flags & REC_CLOCK_SET) === 0) return undefined;
  if (clockFor(dev, clockReason) !== REASON_NONE) return undefined;
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

