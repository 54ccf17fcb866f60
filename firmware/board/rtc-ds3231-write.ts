/** @noSelfInFile */
/**
 * Setting the DS3231 (rtc-ds3231.ts describes the chip and the bus): only
 * provisioning sets the clock, so this lives in fobkit-prov with the
 * provisioning board (nodemcu-provisioning-board.ts), not in the core.
 */
import { idiv } from "../../core/intrinsics.js";
import { civilFromTime, type UnixTime } from "../../core/time.js";
import { BOARD_ERR_ARG, BOARD_ERR_RTC_ABSENT, BOARD_ERR_RTC_BUS, BOARD_ERR_RTC_RANGE, BOARD_OK } from "./status.js";
import { CONTROL_DEFAULT, DS3231_ADDRESS, ensureBus, I2C_TIMEOUT_MS, REG_CONTROL, REG_SECONDS, RTC_YEAR_FIRST, RTC_YEAR_LAST } from "./rtc-ds3231.js";

function toBcd(v: number): number {
  return (idiv(v, 10) << 4) | v % 10;
}

/** The write transaction; may raise. Whether the chip ACKed. */
function transferWrite(first: number, values: number[]): boolean {
  ensureBus();
  const id = i2c.HW0;
  i2c.start(id);
  i2c.address(id, DS3231_ADDRESS, i2c.TRANSMITTER);
  i2c.write(id, first, values);
  i2c.stop(id);
  const [, ack] = i2c.transfer(id, I2C_TIMEOUT_MS);
  return ack;
}

function writeRegisters(first: number, values: number[]): number {
  const [ok, ack] = pcall(transferWrite, first, values);
  if (!ok) {
    return BOARD_ERR_RTC_BUS;
  }
  if (!ack) {
    return BOARD_ERR_RTC_ABSENT;
  }
  return BOARD_OK;
}

/**
 * Set the time (24-hour mode) and clear OSF. The time registers are written
 * before OSF is cleared, in two transactions: a cut between them leaves OSF
 * set, i.e. "time invalid", never a half-written time marked valid.
 */
export function rtcWrite(t: UnixTime): number {
  const c = civilFromTime(t);
  if (typeof c === "number") {
    return BOARD_ERR_ARG;
  }
  if (c.year < RTC_YEAR_FIRST || c.year > RTC_YEAR_LAST) {
    return BOARD_ERR_RTC_RANGE;
  }
  // ISO weekday in the chip's 1..7 day register (c.weekday: 0 = Sunday).
  let weekday = c.weekday;
  if (weekday === 0) {
    weekday = 7;
  }
  const st = writeRegisters(REG_SECONDS, [
    toBcd(c.second),
    toBcd(c.minute),
    toBcd(c.hour),
    weekday,
    toBcd(c.day),
    toBcd(c.month), // century bit 0: years 2000..2099 only
    toBcd(c.year - 2000),
  ]);
  if (st !== BOARD_OK) {
    return st;
  }
  // Control: oscillator on battery enabled. Status: OSF cleared, and the
  // 32 kHz output off (it is on after power-up and only costs battery).
  return writeRegisters(REG_CONTROL, [CONTROL_DEFAULT, 0x00]);
}
