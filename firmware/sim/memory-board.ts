/** @noSelfInFile */
/**
 * The Board (firmware/board/board.ts) in memory: what the app runs on in host
 * tests (tsc build) and in the Lua suites (fobkit-lib.lua), so the real
 * device code is tested without a NodeMCU. Never in the keyfob's image
 * (firmware/image.ts does not import it). Trussed's PC simulator and
 * serialport's MockBinding are the pattern: the same boundary, the same rules.
 *
 * It keeps each hook's contract from board.ts and the NodeMCU drivers, so
 * the app cannot lean on a leniency the NodeMCU board lacks:
 * - flash: records by name; flashWrite replaces a record whole or not at all
 *   (flash-store.ts's write, read-back, rename), a record whose envelope
 *   fails reads as BOARD_ERR_CORRUPT (flash-store.ts near 86-94), names of
 *   1..27 characters (FLASH_NAME_MAX, near 49; the printable/no-'/' check
 *   near 64 needs string bytes, which the subset cannot read alike on Node
 *   and Lua: the app's one name passes it), at most 4096 bytes of 0..255,
 *   else BOARD_ERR_ARG;
 * - RTC: absent, bus fault and time-lost answer like rtc-ds3231.ts (out is
 *   untouched on error); a write takes years 2000..2099 only (near 207) and
 *   clears the time-lost flag, as writing the DS3231 clears OSF;
 * - displayText takes up to 8 characters (the font check of
 *   display-max7219.ts needs string bytes too, so any character passes here);
 * - display text/number/off answer BOARD_ERR_NOT_STARTED before displayInit
 *   (display-max7219.ts near 86, 115, 144), uartWrite before uartStart
 *   (uart-link.ts near 58); displayBlankAfter takes 10..600000 ms
 *   (display-timer.ts near 23: under one FreeRTOS tick the board panics);
 * - the UART delivers received bytes up to the delimiter in one call, or
 *   LUA_MAXINPUT bytes without it, as NodeMCU's uart.on("data", char) does
 *   (components/modules/uart.c near 79-87 at 7c5bb151), nothing before
 *   uartStart;
 * - rngBytes is deterministic (xorshift32 from a seed the test sets) and
 *   BOARD_ERR_NO_RNG when switched off, as a build without sodium;
 * - power (issue 12, firmware/board/power.ts): USB VBUS is present (the
 *   factory bench), so the app never sleeps here; wakeReason is a power-on;
 *   pause takes 1..600000 ms and lets that much board time pass;
 *   sleepUntilButton, which never returns on the board, is counted and returns.
 *
 * One board per VM: the subset has no classes or closures, so its state is
 * this module's. memoryBoardPowerOn() starts from factory-fresh.
 */
import { i32, idiv, shr } from "../../core/intrinsics.js";
import { addSeconds, civilFromTime, compareTime, type UnixTime } from "../../core/time.js";
import { isBytes } from "../../core/bytes.js";
import { BOOT_POWER_ON, type Board, type ProvisioningBoard } from "../board/board.js";
import {
  BOARD_ERR_ARG, BOARD_ERR_CORRUPT, BOARD_ERR_FLASH, BOARD_ERR_NO_RNG, BOARD_ERR_NOT_FOUND, BOARD_ERR_NOT_STARTED, BOARD_ERR_RTC_ABSENT,
  BOARD_ERR_RTC_BUS, BOARD_ERR_RTC_RANGE, BOARD_ERR_RTC_TIME_LOST, BOARD_OK,
} from "../board/status.js";

/** Faults a test switches with memoryBoardFault (each one a NodeMCU board can meet). */
/** No DS3231 on the bus: no ACK (rtc-ds3231.ts BOARD_ERR_RTC_ABSENT). */
export const FAULT_RTC_ABSENT = 1;
/** i2c.transfer raises (a stuck bus): BOARD_ERR_RTC_BUS. */
export const FAULT_RTC_BUS = 2;
/** Every flash write and remove fails and leaves the records as they were (SPIFFS full, a close error). */
export const FAULT_FLASH_WRITE = 3;
/** A build without the sodium module: no RNG. */
export const FAULT_NO_RNG = 4;

const NAME_MAX = 27;
/** flash-store.ts FLASH_RECORD_MAX: its envelope's length field is 16 bits, records are kept to 4 KB. */
const RECORD_MAX = 4096;
const BLANK_AFTER_MAX_MS = 600000;
/** Longest run NodeMCU's uart.on("data", char) delivers without the delimiter (uart.c, LUA_MAXINPUT-sized line buffer). */
const UART_RUN_MAX = 256;
const RTC_YEAR_FIRST = 2000;
const RTC_YEAR_LAST = 2099;
const DIGITS: string[] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const DEFAULT_HWID: number[] = [0x24, 0x0a, 0xc4, 0x4d, 0x45, 0x4d, 0x00, 0x01];

interface Flash {
  records: { [name: string]: number[] | undefined };
  /** Records whose length/CRC envelope no longer checks (flash-store.ts answers BOARD_ERR_CORRUPT). */
  corrupt: { [name: string]: boolean | undefined };
  writes: number;
}

interface State {
  // Kept across a power cycle (flash, the battery-backed RTC, faults: they are the board's).
  flash: Flash;
  rtcTime: UnixTime;
  rtcValid: boolean;
  /** Milliseconds of board time not yet a whole RTC second. */
  subMs: number;
  faults: { [fault: number]: boolean | undefined };
  rngState: number;
  // Lost at a power cycle (RAM).
  nowMs: number;
  uartOnBytes: ((bytes: number[]) => void) | undefined;
  uartDelimiter: number;
  uartPending: number[];
  tx: number[];
  onPress: ((this: void) => void) | undefined;
  displayReady: boolean;
  displayText: string;
  /** Everything the display showed since power-on, in order ("" = dark). */
  shown: string[];
  blankAtMs: number;
  restarts: number;
  hwid: number[];
  /** powerRails' last state; sleepUntilButton calls (issue 12). */
  rails: boolean;
  sleeps: number;
}

function freshState(): State {
  return {
    flash: { records: {}, corrupt: {}, writes: 0 },
    rtcTime: { hi: 0, lo: 0 },
    rtcValid: false,
    subMs: 0,
    faults: {},
    rngState: 1,
    nowMs: 0,
    uartOnBytes: undefined,
    uartDelimiter: -1,
    uartPending: [],
    tx: [],
    onPress: undefined,
    displayReady: false,
    displayText: "",
    shown: [],
    blankAtMs: -1,
    restarts: 0,
    hwid: DEFAULT_HWID,
    rails: false,
    sleeps: 0,
  };
}

let s: State = freshState();

function faultOn(f: number): boolean {
  return s.faults[f] === true;
}

function copy(a: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) out.push(a[i]);
  return out;
}

/** The name's length (flash-store.ts also refuses '/' and unprintable characters; the app's one name has none). */
function validName(name: string): boolean {
  return name.length >= 1 && name.length <= NAME_MAX;
}

function show(text: string): void {
  s.displayText = text;
  s.shown.push(text);
}

// ---- the Board's hooks ------------------------------------------------------

function uartStart(onBytes: (bytes: number[]) => void, _baud: number, delimiter: number): number {
  if (delimiter < -1 || delimiter > 255) return BOARD_ERR_ARG;
  s.uartOnBytes = onBytes;
  s.uartDelimiter = delimiter;
  s.uartPending = [];
  return BOARD_OK;
}

function uartWrite(bytes: number[]): number {
  if (s.uartOnBytes === undefined) return BOARD_ERR_NOT_STARTED;
  if (!isBytes(bytes)) return BOARD_ERR_ARG;
  for (let i = 0; i < bytes.length; i++) s.tx.push(bytes[i]);
  return BOARD_OK;
}

function rtcStatus(): number {
  if (faultOn(FAULT_RTC_BUS)) return BOARD_ERR_RTC_BUS;
  if (faultOn(FAULT_RTC_ABSENT)) return BOARD_ERR_RTC_ABSENT;
  return BOARD_OK;
}

/** rtcRead calls since the module loaded, answered or not (memoryBoardRtcReads): each is an I2C transfer on the board. */
let rtcReads = 0;

function rtcRead(out: UnixTime): number {
  rtcReads++;
  const st = rtcStatus();
  if (st !== BOARD_OK) return st;
  if (!s.rtcValid) return BOARD_ERR_RTC_TIME_LOST;
  out.hi = s.rtcTime.hi;
  out.lo = s.rtcTime.lo;
  return BOARD_OK;
}

function rtcWrite(t: UnixTime): number {
  const c = civilFromTime(t);
  if (typeof c === "number") return BOARD_ERR_ARG;
  if (c.year < RTC_YEAR_FIRST || c.year > RTC_YEAR_LAST) return BOARD_ERR_RTC_RANGE;
  const st = rtcStatus();
  if (st !== BOARD_OK) return st;
  s.rtcTime = { hi: t.hi, lo: t.lo };
  s.rtcValid = true;
  s.subMs = 0;
  return BOARD_OK;
}

function flashRead(name: string, out: number[]): number {
  if (!validName(name)) return BOARD_ERR_ARG;
  const r = s.flash.records[name];
  if (r === undefined) return BOARD_ERR_NOT_FOUND;
  if (s.flash.corrupt[name] === true) return BOARD_ERR_CORRUPT;
  for (let i = 0; i < r.length; i++) out.push(r[i]);
  return BOARD_OK;
}

function flashWrite(name: string, bytes: number[]): number {
  if (!validName(name) || bytes.length > RECORD_MAX || !isBytes(bytes)) return BOARD_ERR_ARG;
  s.flash.writes = s.flash.writes + 1;
  if (faultOn(FAULT_FLASH_WRITE)) return BOARD_ERR_FLASH;
  s.flash.records[name] = copy(bytes);
  s.flash.corrupt[name] = undefined;
  return BOARD_OK;
}

function flashRemove(name: string): number {
  if (!validName(name)) return BOARD_ERR_ARG;
  s.flash.writes = s.flash.writes + 1;
  if (faultOn(FAULT_FLASH_WRITE)) return BOARD_ERR_FLASH;
  s.flash.records[name] = undefined;
  s.flash.corrupt[name] = undefined;
  return BOARD_OK;
}

function flashExists(name: string): boolean {
  return validName(name) && s.flash.records[name] !== undefined;
}

function buttonStart(onPress: (this: void) => void): number {
  s.onPress = onPress;
  return BOARD_OK;
}

function displayInit(): number {
  s.displayReady = true;
  return BOARD_OK;
}

function displayText(text: string): number {
  if (!s.displayReady) return BOARD_ERR_NOT_STARTED;
  if (text.length > 8) return BOARD_ERR_ARG;
  show(text);
  return BOARD_OK;
}

function displayNumber(value: number, width: number): number {
  if (!s.displayReady) return BOARD_ERR_NOT_STARTED;
  if (!(width >= 1 && width <= 8 && value >= 0 && idiv(value, 1) === value)) return BOARD_ERR_ARG;
  let text = "";
  let rest = value;
  for (let i = 0; i < width; i++) {
    text = DIGITS[rest % 10] + text;
    rest = idiv(rest, 10);
  }
  if (rest !== 0) return BOARD_ERR_ARG;
  show(text);
  return BOARD_OK;
}

function displayOff(): number {
  if (!s.displayReady) return BOARD_ERR_NOT_STARTED;
  s.blankAtMs = -1;
  show("");
  return BOARD_OK;
}

function displayBlankAfter(ms: number): number {
  if (!(ms >= 10 && ms <= BLANK_AFTER_MAX_MS && idiv(ms, 1) === ms)) return BOARD_ERR_ARG;
  s.blankAtMs = s.nowMs + ms;
  return BOARD_OK;
}

function hardwareId(out: number[]): number {
  for (let i = 0; i < s.hwid.length; i++) out.push(s.hwid[i]);
  return BOARD_OK;
}

/** xorshift32 (Marsaglia 2003, shifts 13, 17, 5): deterministic test randomness, never a device's. */
function nextRandomByte(): number {
  let x = s.rngState;
  x = x ^ (x << 13);
  x = x ^ shr(x, 17);
  x = x ^ (x << 5);
  x = i32(x);
  s.rngState = x;
  return x & 255;
}

function rngBytes(out: number[], n: number): number {
  if (!(n >= 1 && n <= 64 && idiv(n, 1) === n)) return BOARD_ERR_ARG;
  if (faultOn(FAULT_NO_RNG)) return BOARD_ERR_NO_RNG;
  for (let i = 0; i < n; i++) out.push(nextRandomByte());
  return BOARD_OK;
}

function restart(): void {
  s.restarts = s.restarts + 1;
}

function powerRails(on: boolean): number {
  s.rails = on;
  return BOARD_OK;
}

function usbPresent(): boolean {
  return true;
}

function usbWatch(_onChange: (present: boolean) => void): number {
  return BOARD_OK;
}

function wakeReason(): number {
  return BOOT_POWER_ON;
}

function pause(ms: number): number {
  if (!(ms >= 1 && ms <= BLANK_AFTER_MAX_MS && idiv(ms, 1) === ms)) return BOARD_ERR_ARG;
  memoryBoardAdvance(ms);
  return BOARD_OK;
}

function sleepUntilButton(): void {
  s.sleeps = s.sleeps + 1;
}

export const MEMORY_BOARD: Board = {
  uartStart: uartStart,
  uartWrite: uartWrite,
  rtcRead: rtcRead,
  flashRead: flashRead,
  flashExists: flashExists,
  buttonStart: buttonStart,
  displayInit: displayInit,
  displayText: displayText,
  displayNumber: displayNumber,
  displayOff: displayOff,
  displayBlankAfter: displayBlankAfter,
  hardwareId: hardwareId,
  restart: restart,
  powerRails: powerRails,
  usbPresent: usbPresent,
  usbWatch: usbWatch,
  wakeReason: wakeReason,
  pause: pause,
  sleepUntilButton: sleepUntilButton,
};

/** The write side (board.ts ProvisioningBoard), on the same in-memory state. */
export const MEMORY_PROVISIONING_BOARD: ProvisioningBoard = {
  rtcWrite: rtcWrite,
  flashWrite: flashWrite,
  flashRemove: flashRemove,
  rngBytes: rngBytes,
};

// ---- the test's side: power, time, faults, the user and the host -------------

/** A factory-fresh board: empty flash, the RTC holding t (valid unless timeLost), no faults, RNG seeded. */
export function memoryBoardPowerOn(t: UnixTime, timeLost: boolean, rngSeed: number): void {
  s = freshState();
  s.rtcTime = { hi: t.hi, lo: t.lo };
  s.rtcValid = !timeLost;
  s.rngState = rngSeed === 0 ? 1 : rngSeed;
}

/** Power off and on: RAM (callbacks, display, UART buffers) is lost; flash, the RTC and faults stay. */
export function memoryBoardPowerCycle(): void {
  const keep = s;
  s = freshState();
  s.flash = keep.flash;
  s.rtcTime = keep.rtcTime;
  s.rtcValid = keep.rtcValid;
  s.subMs = keep.subMs;
  s.faults = keep.faults;
  s.rngState = keep.rngState;
  s.restarts = keep.restarts;
  s.hwid = keep.hwid;
}

/** Another chip: the hardware id hardwareId reports from now on (8 bytes). */
export function memoryBoardSetHardwareId(id: number[]): void {
  s.hwid = copy(id);
}

/** The RTC is set behind the app's back (a crystal that ran off, a test's start time); its time is valid. */
export function memoryBoardSetRtc(t: UnixTime): void {
  s.rtcTime = { hi: t.hi, lo: t.lo };
  s.rtcValid = true;
}

/** The RTC's battery is out: the next read says the time is lost (OSF), until a write. */
export function memoryBoardLoseRtcTime(): void {
  s.rtcValid = false;
}

export function memoryBoardFault(fault: number, on: boolean): void {
  s.faults[fault] = on ? true : undefined;
}

/**
 * Board time passes: the RTC ticks (whole seconds) and a display countdown
 * that ends on the way blanks the display. ms 0..2^31-1.
 */
export function memoryBoardAdvance(ms: number): void {
  s.nowMs = s.nowMs + ms;
  if (s.blankAtMs >= 0 && s.nowMs >= s.blankAtMs) {
    s.blankAtMs = -1;
    show("");
  }
  const total = s.subMs + ms;
  const seconds = idiv(total, 1000);
  s.subMs = total % 1000;
  if (seconds > 0) {
    const t = addSeconds(s.rtcTime, seconds);
    if (typeof t !== "number") s.rtcTime = t;
  }
}

/** The RTC's own time (what the chip holds, valid or not). */
export function memoryBoardRtcTime(): UnixTime {
  return { hi: s.rtcTime.hi, lo: s.rtcTime.lo };
}

/** Whether t is before the RTC's time (-1), equal (0) or after (1). */
export function memoryBoardCompareRtc(t: UnixTime): number {
  return compareTime(t, s.rtcTime);
}

/** Bytes from the host: delivered as NodeMCU does, in runs up to the delimiter; nothing before uartStart. */
export function memoryBoardReceive(bytes: number[]): void {
  const onBytes = s.uartOnBytes;
  if (onBytes === undefined) return;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (s.uartDelimiter < 0) {
      onBytes([b]);
    } else {
      s.uartPending.push(b);
      if (b === s.uartDelimiter || s.uartPending.length >= UART_RUN_MAX) {
        const run = s.uartPending;
        s.uartPending = [];
        onBytes(run);
      }
    }
  }
}

/** What the device sent since the last call. */
export function memoryBoardTakeTx(): number[] {
  const out = s.tx;
  s.tx = [];
  return out;
}

/** One debounced button press (nothing before buttonStart). */
export function memoryBoardPress(): void {
  const f = s.onPress;
  if (f !== undefined) f();
}

/** What the display shows now ("" when dark). */
export function memoryBoardDisplay(): string {
  return s.displayText;
}

/** How many texts the display showed since power-on ("" = dark counts too). */
export function memoryBoardShownCount(): number {
  return s.shown.length;
}

/** A copy of the committed record name, or undefined. */
export function memoryBoardRecord(name: string): number[] | undefined {
  const r = s.flash.records[name];
  return r === undefined ? undefined : copy(r);
}

/** Replace a record's bytes behind the app's back (its envelope still checks). */
export function memoryBoardSetRecord(name: string, bytes: number[]): void {
  s.flash.records[name] = copy(bytes);
  s.flash.corrupt[name] = undefined;
}

/** Flip bits of a committed record on the flash: its envelope no longer checks. */
export function memoryBoardCorruptRecord(name: string): void {
  if (s.flash.records[name] !== undefined) s.flash.corrupt[name] = true;
}

/** Flash writes and removes the app asked for since power-on (failed ones too). */
export function memoryBoardFlashWrites(): number {
  return s.flash.writes;
}

/** How many times the firmware has read the RTC (each an I2C transfer on the board). */
export function memoryBoardRtcReads(): number {
  return rtcReads;
}

export function memoryBoardRestarts(): number {
  return s.restarts;
}
