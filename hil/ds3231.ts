/**
 * DS3231 register model (Maxim DS3231 datasheet 19-5170): the chip's own
 * timekeeping on the emulator's virtual clock, seen through its I2C
 * registers exactly as the firmware sees them.
 *
 * - Time runs at (1 + (driftPpm - 0.1 * aging) / 1e6) seconds per virtual
 *   second: a crystal that is driftPpm fast, trimmed by the aging offset
 *   register 10h (datasheet "Aging Offset": one LSB is about 0.1 ppm, a
 *   positive value slows the oscillator).
 * - Registers 00h-06h are BCD, computed from the chip's seconds when read;
 *   12/24-hour format is remembered from the last hours write. Writing any
 *   time register rebases the clock; writing 00h resets the sub-second
 *   countdown ("The countdown chain is reset whenever the seconds register is
 *   written").
 * - The register pointer auto-increments and wraps 12h -> 00h.
 * - OSF (status 0Fh bit 7) is set when the oscillator stops: first power-up
 *   or battery removed while main power is off. Then the time registers hold
 *   their power-on values (2000-01-01 00:00:00, day 1). OSF stays set until
 *   written 0.
 * - Calendar: Gregorian via Date.UTC. The real chip treats 2100 as a leap
 *   year; no firmware write can reach 2100 (board/rtc-ds3231.ts), so the
 *   difference never shows.
 * Illogical time values (datasheet: "result in undefined operation") are
 * refused loudly instead of being modelled.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const DS3231_ADDRESS = 0x68;
const REG_COUNT = 0x13;
const REG_CONTROL = 0x0e;
const REG_STATUS = 0x0f;
const REG_AGING = 0x10;
const OSF = 0x80;
/** 2000-01-01T00:00:00Z: the time registers' power-on value. */
export const DS3231_POWER_ON_TIME = 946684800;

export interface Ds3231Options {
  /** Unix seconds the chip shows at virtual time 0. */
  unixSeconds: number;
  /** Crystal error in ppm (positive: the chip runs fast). */
  driftPpm?: number;
  /** Called when OSF changes (the Emulator keeps it in the state directory). */
  onOsfChange?: (set: boolean) => void;
}

/**
 * The DS3231's OSF, kept beside the flash in the board's state directory (a
 * name SPIFFS never lists: hil/flash.ts skips names starting with "."). The
 * chip keeps OSF on its backup cell between power-ups; no file means this
 * chip never had power: its first power-up sets OSF (datasheet, status
 * register: "the first time power is applied").
 */
export const RTC_STATE_FILE = ".ds3231.json";

/** OSF as last kept in stateDir; undefined: the chip never had power. */
export function storedOsf(stateDir: string): boolean | undefined {
  const p = join(stateDir, RTC_STATE_FILE);
  if (!existsSync(p)) return undefined;
  const v = (JSON.parse(readFileSync(p, "utf8")) as { osf?: unknown }).osf;
  if (typeof v !== "boolean") throw new Error(`${p}: "osf" must be true or false`);
  return v;
}

export function storeOsf(stateDir: string, set: boolean): void {
  writeFileSync(join(stateDir, RTC_STATE_FILE), JSON.stringify({ osf: set }) + "\n");
}

function bcd(v: number): number {
  return (Math.floor(v / 10) << 4) | v % 10;
}

function unbcd(b: number, what: string): number {
  const hi = b >> 4;
  const lo = b & 15;
  if (hi > 9 || lo > 9) throw new RangeError(`DS3231: ${what} register 0x${b.toString(16)} is not BCD (datasheet: undefined operation)`);
  return hi * 10 + lo;
}

/** ISO weekday 1..7 (Monday = 1) of a day number since 1970-01-01. */
function isoWeekday(days: number): number {
  return ((((days + 3) % 7) + 7) % 7) + 1;
}

export class Ds3231 {
  /** Chip seconds at baseAtMs (may be fractional). */
  private baseSeconds: number;
  private baseAtMs = 0;
  private driftPpm: number;
  private readonly regs = new Uint8Array(REG_COUNT);
  private hour12 = false;
  /** Weekday register minus the true ISO weekday, mod 7 (the register is user-defined). */
  private weekdayOffset = 0;
  private pointer = 0;
  /** False: the chip does not ACK (absent, or unpowered without battery). */
  present = true;
  private readonly onOsfChange: ((set: boolean) => void) | undefined;

  constructor(opts: Ds3231Options, nowMs = 0) {
    if (!Number.isFinite(opts.unixSeconds)) throw new RangeError(`DS3231: unixSeconds must be finite, got ${opts.unixSeconds}`);
    this.baseSeconds = opts.unixSeconds;
    this.baseAtMs = nowMs;
    this.driftPpm = opts.driftPpm ?? 0;
    this.onOsfChange = opts.onOsfChange;
    if (!Number.isFinite(this.driftPpm)) throw new RangeError(`DS3231: driftPpm must be finite, got ${opts.driftPpm}`);
    this.regs[REG_CONTROL] = 0x1c; // power-on: INTCN, RS2, RS1
    this.regs[REG_STATUS] = 0x08; // EN32kHz; OSF clear: a set clock (loseTime sets it: a first power-up)
    this.regs[0x11] = 25; // temperature 25.00 degC
  }

  private rate(): number {
    const aging = (this.regs[REG_AGING] << 24) >> 24;
    return 1 + (this.driftPpm - 0.1 * aging) / 1e6;
  }

  /** The chip's time in (fractional) Unix seconds at virtual time nowMs. */
  chipSeconds(nowMs: number): number {
    return this.baseSeconds + ((nowMs - this.baseAtMs) / 1000) * this.rate();
  }

  private rebase(nowMs: number, seconds: number): void {
    this.baseSeconds = seconds;
    this.baseAtMs = nowMs;
  }

  get oscillatorStopped(): boolean {
    return (this.regs[REG_STATUS] & OSF) !== 0;
  }

  private noteOsf(before: boolean): void {
    if (this.oscillatorStopped !== before) this.onOsfChange?.(this.oscillatorStopped);
  }

  /** Battery and main power both gone: the oscillator stopped, time reset, OSF set. */
  loseTime(nowMs: number): void {
    const before = this.oscillatorStopped;
    this.rebase(nowMs, DS3231_POWER_ON_TIME);
    this.hour12 = false;
    // The day register powers up as 1 whatever weekday 2000-01-01 was.
    this.weekdayOffset = (1 - isoWeekday(DS3231_POWER_ON_TIME / 86400) + 7) % 7;
    this.regs[REG_STATUS] |= OSF;
    this.regs[REG_CONTROL] = 0x1c;
    this.noteOsf(before);
  }

  setDriftPpm(nowMs: number, ppm: number): void {
    if (!Number.isFinite(ppm)) throw new RangeError(`DS3231: driftPpm must be finite, got ${ppm}`);
    this.rebase(nowMs, this.chipSeconds(nowMs));
    this.driftPpm = ppm;
  }

  /** Registers 00h-06h for the current time. */
  private timeRegisters(nowMs: number): number[] {
    const secs = Math.floor(this.chipSeconds(nowMs));
    const d = new Date(secs * 1000);
    const days = Math.floor(secs / 86400);
    const year = d.getUTCFullYear();
    const hour = d.getUTCHours();
    let hourReg: number;
    if (this.hour12) {
      const h12 = hour % 12 === 0 ? 12 : hour % 12;
      hourReg = 0x40 | (hour >= 12 ? 0x20 : 0) | bcd(h12);
    } else hourReg = bcd(hour);
    const century = year >= 2100 ? 0x80 : 0;
    const weekday = ((isoWeekday(days) - 1 + this.weekdayOffset) % 7) + 1;
    return [bcd(d.getUTCSeconds()), bcd(d.getUTCMinutes()), hourReg, weekday, bcd(d.getUTCDate()), century | bcd(d.getUTCMonth() + 1), bcd(year % 100)];
  }

  private registerValue(reg: number, time: number[]): number {
    return reg < 7 ? time[reg] : this.regs[reg];
  }

  /** An I2C read of n bytes from the register pointer. */
  read(n: number, nowMs: number): number[] {
    const time = this.timeRegisters(nowMs);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      out.push(this.registerValue(this.pointer, time));
      this.pointer = (this.pointer + 1) % REG_COUNT;
    }
    return out;
  }

  /** An I2C write: first byte sets the register pointer, the rest are written from there. */
  write(bytes: number[], nowMs: number): void {
    if (bytes.length === 0) return;
    this.pointer = bytes[0] % REG_COUNT;
    if (bytes[0] >= REG_COUNT) throw new RangeError(`DS3231: register address 0x${bytes[0].toString(16)} does not exist`);
    const time = this.timeRegisters(nowMs);
    let timeWritten = false;
    let secondsWritten = false;
    for (let i = 1; i < bytes.length; i++) {
      const reg = this.pointer;
      if (reg < 7) {
        time[reg] = bytes[i];
        timeWritten = true;
        if (reg === 0) secondsWritten = true;
      } else if (reg === REG_STATUS) {
        // OSF, A2F, A1F can only be cleared by writing 0; EN32kHz is written; BSY is read-only.
        const before = this.oscillatorStopped;
        const keep = this.regs[reg] & bytes[i] & 0x83;
        this.regs[reg] = keep | (bytes[i] & 0x08) | (this.regs[reg] & 0x04);
        this.noteOsf(before);
      } else if (reg === REG_AGING) {
        this.rebase(nowMs, this.chipSeconds(nowMs));
        this.regs[reg] = bytes[i];
      } else if (reg === 0x11 || reg === 0x12) {
        // temperature registers are read-only
      } else this.regs[reg] = bytes[i];
      this.pointer = (this.pointer + 1) % REG_COUNT;
    }
    if (timeWritten) this.setTimeRegisters(time, nowMs, secondsWritten);
  }

  private setTimeRegisters(r: number[], nowMs: number, secondsWritten: boolean): void {
    const sec = unbcd(r[0] & 0x7f, "seconds");
    const min = unbcd(r[1] & 0x7f, "minutes");
    let hour: number;
    this.hour12 = (r[2] & 0x40) !== 0;
    if (this.hour12) {
      const h = unbcd(r[2] & 0x1f, "hours");
      if (h < 1 || h > 12) throw new RangeError(`DS3231: 12-hour value ${h} out of 1..12`);
      hour = (h % 12) + (r[2] & 0x20 ? 12 : 0);
    } else hour = unbcd(r[2] & 0x3f, "hours");
    const weekday = r[3] & 7;
    const date = unbcd(r[4] & 0x3f, "date");
    const month = unbcd(r[5] & 0x1f, "month");
    const year = 2000 + unbcd(r[6], "year") + (r[5] & 0x80 ? 100 : 0);
    const ms = Date.UTC(year, month - 1, date, hour, min, sec);
    const d = new Date(ms);
    if (sec > 59 || min > 59 || hour > 23 || weekday < 1 || d.getUTCDate() !== date || d.getUTCMonth() !== month - 1) {
      throw new RangeError(`DS3231: illogical time written ${year}-${month}-${date} ${hour}:${min}:${sec} day ${weekday} (datasheet: undefined operation)`);
    }
    const days = Math.floor(ms / 86400000);
    this.weekdayOffset = (weekday - isoWeekday(days) + 7) % 7;
    const fraction = secondsWritten ? 0 : this.chipSeconds(nowMs) % 1;
    this.rebase(nowMs, ms / 1000 + fraction);
  }
}
