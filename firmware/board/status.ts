/** @noSelfInFile */
/**
 * Status codes of the board layer. Every board hook returns one of these
 * (no throw: the subset has no exceptions, and a NodeMCU Lua error in a
 * callback ends in a restart; NodeMCU functions that raise are called under
 * pcall). The app maps them to its own protocol status codes.
 */

/** Success. */
export const BOARD_OK = 0;
/** A bad argument from the app (byte out of 0..255, name too long, unknown display character...). */
export const BOARD_ERR_ARG = 1;
/** The RTC did not acknowledge its I2C address: absent or dead. */
export const BOARD_ERR_RTC_ABSENT = 2;
/**
 * The RTC's oscillator stopped at some point (DS3231 status register 0Fh,
 * OSF bit 7): after a loss of main and battery power the time is meaningless.
 * Stays until the time is written again.
 */
export const BOARD_ERR_RTC_TIME_LOST = 3;
/** The RTC registers do not hold a valid date/time, or a time to write is outside 2000..2199. */
export const BOARD_ERR_RTC_RANGE = 4;
/** No random source on this board (firmware built without the sodium module). */
export const BOARD_ERR_NO_RNG = 5;
/** A flash (SPIFFS) operation failed: open, write, rename. */
export const BOARD_ERR_FLASH = 6;
/** No committed record under that name. */
export const BOARD_ERR_NOT_FOUND = 7;
/** A committed record fails its length/CRC check: corrupt flash. */
export const BOARD_ERR_CORRUPT = 8;
/** The hook was used before its start/init call. */
export const BOARD_ERR_NOT_STARTED = 9;
/**
 * The RTC's I2C bus failed: i2c.transfer or i2c.setup raised (a bus
 * timeout, a driver error; i2c_hw_master.c i2c_lua_checkerr).
 */
export const BOARD_ERR_RTC_BUS = 10;
