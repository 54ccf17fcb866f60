/** @noSelfInFile */
/**
 * The keyfob on the in-memory board (memory-board.ts): the real device code
 * (app/device.ts) behind the same link glue main.ts gives it on NodeMCU
 * (UART bytes -> deframer -> decodeRequest -> deviceHandle -> encodeReply ->
 * UART; button -> display), so host tests and the Lua suites talk to the
 * rules the keyfob runs and not to a copy. Never in the keyfob's image.
 *
 * The frame loop and the press are link.ts's, the same code main.ts calls;
 * keep the boot order alike.
 */
import { LINK_BAUD } from "../../protocol/codes.js";
import { newDeframer, type Deframer } from "../../protocol/framing.js";
import type { UnixTime } from "../../core/time.js";
import { RECORD_NAME } from "../app/record.js";
import { deviceBoot, PROVISION_MODULE, SHA256_MODULE, type Device } from "../app/device.js";
import { FRAME_DELIMITER, linkPress, linkReceive } from "../app/link.js";
import * as Provision from "../app/provision.js";
import * as Sha256 from "../otp/sha256.js";
import { PROVISIONING_BOARD_MODULE } from "../board/board.js";
import {
  MEMORY_BOARD as board, MEMORY_PROVISIONING_BOARD, memoryBoardAdvance, memoryBoardCompareRtc, memoryBoardCorruptRecord, memoryBoardDisplay, memoryBoardFault,
  memoryBoardFlashWrites, memoryBoardLoseRtcTime, memoryBoardPowerCycle, memoryBoardPowerOn, memoryBoardPress,
  memoryBoardReceive, memoryBoardRecord, memoryBoardRestarts, memoryBoardRtcReads, memoryBoardRtcTime, memoryBoardSetHardwareId, memoryBoardSetRecord, memoryBoardSetRtc,
  memoryBoardShownCount, memoryBoardTakeTx,
} from "./memory-board.js";

let dev: Device | undefined = undefined;
let rx: Deframer | undefined = undefined;

function onBytes(bytes: number[]): void {
  const d = dev;
  const r = rx;
  if (d === undefined || r === undefined) return;
  linkReceive(d, r, bytes);
}

function onPress(): void {
  const d = dev;
  if (d === undefined) return;
  linkPress(d);
}

/**
 * The image's other files, as main.ts's loader gives them on the keyfob: this
 * build imported provision.ts and sha256.ts, so "loading" hands their tables;
 * the board's write side is the memory board's.
 */
function loadModule(module: string): unknown {
  if (module === PROVISION_MODULE) return Provision;
  if (module === SHA256_MODULE) return Sha256;
  if (module === PROVISIONING_BOARD_MODULE) return { PROVISIONING_BOARD: MEMORY_PROVISIONING_BOARD };
  return undefined;
}

/** main.ts boot(): display dark, device state from flash and RTC, button, and the UART last. */
export function boot(): void {
  dev = undefined;
  rx = undefined;
  board.displayInit();
  board.displayOff();
  const d = deviceBoot(board, loadModule);
  rx = newDeframer();
  board.buttonStart(onPress);
  dev = d;
  board.uartStart(onBytes, LINK_BAUD, FRAME_DELIMITER);
}

/** A factory-fresh board with its RTC at t, then boot. */
export function powerOn(t: UnixTime, timeLost: boolean, rngSeed: number): void {
  memoryBoardPowerOn(t, timeLost, rngSeed);
  boot();
}

/** Power off and on (flash and RTC kept), then boot. */
export function reboot(): void {
  memoryBoardPowerCycle();
  boot();
}

/** Host bytes in; the device's reply bytes out (the UART loops back synchronously). */
export function exchange(bytes: number[]): number[] {
  memoryBoardReceive(bytes);
  return memoryBoardTakeTx();
}

/** The record's envelope on flash breaks (as a flipped bit would), then a reboot. */
export function corruptRecordAndReboot(): void {
  memoryBoardCorruptRecord(RECORD_NAME);
  reboot();
}

/** Press the button; what the display shows right after. */
export function press(): string {
  memoryBoardPress();
  return memoryBoardDisplay();
}

export {
  memoryBoardAdvance as advance,
  memoryBoardCompareRtc as compareRtc,
  memoryBoardCorruptRecord as corruptRecord,
  memoryBoardDisplay as display,
  memoryBoardFault as fault,
  memoryBoardFlashWrites as flashWrites,
  memoryBoardLoseRtcTime as loseRtcTime,
  memoryBoardRecord as record,
  memoryBoardRestarts as restarts,
  memoryBoardRtcReads as rtcReads,
  memoryBoardRtcTime as rtcTime,
  memoryBoardSetHardwareId as setHardwareId,
  memoryBoardSetRecord as setRecord,
  memoryBoardSetRtc as setRtc,
  memoryBoardShownCount as shownCount,
};
export {
  FAULT_FLASH_WRITE, FAULT_NO_RNG, FAULT_RTC_ABSENT, FAULT_RTC_BUS,
} from "./memory-board.js";
