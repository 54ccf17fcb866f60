/**
 * The host's half of the messages (SPEC.md "Messages"): encodeRequest and
 * decodeReply. A keyfob decodes requests and encodes replies (messages.ts)
 * and never needs these, so they live apart: the keyfob's image holds only
 * what it imports (tools/build-firmware.ts).
 */
import {
  CMD_INFO, CMD_LOCK, CMD_SELF_TEST, CMD_SET_CLOCK, CMD_SET_SERIAL, CMD_WIPE, CMD_WRITE_SEED, HWID_LENGTH,
  PROTOCOL_VERSION, REPLY_FLAG, STATUS_BAD_LENGTH, STATUS_BAD_VERSION, STATUS_OK, STATUS_UNKNOWN_COMMAND, WRONG_DIRECTION,
} from "./codes.js";
import { encodeFrame } from "./framing.js";
import { pushCounted, pushWord, readBytes, readWord } from "../core/bytes.js";
import {
  checkReply, checkRequest, isKnownCommand,
  type DecodedReply, type DeviceInfo, type Reply, type Request, type SelfTestResult,
} from "./messages.js";

// ---- requests ----------------------------------------------------------

/** The wire bytes of a request (delimiters included), or [] when checkRequest(msg) fails. */
export function encodeRequest(msg: Request): number[] {
  if (checkRequest(msg) !== STATUS_OK) {
    return [];
  }
  const body: number[] = [PROTOCOL_VERSION, msg.rid, msg.cmd];
  if (msg.cmd === CMD_SET_SERIAL || msg.cmd === CMD_LOCK || msg.cmd === CMD_WIPE) {
    pushCounted(body, msg.serial);
  } else if (msg.cmd === CMD_WRITE_SEED) {
    body.push(msg.algorithm);
    body.push(msg.digits);
    pushWord(body, msg.period);
    pushCounted(body, msg.seed);
  } else if (msg.cmd === CMD_SET_CLOCK) {
    pushWord(body, msg.timeHi);
    pushWord(body, msg.timeLo);
    body.push(msg.flags);
  }
  return encodeFrame(body, body.length);
}

// ---- replies -----------------------------------------------------------

function repResult(status: number, rid: number, cmd: number, msg: Reply | undefined): DecodedReply {
  return { status: status, rid: rid, cmd: cmd, msg: msg };
}

/** INFO payload at body[4..len); undefined when too short. Trailing bytes are a newer minor's fields. */
function readInfo(body: number[], len: number): DeviceInfo | undefined {
  // state..period: 28 fixed bytes from offset 4, then model and serial, each counted.
  const modelAt = 32;
  if (len < modelAt + 1) {
    return undefined;
  }
  const modelLen = body[modelAt];
  const serialAt = modelAt + 1 + modelLen;
  if (len < serialAt + 1) {
    return undefined;
  }
  const serialLen = body[serialAt];
  if (len < serialAt + 1 + serialLen) {
    return undefined;
  }
  return {
    state: body[4], reason: body[5], flags: body[6], fwMajor: body[7], fwMinor: body[8], fwPatch: body[9],
    hwid: readBytes(body, 10, HWID_LENGTH), timeHi: readWord(body, 18), timeLo: readWord(body, 22),
    algorithm: body[26], digits: body[27], period: readWord(body, 28),
    model: readBytes(body, modelAt + 1, modelLen), serial: readBytes(body, serialAt + 1, serialLen),
  };
}

function readSelfTest(body: number[], len: number): SelfTestResult | undefined {
  if (len < 13 || len < 13 + body[12]) {
    return undefined;
  }
  return { timeHi: readWord(body, 4), timeLo: readWord(body, 8), code: readBytes(body, 13, body[12]) };
}

/**
 * Decode a reply body. Checks direction, version, length, field values.
 * Lenient where a newer minor revision may add: bytes after the last known
 * field are ignored, an error reply's payload is ignored, any status byte
 * is accepted.
 */
export function decodeReply(body: number[], len: number): DecodedReply {
  if (len < 4) {
    return repResult(STATUS_BAD_LENGTH, len > 1 ? body[1] : 0, len > 2 ? body[2] & 127 : 0, undefined);
  }
  const rid = body[1];
  const cmd = body[2] & 127;
  if ((body[2] & REPLY_FLAG) === 0) {
    return repResult(WRONG_DIRECTION, rid, cmd, undefined);
  }
  if (body[0] !== PROTOCOL_VERSION) {
    return repResult(STATUS_BAD_VERSION, rid, cmd, undefined);
  }
  const status = body[3];
  if (status !== STATUS_OK) {
    return repResult(STATUS_OK, rid, cmd, { rid: rid, cmd: cmd, status: status });
  }
  if (!isKnownCommand(cmd)) {
    return repResult(STATUS_UNKNOWN_COMMAND, rid, cmd, undefined);
  }
  let msg: Reply | undefined = undefined;
  if (cmd === CMD_INFO) {
    const info = readInfo(body, len);
    if (info !== undefined) {
      msg = { rid: rid, cmd: cmd, status: status, info: info };
    }
  } else if (cmd === CMD_SELF_TEST) {
    const st = readSelfTest(body, len);
    if (st !== undefined) {
      msg = { rid: rid, cmd: cmd, status: status, selfTest: st };
    }
  } else {
    msg = { rid: rid, cmd: cmd, status: status };
  }
  if (msg === undefined) {
    return repResult(STATUS_BAD_LENGTH, rid, cmd, undefined);
  }
  const verdict = checkReply(msg);
  if (verdict !== STATUS_OK) {
    return repResult(verdict, rid, cmd, undefined);
  }
  return repResult(STATUS_OK, rid, cmd, msg);
}
