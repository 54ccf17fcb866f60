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
import { formatCode } from "../otp/hotp.js";
import type { UnixTime } from "../../core/time.js";
import { totp } from "../otp/totp.js";
import {
  ALG_SHA256, CMD_INFO, CMD_WIPE, INFO_CLOCK_SET, INFO_LOCK_SET, INFO_SEED_SET, REASON_FLASH_CORRUPT, REASON_FLASH_WRITE, REASON_NONE,
  REASON_RTC_MISSING, REASON_RTC_TIME_LOST, STATE_BLANK, STATE_ERROR, STATE_LOCKED, STATE_PROVISIONED,
  STATUS_HW_FAULT, STATUS_INTERNAL, STATUS_LOCKED, STATUS_OK,
} from "../../protocol/codes.js";
import type { DeviceInfo, Reply, Request } from "../../protocol/messages.js";
import { blankRecord, decodeRecord, RECORD_LOCKED, RECORD_NAME, RECORD_PROVISIONED, REC_CLOCK_SET, REC_SEED_SET, type TokenRecord } from "./record.js";
import { BOARD_ERR_NOT_FOUND, BOARD_ERR_RTC_TIME_LOST, BOARD_OK, HARDWARE_ID_LENGTH, PROVISIONING_BOARD_MODULE, type Board, type ProvisioningBoard } from "../board/board.js";
// Types only: provision.ts and sha256.ts are loaded at run time (provisioning(), loadModule()), never with the core.
import type * as Provision from "./provision.js";
import type * as Sha256 from "../otp/sha256.js";

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
  /**
   * The bundle's require, kept only by a keyfob that may still need
   * provision.ts (not locked at boot, or its record unreadable). A locked
   * keyfob drops it after boot, and with it every module body and export
   * table the bundle holds: only what its handlers use stays resident.
   */
  load: ModuleLoader | undefined;
}

/** The 8-byte hardware id; all zeros if the board cannot tell (INFO still answers). */
function hardwareIdOrZeros(board: Board): number[] {
  const out: number[] = [];
  if (board.hardwareId(out) === BOARD_OK && out.length === HARDWARE_ID_LENGTH) return out;
  const zeros: number[] = [];
  for (let i = 0; i < HARDWARE_ID_LENGTH; i++) zeros.push(0);
  return zeros;
}

/**
 * How a module of the image's other files is loaded: the module's table, or
 * undefined if its file is missing or broken; never raises. On the keyfob it
 * is the bundle's require under pcall (main.ts safeLoader, tools/split-bundle.ts);
 * the in-memory keyfob (firmware/sim) hands the modules it imported.
 */
export type ModuleLoader = (this: void, module: string) => unknown;

/** The bundle's name of otp/sha256.ts (its own file, fobkit-sha256.lua): it registers SHA-256 with otp/hash.ts when loaded. */
export const SHA256_MODULE = "firmware.otp.sha256";

/** Load a module of the image's other files; false if there is no loader or the file is missing or broken. */
export function loadModule(load: ModuleLoader | undefined, module: string): boolean {
  if (load === undefined) return false;
  return load(module) !== undefined;
}

/**
 * Load the record and check the RTC: what boot does. `load` is kept only
 * if the keyfob may still be provisioned (see Device.load); it comes as a
 * parameter from init.lua's call of start(), so a locked keyfob holds it
 * nowhere once boot is over.
 */
export function deviceBoot(board: Board, load?: ModuleLoader): Device {
  const dev: Device = {
    board: board, rec: blankRecord(), fault: REASON_NONE, hwid: hardwareIdOrZeros(board), now: { hi: 0, lo: 0 }, load: undefined,
  };
  const raw: number[] = [];
  const st = board.flashRead(RECORD_NAME, raw);
  if (st === BOARD_OK) {
    const rec = decodeRecord(raw);
    for (let i = 0; i < raw.length; i++) raw[i] = 0;
    if (rec === undefined) dev.fault = REASON_FLASH_CORRUPT;
    else dev.rec = rec;
    // The hash the record names, when it is not the core's SHA-1: loaded now, while boot
    // still has the loader; without it no code could be computed (fail closed: error state).
    if (rec !== undefined && rec.algorithm === ALG_SHA256 && !loadModule(load, SHA256_MODULE)) dev.fault = REASON_FLASH_CORRUPT;
  } else if (st !== BOARD_ERR_NOT_FOUND) {
    dev.fault = REASON_FLASH_CORRUPT;
  }
  // A keyfob that may still be provisioned loads the provisioning code on the
  // first request that needs it (provisioning()), not while it boots: a blank
  // boot that loaded it too would peak at 80.6 KB instead of 69.1 (goal 80,
  // bench/results/memory.json), and the time would only move from the
  // station's first write to the boot the station waits for anyway.
  if (dev.fault !== REASON_NONE || dev.rec.state !== RECORD_LOCKED) dev.load = load;
  return dev;
}

/** provisionHandle's clockReason when this request has not read the RTC (see deviceHandle). */
export const CLOCK_UNREAD = -1;

/** Read the RTC into dev.now; REASON_NONE or the RTC fault. */
export function readClock(dev: Device): number {
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

export function timeHiWord(t: UnixTime): number {
  return shr(t.hi, 16);
}

export function timeLoWord(t: UnixTime): number {
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

export function reply(req: Request, status: number): Reply {
  return { rid: req.rid, cmd: req.cmd, status: status, info: undefined, selfTest: undefined };
}

/**
 * The bundle's name of provision.ts. tools/build-firmware.ts puts that module
 * (and what only it needs) in fobkit-prov.lua and makes the bundle's require
 * load that file when asked for a module it does not hold.
 */
export const PROVISION_MODULE = "firmware.app.provision";

/** What a provisioning request needs beyond the core: provision.ts and the board's write side. */
interface Provisioning {
  module: typeof Provision;
  board: ProvisioningBoard;
}

/**
 * provision.ts and the board's ProvisioningBoard (board.ts), loaded on first
 * use; undefined if either file is missing or broken (the write is then refused).
 */
function provisioning(dev: Device): Provisioning | undefined {
  const load = dev.load;
  if (load === undefined) return undefined;
  const m = load(PROVISION_MODULE);
  if (m === undefined) return undefined;
  const b = load(PROVISIONING_BOARD_MODULE) as { PROVISIONING_BOARD: ProvisioningBoard | undefined } | undefined;
  if (b === undefined || b.PROVISIONING_BOARD === undefined) return undefined;
  return { module: m as typeof Provision, board: b.PROVISIONING_BOARD };
}

/** Handle one decoded, well-formed request. */
export function deviceHandle(dev: Device, req: Request): Reply {
  if (req.cmd === CMD_INFO) {
    const r = reply(req, STATUS_OK);
    r.info = info(dev);
    return r;
  }
  // A locked keyfob answers every write STATUS_LOCKED from here: the
  // provisioning code (provision.ts, its own file fobkit-prov.lua) is never
  // loaded on it. A corrupt record hides whether it is locked: provision.ts decides.
  if (dev.fault !== REASON_FLASH_CORRUPT && dev.rec.state === RECORD_LOCKED) return reply(req, STATUS_LOCKED);
  // protocol/SPEC.md §4: in the error state every command but INFO and WIPE is
  // HW_FAULT, checked after LOCKED and before the command's own checks (and
  // before the provisioning code is loaded). WIPE is how a corrupt record is
  // cleared. A failed write (REASON_FLASH_WRITE) is the exception SPEC §4 names:
  // the write itself may be retried, and a good one clears the state.
  //
  // What deciding it costs (one I2C transfer per RTC read; a dead bus blocks
  // for I2C's 1 s alive interval, hil/nodemcu/i2c.ts): the error state is the
  // record's fault or the clock's (currentState). The record's is known
  // without the bus, since boot (deviceBoot) or since the write that set it
  // (provision.ts commit): a faulted keyfob answers without a read. The
  // clock's is only known by reading it: the RTC can stop answering or lose
  // its time between two requests (app-suite: "an RTC that stops answering
  // mid-provisioning"), and SPEC §4 puts a keyfob whose clock is gone in the
  // error state at once, so a clock state remembered from an earlier request
  // would let a write through that §4 refuses. So the clock is read once
  // here, and this read is the one SET_CLOCK, SELF_TEST and LOCK act on
  // (provisionHandle's clockReason, dev.now): the state is decided from the
  // same reading the command uses, which each of them used to take again.
  let clockReason = CLOCK_UNREAD;
  if (req.cmd !== CMD_WIPE && dev.fault !== REASON_FLASH_WRITE) {
    if (dev.fault !== REASON_NONE) return reply(req, STATUS_HW_FAULT);
    clockReason = readClock(dev);
    if (currentState(dev, clockReason) === STATE_ERROR) return reply(req, STATUS_HW_FAULT);
  }
  const prov = provisioning(dev);
  if (prov === undefined) return reply(req, STATUS_INTERNAL);
  return prov.module.provisionHandle(dev, prov.board, req, clockReason);
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
