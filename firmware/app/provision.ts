/**
 * The provisioning commands: WIPE, SET_SERIAL, WRITE_SEED, SET_CLOCK,
 * SELF_TEST and LOCK, moved out of device.ts unchanged (issue 10 item 5).
 * The build puts this module and what only it needs (the record encoder,
 * key preparation) in a file of its own, fobkit-prov.lua
 * (tools/build-firmware.ts); device.ts loads it on the first write command of
 * a keyfob that is not locked. A locked keyfob answers every write
 * STATUS_LOCKED in device.ts and never loads it; if it cannot be loaded the
 * write is answered STATUS_INTERNAL and nothing changes.
 *
 * Rules: see device.ts.
 */
import { idiv, shr } from "../lib/intrinsics.js";
import { prepareKey } from "../otp/hmac.js";
import { compareTime, type UnixTime } from "../otp/time.js";
import { totp } from "../otp/totp.js";
import {
  ALG_SHA256, CMD_LOCK, CMD_SELF_TEST, CMD_SET_CLOCK, CMD_SET_SERIAL, CMD_WIPE, CMD_WRITE_SEED, CLOCK_FORCE,
  REASON_FLASH_CORRUPT, REASON_FLASH_WRITE, REASON_NONE, REASON_RTC_MISSING,
  STATUS_BAD_ARGUMENT, STATUS_BAD_STATE, STATUS_CLOCK_BACKWARDS, STATUS_FLASH_ERROR, STATUS_HW_FAULT,
  STATUS_INTERNAL, STATUS_LOCKED, STATUS_NOT_PROVISIONED, STATUS_OK, STATUS_SERIAL_MISMATCH,
} from "../../protocol/codes.js";
import type { Reply, Request } from "../../protocol/messages.js";
import { blankRecord, encodeRecord, RECORD_LOCKED, RECORD_NAME, RECORD_PROVISIONED, REC_CLOCK_SET, REC_SEED_SET, type TokenRecord } from "./record.js";
import { BOARD_OK } from "../board/board.js";
import { loadModule, readClock, reply, SHA256_MODULE, timeHiWord, timeLoWord, type Device } from "./device.js";

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

/** Persist rec; on success it becomes the device's record. */
function commit(dev: Device, rec: TokenRecord): number {
  const bytes = encodeRecord(rec);
  if (bytes === undefined) return STATUS_INTERNAL;
  const st = dev.board.flashWrite(RECORD_NAME, bytes);
  for (let i = 0; i < bytes.length; i++) bytes[i] = 0;
  if (st !== BOARD_OK) {
    dev.fault = REASON_FLASH_WRITE;
    return STATUS_FLASH_ERROR;
  }
  dev.rec = rec;
  return STATUS_OK;
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

/** Handle one decoded, well-formed write request (device.ts has answered INFO and a locked keyfob). */
export function provisionHandle(dev: Device, req: Request): Reply {
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
    return reply(req, commit(dev, rec));
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
    return reply(req, commit(dev, rec));
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
    return reply(req, commit(dev, rec));
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

