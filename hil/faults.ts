/**
 * Faults the emulated board can be given, each one something a real NodeMCU
 * ESP32 keyfob can meet, so HIL runs (`fobkit emu --fault NAME`) and tests
 * can show the firmware failing closed. A fault is a property of the board
 * or its build, switched on at construction (or later through
 * Emulator.setFault / the `fault` stdin command).
 */

export const FAULTS = {
  "i2c-timeout":
    "the I2C bus is dead: i2c.transfer(id, to_ms) blocks Lua max(to_ms, 1000) ms and raises \"i2c timeout\" (ESP_ERR_TIMEOUT); without to_ms it never returns (portMAX_DELAY) and the board hangs (hil/nodemcu/i2c.ts)",
  "no-spi": "the firmware build lacks the spi module (components/modules/Kconfig NODEMCU_CMODULE_SPI defaults to n): `spi` is nil",
  "no-rtcmem": "the firmware build lacks the rtcmem module (Kconfig NODEMCU_CMODULE_RTCMEM defaults to n): `rtcmem` is nil",
  "oom-at-load": "loading the image's core (fobkit.lc, or fobkit.lua) or node.compile runs out of heap: it raises \"not enough memory\" (lauxlib/ldo LUA_ERRMEM)",
  "flash-full": "SPIFFS has no free page left: every write that needs a new page fails with ENOSPC (at the buffered flush, so often only at close)",
  "close-error": "the flush at close fails (EIO): the last buffered bytes never reach flash and f:close() returns nil, message, errno",
} as const;

export type Fault = keyof typeof FAULTS;

export const FAULT_NAMES = Object.keys(FAULTS) as Fault[];

export function isFault(name: string): name is Fault {
  return Object.hasOwn(FAULTS, name);
}

/** "--fault" help: one line per fault. */
export function faultHelp(indent = "  "): string {
  return FAULT_NAMES.map((f) => `${indent}${f.padEnd(12)} ${FAULTS[f]}`).join("\n");
}
