/**
 * Requests and replies: plain objects <-> frame bodies. Byte layouts are in
 * SPEC.md "Messages"; check* holds every field rule, so encoders and decoders
 * enforce exactly the same limits.
 *
 * Numbers in messages: bytes 0..255; 32-bit fields (period, time words) as
 * canonical signed int32 (what `x | 0` gives in JS and what 32-bit Lua holds
 * natively), so a message compares equal on every VM. Unix time is two such
 * words: seconds = timeHi * 2^32 + (timeLo mod 2^32), timeHi >= 0.
 */
import { pushBytes, pushCounted, pushWord, readBytes, readWord } from "../core/bytes.js";
import { i32 } from "../core/intrinsics.js";
import {
  CLOCK_FORCE, CMD_INFO, CMD_LOCK, CMD_SELF_TEST, CMD_SET_CLOCK, CMD_SET_SERIAL, CMD_WIPE, CMD_WRITE_SEED,
  HWID_LENGTH, INFO_SEED_SET, MAX_DIGITS, MAX_MODEL, MAX_SEED, MAX_SERIAL, MIN_DIGITS, MIN_SEED,
  PROTOCOL_VERSION, REPLY_FLAG, STATE_ERROR, STATUS_BAD_ARGUMENT, STATUS_BAD_LENGTH, STATUS_BAD_VERSION,
  STATUS_INTERNAL, STATUS_OK, STATUS_UNKNOWN_COMMAND, ALG_SHA1, ALG_SHA512, WRONG_DIRECTION,
} from "./codes.js";
import { encodeFrame } from "./framing.js";

// cmd literals below are CMD_INFO .. CMD_WIPE (codes.ts); literal types make `cmd` a discriminant.
export interface InfoRequest { cmd: 1; rid: number }
/** serial: 1..MAX_SERIAL bytes 0x21..0x7E. */
export interface SetSerialRequest { cmd: 2; rid: number; serial: number[] }
/** algorithm ALG_*, digits 6..8, period 1..2^31-1 seconds, seed MIN_SEED..MAX_SEED bytes. */
export interface WriteSeedRequest { cmd: 3; rid: number; algorithm: number; digits: number; period: number; seed: number[] }
/** flags: CLOCK_FORCE allows moving the clock backwards. */
export interface SetClockRequest { cmd: 4; rid: number; timeHi: number; timeLo: number; flags: number }
export interface SelfTestRequest { cmd: 5; rid: number }
/** serial: the serial the host believes the device has; a mismatch is refused. */
export interface LockRequest { cmd: 6; rid: number; serial: number[] }
/** serial: as LOCK, but may be empty (a device without serial). */
export interface WipeRequest { cmd: 7; rid: number; serial: number[] }
export type Request = InfoRequest | SetSerialRequest | WriteSeedRequest | SetClockRequest | SelfTestRequest | LockRequest | WipeRequest;

export interface DeviceInfo {
  /** STATE_*. */
  state: number;
  /** REASON_*; 0 unless state is STATE_ERROR. */
  reason: number;
  /** INFO_* bits. */
  flags: number;
  fwMajor: number;
  fwMinor: number;
  fwPatch: number;
  /** HWID_LENGTH bytes. */
  hwid: number[];
  timeHi: number;
  timeLo: number;
  /** With INFO_SEED_SET: ALG_*, 6..8, 1..2^31-1; without: all 0. */
  algorithm: number;
  digits: number;
  period: number;
  /** 0..MAX_MODEL bytes 0x20..0x7E. */
  model: number[];
  /** 0..MAX_SERIAL bytes 0x21..0x7E; empty when unset. */
  serial: number[];
}

export interface SelfTestResult {
  /** The unix time the code was computed for. */
  timeHi: number;
  timeLo: number;
  /** 6..8 ASCII digits '0'..'9'. */
  code: number[];
}

/** A reply. info / selfTest are present exactly when status is STATUS_OK and cmd is INFO / SELF_TEST. */
export interface Reply {
  rid: number;
  /** The command answered, without REPLY_FLAG. */
  cmd: number;
  status: number;
  info?: DeviceInfo;
  selfTest?: SelfTestResult;
}

/**
 * status: STATUS_OK, a STATUS_* the device sends back as is, or
 * WRONG_DIRECTION (send nothing). rid/cmd are the frame's bytes 1 and 2
 * (cmd without REPLY_FLAG for replies), valid whenever the body has them.
 */
export interface DecodedRequest { status: number; rid: number; cmd: number; msg: Request | undefined }
export interface DecodedReply { status: number; rid: number; cmd: number; msg: Reply | undefined }

// ---- field rules -------------------------------------------------------

function isByte(v: number): boolean {
  return (v & 255) === v;
}

function isWord(v: number): boolean {
  return i32(v) === v;
}

/** Every element a byte in lo..hi, length in minLen..maxLen. */
function bytesIn(a: number[], minLen: number, maxLen: number, lo: number, hi: number): boolean {
  const n = a.length;
  if (n < minLen || n > maxLen) {
    return false;
  }
  for (let i = 0; i < n; i++) {
    const b = a[i];
    if (!isByte(b) || b < lo || b > hi) {
      return false;
    }
  }
  return true;
}

function serialOk(s: number[], minLen: number): boolean {
  return bytesIn(s, minLen, MAX_SERIAL, 0x21, 0x7e);
}

function tokenParamsOk(algorithm: number, digits: number, period: number): boolean {
  return algorithm >= ALG_SHA1 && algorithm <= ALG_SHA512 && digits >= MIN_DIGITS && digits <= MAX_DIGITS &&
    isWord(period) && period >= 1;
}

/** STATUS_OK, or why msg cannot be sent (STATUS_UNKNOWN_COMMAND, STATUS_BAD_ARGUMENT). */
export function checkRequest(msg: Request): number {
  if (!isByte(msg.rid)) {
    return STATUS_BAD_ARGUMENT;
  }
  if (msg.cmd === CMD_INFO || msg.cmd === CMD_SELF_TEST) {
    return STATUS_OK;
  }
  let ok = false;
  if (msg.cmd === CMD_SET_SERIAL || msg.cmd === CMD_LOCK) {
    ok = serialOk(msg.serial, 1);
  } else if (msg.cmd === CMD_WIPE) {
    ok = serialOk(msg.serial, 0);
  } else if (msg.cmd === CMD_WRITE_SEED) {
    ok = tokenParamsOk(msg.algorithm, msg.digits, msg.period) && bytesIn(msg.seed, MIN_SEED, MAX_SEED, 0, 255);
  } else if (msg.cmd === CMD_SET_CLOCK) {
    ok = isWord(msg.timeHi) && msg.timeHi >= 0 && isWord(msg.timeLo) && isByte(msg.flags) && (msg.flags & ~CLOCK_FORCE) === 0;
  } else {
    return STATUS_UNKNOWN_COMMAND;
  }
  if (ok) {
    return STATUS_OK;
  }
  return STATUS_BAD_ARGUMENT;
}

function infoOk(info: DeviceInfo): boolean {
  if (!(info.state >= 0 && info.state <= STATE_ERROR && isByte(info.reason) && isByte(info.flags) &&
    isByte(info.fwMajor) && isByte(info.fwMinor) && isByte(info.fwPatch) && isWord(info.timeHi) && isWord(info.timeLo))) {
    return false;
  }
  if (!(bytesIn(info.hwid, HWID_LENGTH, HWID_LENGTH, 0, 255) && bytesIn(info.model, 0, MAX_MODEL, 0x20, 0x7e) &&
    serialOk(info.serial, 0))) {
    return false;
  }
  if ((info.flags & INFO_SEED_SET) !== 0) {
    return tokenParamsOk(info.algorithm, info.digits, info.period);
  }
  return info.algorithm === 0 && info.digits === 0 && info.period === 0;
}

function selfTestOk(st: SelfTestResult): boolean {
  return isWord(st.timeHi) && isWord(st.timeLo) && bytesIn(st.code, MIN_DIGITS, MAX_DIGITS, 0x30, 0x39);
}

export function isKnownCommand(cmd: number): boolean {
  return cmd >= CMD_INFO && cmd <= CMD_WIPE;
}

/** STATUS_OK, or why reply cannot be sent (STATUS_UNKNOWN_COMMAND, STATUS_BAD_ARGUMENT). */
export function checkReply(reply: Reply): number {
  if (!isByte(reply.rid) || !isByte(reply.status) || !isByte(reply.cmd) || reply.cmd >= REPLY_FLAG) {
    return STATUS_BAD_ARGUMENT;
  }
  if (reply.status !== STATUS_OK) {
    return STATUS_OK;
  }
  if (!isKnownCommand(reply.cmd)) {
    return STATUS_UNKNOWN_COMMAND;
  }
  if (reply.cmd === CMD_INFO) {
    const info = reply.info;
    if (info === undefined || !infoOk(info)) {
      return STATUS_BAD_ARGUMENT;
    }
  } else if (reply.cmd === CMD_SELF_TEST) {
    const st = reply.selfTest;
    if (st === undefined || !selfTestOk(st)) {
      return STATUS_BAD_ARGUMENT;
    }
  }
  return STATUS_OK;
}

// ---- requests ----------------------------------------------------------

function reqResult(status: number, rid: number, cmd: number, msg: Request | undefined): DecodedRequest {
  return { status: status, rid: rid, cmd: cmd, msg: msg };
}

/**
 * Decode a request body (body[0..len), as a Deframer leaves it). Checks, in
 * this order: direction, version, command, payload length, field values.
 */
export function decodeRequest(body: number[], len: number): DecodedRequest {
  if (len < 3) {
    return reqResult(STATUS_BAD_LENGTH, len > 1 ? body[1] : 0, len > 2 ? body[2] : 0, undefined);
  }
  const rid = body[1];
  const cmd = body[2];
  if ((cmd & REPLY_FLAG) !== 0) {
    return reqResult(WRONG_DIRECTION, rid, cmd, undefined);
  }
  if (body[0] !== PROTOCOL_VERSION) {
    return reqResult(STATUS_BAD_VERSION, rid, cmd, undefined);
  }
  if (!isKnownCommand(cmd)) {
    return reqResult(STATUS_UNKNOWN_COMMAND, rid, cmd, undefined);
  }
  const n = len - 3;
  let msg: Request | undefined = undefined;
  if (cmd === CMD_INFO || cmd === CMD_SELF_TEST) {
    if (n === 0) {
      msg = cmd === CMD_INFO ? { cmd: CMD_INFO, rid: rid } : { cmd: CMD_SELF_TEST, rid: rid };
    }
  } else if (cmd === CMD_SET_SERIAL || cmd === CMD_LOCK || cmd === CMD_WIPE) {
    if (n >= 1 && n === 1 + body[3]) {
      const serial = readBytes(body, 4, body[3]);
      if (cmd === CMD_SET_SERIAL) {
        msg = { cmd: CMD_SET_SERIAL, rid: rid, serial: serial };
      } else if (cmd === CMD_LOCK) {
        msg = { cmd: CMD_LOCK, rid: rid, serial: serial };
      } else {
        msg = { cmd: CMD_WIPE, rid: rid, serial: serial };
      }
    }
  } else if (cmd === CMD_WRITE_SEED) {
    if (n >= 7 && n === 7 + body[9]) {
      msg = {
        cmd: CMD_WRITE_SEED, rid: rid, algorithm: body[3], digits: body[4], period: readWord(body, 5),
        seed: readBytes(body, 10, body[9]),
      };
    }
  } else if (cmd === CMD_SET_CLOCK) {
    if (n === 9) {
      msg = { cmd: CMD_SET_CLOCK, rid: rid, timeHi: readWord(body, 3), timeLo: readWord(body, 7), flags: body[11] };
    }
  }
  if (msg === undefined) {
    return reqResult(STATUS_BAD_LENGTH, rid, cmd, undefined);
  }
  const status = checkRequest(msg);
  if (status !== STATUS_OK) {
    return reqResult(status, rid, cmd, undefined);
  }
  return reqResult(STATUS_OK, rid, cmd, msg);
}

// ---- replies -----------------------------------------------------------

/**
 * The wire bytes of a reply. A reply that fails checkReply (a firmware bug)
 * goes out as STATUS_INTERNAL for the same rid and cmd instead, so the host
 * always gets an answer and never a malformed one.
 */
export function encodeReply(reply: Reply): number[] {
  const body: number[] = [PROTOCOL_VERSION, reply.rid & 255, (reply.cmd & 127) | REPLY_FLAG];
  if (checkReply(reply) !== STATUS_OK) {
    body.push(STATUS_INTERNAL);
    return encodeFrame(body, body.length);
  }
  body.push(reply.status);
  if (reply.status === STATUS_OK) {
    const info = reply.info;
    const st = reply.selfTest;
    if (reply.cmd === CMD_INFO && info !== undefined) {
      body.push(info.state);
      body.push(info.reason);
      body.push(info.flags);
      body.push(info.fwMajor);
      body.push(info.fwMinor);
      body.push(info.fwPatch);
      pushBytes(body, info.hwid);
      pushWord(body, info.timeHi);
      pushWord(body, info.timeLo);
      body.push(info.algorithm);
      body.push(info.digits);
      pushWord(body, info.period);
      pushCounted(body, info.model);
      pushCounted(body, info.serial);
    } else if (reply.cmd === CMD_SELF_TEST && st !== undefined) {
      pushWord(body, st.timeHi);
      pushWord(body, st.timeLo);
      pushCounted(body, st.code);
    }
  }
  return encodeFrame(body, body.length);
}
