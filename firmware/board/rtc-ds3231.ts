/** @noSelfInFile */
/**
 * DS3231 real-time clock on I2C (Maxim DS3231 datasheet, 19-5170 Rev 10).
 *
 * Register map used (datasheet Figure 1 "Timekeeping Registers"):
 *   00h seconds  BCD 00-59          01h minutes BCD 00-59
 *   02h hours    bit 6 = 12/24 (1 = 12-hour); 12 h: bit 5 = PM, BCD 1-12;
 *                24 h: BCD 00-23
 *   03h day      1-7 (we store ISO weekday, Monday = 1)
 *   04h date     BCD 01-31          05h month BCD 01-12, bit 7 = century
 *   06h year     BCD 00-99
 *   0Eh control  EOSC bit 7 must be 0 so the oscillator runs on the battery
 *   0Fh status   OSF bit 7: the oscillator stopped at some time (first power
 *                up, or battery and main power both gone): the time is invalid
 *                until it is written again; EN32kHz bit 3.
 * The century bit extends the year to 2000-2199, but the chip counts a leap
 * year for every YY divisible by 4 ("leap year compensation valid up to
 * 2100"), so 2100 would get a February 29. Writes are therefore limited to
 * 2000-2099; a read still honours the century bit and fails on a date that
 * cannot exist.
 *
 * Every transfer passes I2C_TIMEOUT_MS: without it a dead bus blocks the
 * Lua task for good (portMAX_DELAY, i2c_hw_master.c:360-361), and the keyfob
 * would never answer again; with it the wait ends after at most about 1 s
 * (ESP-IDF's driver waits at least I2C_CMD_ALIVE_INTERVAL_TICK for an
 * interrupt, driver/i2c/i2c.c:79 and :1544-1590) and the transfer raises.
 *
 * Bus errors: i2c.transfer raises on a bus timeout or a driver error
 * (i2c_hw_master.c li2c_hw_master_transfer near 385 -> i2c_lua_checkerr:
 * "i2c timeout", "i2c driver state error"...), and i2c.setup raises when
 * the driver cannot be installed. Every transaction therefore runs under
 * pcall and a raise becomes BOARD_ERR_RTC_BUS: the app's RTC error state,
 * and the request that needed the time still gets its reply (a Lua error in
 * a UART callback would instead end in node.c's restart).
 *
 * Time for the app is the OTP core's UnixTime { hi, lo } (core/time.ts:
 * hi * 2^16 + lo seconds), converted with its integer-only civil-date code,
 * so nothing here passes 2^31 on a 32-bit Lua.
 */
import { idiv, shr } from "../../core/intrinsics.js";
import { timeFromCivil, type UnixTime } from "../../core/time.js";
import { appendStringBytes } from "./lua-bytes.js";
import { RTC_SCL_PIN, RTC_SDA_PIN } from "./pins.js";
import {
  BOARD_ERR_ARG,
  BOARD_ERR_RTC_ABSENT,
  BOARD_ERR_RTC_BUS,
  BOARD_ERR_RTC_RANGE,
  BOARD_ERR_RTC_TIME_LOST,
  BOARD_OK,
} from "./status.js";

/** 7-bit slave address 1101000b (datasheet "I2C Serial Data Bus"). */
export const DS3231_ADDRESS = 0x68;
export const REG_SECONDS = 0x00;
export const REG_CONTROL = 0x0e;
/** Control at power-on: RS2 = RS1 = INTCN = 1, EOSC = 0 (datasheet "Control Register (0Eh)"). */
export const CONTROL_DEFAULT = 0x1c;
const STATUS_OSF = 0x80;
/**
 * i2c.transfer's to_ms: a DS3231 transaction (at most 18 bytes at 100 kHz)
 * takes about 2 ms; 50 ms is five FreeRTOS ticks (CONFIG_FREERTOS_HZ 100), so
 * it never rounds down to zero ticks. Only a dead bus reaches it.
 */
export const I2C_TIMEOUT_MS = 50;
/** Registers 00h..0Fh in one read: time, alarms (ignored), control, status. */
const READ_LENGTH = 16;

/** The years the chip counts right (see the header). */
export const RTC_YEAR_FIRST = 2000;
export const RTC_YEAR_LAST = 2099;

let busReady = false;

export function ensureBus(): void {
  // NodeMCU panics when a HW interface is set up twice (i2c.md, i2c.setup).
  if (!busReady) {
    i2c.setup(i2c.HW0, RTC_SDA_PIN, RTC_SCL_PIN, i2c.FAST);
    busReady = true;
  }
}

/** A BCD byte to its value, or -1 if a nibble is not a decimal digit. */
function fromBcd(b: number): number {
  const hi = shr(b & 0xf0, 4);
  const lo = b & 0x0f;
  if (hi > 9 || lo > 9) {
    return -1;
  }
  return hi * 10 + lo;
}

/** The read transaction; may raise (see the header). The registers, or undefined without an ACK. */
function transferRead(): string | undefined {
  ensureBus();
  const id = i2c.HW0;
  i2c.start(id);
  i2c.address(id, DS3231_ADDRESS, i2c.TRANSMITTER);
  i2c.write(id, REG_SECONDS);
  i2c.start(id); // repeated start, then read from the pointer just set
  i2c.address(id, DS3231_ADDRESS, i2c.RECEIVER);
  i2c.read(id, READ_LENGTH);
  i2c.stop(id);
  const [data, ack] = i2c.transfer(id, I2C_TIMEOUT_MS);
  if (!ack) {
    return undefined;
  }
  return data;
}

function readRegisters(out: number[]): number {
  const [ok, data] = pcall(transferRead);
  if (!ok) {
    return BOARD_ERR_RTC_BUS;
  }
  if (data === undefined || data.length !== READ_LENGTH) {
    return BOARD_ERR_RTC_ABSENT;
  }
  appendStringBytes(data, out);
  return BOARD_OK;
}

/**
 * Hours register to 0..23, or -1. In 12-hour mode 12 AM is midnight and
 * 12 PM is noon.
 */
function decodeHours(reg: number): number {
  if ((reg & 0x40) !== 0) {
    const h = fromBcd(reg & 0x1f);
    if (h < 1 || h > 12) {
      return -1;
    }
    let h24 = h % 12;
    if ((reg & 0x20) !== 0) {
      h24 = h24 + 12;
    }
    return h24;
  }
  const h = fromBcd(reg & 0x3f);
  if (h > 23) {
    return -1;
  }
  return h;
}

/**
 * Read the time. BOARD_OK and out filled; BOARD_ERR_RTC_BUS (the bus raised), BOARD_ERR_RTC_ABSENT (no ACK),
 * BOARD_ERR_RTC_TIME_LOST (OSF set), BOARD_ERR_RTC_RANGE (registers not a
 * date). out is untouched on error: the app never sees a zero clock.
 */
export function rtcRead(out: UnixTime): number {
  const r: number[] = [];
  const st = readRegisters(r);
  if (st !== BOARD_OK) {
    return st;
  }
  if ((r[0x0f] & STATUS_OSF) !== 0) {
    return BOARD_ERR_RTC_TIME_LOST;
  }
  const sec = fromBcd(r[0] & 0x7f);
  const min = fromBcd(r[1] & 0x7f);
  const hour = decodeHours(r[2]);
  const day = fromBcd(r[4] & 0x3f);
  const month = fromBcd(r[5] & 0x1f);
  const yy = fromBcd(r[6]);
  if (sec < 0 || sec > 59 || min < 0 || min > 59 || hour < 0 || month < 1 || yy < 0) {
    return BOARD_ERR_RTC_RANGE;
  }
  let year = 2000 + yy;
  if ((r[5] & 0x80) !== 0) {
    year = year + 100;
  }
  const t = timeFromCivil(year, month, day, hour, min, sec);
  if (typeof t === "number") {
    return BOARD_ERR_RTC_RANGE; // e.g. a day the month does not have
  }
  out.hi = t.hi;
  out.lo = t.lo;
  return BOARD_OK;
}
