/**
 * `node.dsleep`, `node.sleep` and `node.bootreason` (components/modules/node.c
 * of dev-esp32 at 7c5bb151), the ESP32's deep and light sleep as NodeMCU
 * reaches them. docs/power.md §1-2 has the contract this follows.
 *
 * node.dsleep (node.c:315-412):
 * - a number is a timer wake in µs (node.c:322-325); a table reads us/secs
 *   (node.c:210-222), gpio (a number, or a list ending at the first 0 or nil,
 *   node.c:329-346), pull, isolate, level, touch through common.c's opt_*
 *   helpers, whose type errors read "bad option NAME to 'dsleep' (T expected,
 *   got U)" (common.c:5-37) and "(must be in range 0-1)" for level
 *   (common.c:50-62); anything else is luaL_argerror "Expected integer or
 *   table" (node.c:403).
 * - every pin below GPIO_PIN_COUNT (40) must be an RTC GPIO (node.c:348-355,
 *   rtc_io_periph.c:10-49 of ESP-IDF e7771c75), else "Pin N is not an RTC GPIO
 *   and cannot be used for wakeup"; 40..63 pass node.c but ESP-IDF's
 *   esp_sleep_enable_ext1_wakeup refuses them with ESP_ERR_INVALID_ARG (258,
 *   sleep_modes.c:1417-1441), raised as node.c:391-393 words it. A pin below 0
 *   or above 63 is an undefined shift in node.c:334/343: refused here.
 * - gpio wake is ext1 (node.c:382-394): level 1 ANY_HIGH, level 0 ALL_LOW on
 *   the ESP32. Level-triggered: if it already holds at sleep entry the chip
 *   wakes at once (the emulator's DeepSleep evaluates it then).
 * - it never returns (node.c:409-411) and no pcall catches it: the machine
 *   halts ("deep-sleep") and the Emulator takes the chip down (deep-sleep.ts).
 *
 * node.sleep (node.c:234-312): light sleep, RAM and driven pins kept; returns
 * the wake cause (ESP_SLEEP_WAKEUP_TIMER = 4, esp_sleep.h). Options in
 * node.c's order (uart :241-259, gpio :271-276, us/secs :210-222 and
 * :279-282, touch :286-291, ulp :294-299), each type-checked by common.c's
 * opt_* helpers (common.c:5-74). A timer sleep of LIGHT_SLEEP_MIN_US or less
 * is refused as ESP-IDF refuses it (node.c:302-307). Only the timer
 * wake is emulated; uart/gpio/touch/ulp wake raise "not emulated".
 *
 * node.bootreason (node.c:58-159): rawinfo and ROM reset reason + 7
 * (node.c:152-153), plus panicval after a software CPU reset (node.c:154-156).
 */
import { argError, bytesText, lauxlib, lua, raise, toLuaString, type LuaJsFunction, type LuaState } from "../fengari.js";
import type { Machine } from "../machine.js";

/** ESP32 RTC GPIOs: the entries of rtc_io_num_map that are not -1 (ESP-IDF components/soc/esp32/rtc_io_periph.c:10-49). */
export const RTC_GPIOS: ReadonlySet<number> = new Set([0, 2, 4, 12, 13, 14, 15, 25, 26, 27, 32, 33, 34, 35, 36, 37, 38, 39]);
/** SOC_GPIO_PIN_COUNT on the ESP32: node.c:349 loops below it. */
export const GPIO_PIN_COUNT = 40;
/** ESP_ERR_INVALID_ARG (esp_err.h: 0x102). */
const ESP_ERR_INVALID_ARG = 258;
/**
 * The shortest timer light sleep the emulator lets through, in µs (shorter or
 * equal: refused). ESP-IDF's esp_light_sleep_start (components/esp_hw_support/
 * sleep_modes.c, the v5.x function NodeMCU's e7771c75 builds) refuses when
 * sleep_duration - sleep_time_adjustment <= RTC_CNTL_MIN_SLP_VAL_MIN slow-clock
 * cycles, where sleep_time_adjustment = LIGHT_SLEEP_TIME_OVERHEAD_US (60 on the
 * ESP32) + the measured entry overhead + sleep_time_overhead_out (measured after
 * each sleep; DEFAULT_SLEEP_OUT_OVERHEAD_US 476 before the first without
 * CONFIG_PM_SLP_IRAM_OPT) + the XTAL/8M wait cycles. The board's threshold is
 * therefore some 550 to 700 µs and moves from sleep to sleep; the emulator
 * refuses everything up to 1 ms, never less than a board would. ESTIMATE: the
 * line numbers of that ESP-IDF commit are not mirrored here.
 */
export const LIGHT_SLEEP_MIN_US = 1000;
/** esp_sleep_wakeup_cause_t ESP_SLEEP_WAKEUP_TIMER (esp_sleep.h): what node.sleep returns after a timer wake. */
export const ESP_SLEEP_WAKEUP_TIMER = 4;
/** Key of Machine.state under which node.dsleep leaves its request for the Emulator. */
export const DSLEEP_STATE = "node.dsleep";

/** node.bootreason()'s values per reset (docs/power.md §1 table, node.c:103-156). */
export const BOOT_REASONS = {
  "power-on": [1, 8],
  "deep-sleep": [3, 12],
  "brown-out": [3, 22],
  software: [2, 19, 0],
} as const;
export type ResetKind = keyof typeof BOOT_REASONS;

/** What node.dsleep asked for: the wake sources ESP-IDF was given. */
export interface DeepSleepRequest {
  /** ext1 wake pins (empty: no gpio wake). */
  pins: number[];
  /** 1: ANY_HIGH, 0: ALL_LOW (node.c:383-389). */
  level: 0 | 1;
  /** Timer wake after this many µs, if enabled. */
  timerUs: number | undefined;
  pull: boolean;
  touch: boolean;
}

/** What the sleep functions reach outside the Lua state (Hardware.sleep). */
export interface SleepHardware {
  /** node.bootreason()'s values for this boot. */
  bootReason(): readonly number[];
  /** Light sleep: virtual time passes by ms while Lua is paused; pins and RAM stay. */
  lightSleep(ms: number): void;
}

/** opt_get (common.c:17-37) on the options table at index 1. Leaves the value pushed when present. */
function optGet(L: LuaState, fn: string, name: string, type: number): boolean {
  lua.lua_getfield(L, 1, toLuaString(name));
  const t = lua.lua_type(L, -1);
  if (t === lua.LUA_TNIL) {
    lua.lua_pop(L, 1);
    return false;
  }
  if (t !== type) {
    const want = lua.lua_typename(L, type);
    const got = lua.lua_typename(L, t);
    // common.c:5-14 opt_error: luaL_error, whose luaL_where(L, 1) names the Lua caller (init.lua:N:).
    raise(L, `bad option ${name} to '${fn}' (${bytesText(want)} expected, got ${bytesText(got)})`);
  }
  return true;
}

function optInt(L: LuaState, fn: string, name: string, dflt: number): number {
  if (!optGet(L, fn, name, lua.LUA_TNUMBER)) return dflt;
  const v = lua.lua_tointeger(L, -1);
  lua.lua_pop(L, 1);
  // lua_tointeger of a float without an integer value is 0; opt_checkint stores it in a C int.
  return typeof v === "number" ? v | 0 : 0;
}

function optBool(L: LuaState, fn: string, name: string, dflt: boolean): boolean {
  if (!optGet(L, fn, name, lua.LUA_TBOOLEAN)) return dflt;
  const v = lua.lua_toboolean(L, -1);
  lua.lua_pop(L, 1);
  return v;
}

/** node_sleep_get_time_options (node.c:210-222): µs, or undefined when neither us nor secs is given. */
function timeOptions(L: LuaState, fn: string): number | undefined {
  lua.lua_getfield(L, 1, toLuaString("us"));
  lua.lua_getfield(L, 1, toLuaString("secs"));
  const present = !lua.lua_isnil(L, -2) || !lua.lua_isnil(L, -1);
  lua.lua_pop(L, 2);
  if (!present) return undefined;
  return optInt(L, fn, "us", 0) + optInt(L, fn, "secs", 0) * 1_000_000;
}

/** A pin number node.c shifts 1ULL by (node.c:334, 343). */
function shiftablePin(L: LuaState, pin: number): number {
  if (pin < 0 || pin > 63) raise(L, `NodeMCU emulator: node.dsleep gpio ${pin}: node.c computes 1ULL << ${pin}, undefined in C; refused`);
  return pin;
}

function integerAt(L: LuaState, idx: number): number {
  const v = lua.lua_tointeger(L, idx);
  return typeof v === "number" ? v : 0;
}

/** The sleep entries of the node module. */
export function sleepFunctions(m: Machine): Record<string, LuaJsFunction> {
  return {
    bootreason: (L) => {
      const values = m.hw.sleep.bootReason();
      for (const v of values) lua.lua_pushinteger(L, v);
      return values.length;
    },

    sleep: (L) => {
      lua.lua_settop(L, 1);
      lauxlib.luaL_checktype(L, 1, lua.LUA_TTABLE);
      lua.lua_getfield(L, 1, toLuaString("uart"));
      const uartType = lua.lua_type(L, -1);
      lua.lua_pop(L, 1);
      if (uartType === lua.LUA_TNUMBER || uartType === lua.LUA_TTABLE) raise(L, "NodeMCU emulator: node.sleep's uart wake is not emulated");
      if (uartType !== lua.LUA_TNIL) raise(L, "bad option uart to 'sleep' (must be integer or table)");
      if (optBool(L, "sleep", "gpio", false)) raise(L, "NodeMCU emulator: node.sleep's gpio wake is not emulated");
      const us = timeOptions(L, "sleep");
      if (optBool(L, "sleep", "touch", false) || optBool(L, "sleep", "ulp", false)) raise(L, "NodeMCU emulator: node.sleep's touch and ulp wakes are not emulated");
      if (us === undefined) raise(L, "NodeMCU emulator: node.sleep with no wake source would sleep until a reset; not emulated");
      if (us < 0) raise(L, `NodeMCU emulator: node.sleep us ${us}: esp_sleep_enable_timer_wakeup takes it as a uint64 (centuries); refused`);
      // esp_light_sleep_start refuses a timer sleep no longer than its own overhead with
      // ESP_ERR_SLEEP_TOO_SHORT_SLEEP_DURATION (= ESP_ERR_INVALID_ARG, 258, esp_sleep.h), and
      // node.c:305-306 raises that as "Error 258 returned from esp_light_sleep_start()".
      if (us <= LIGHT_SLEEP_MIN_US) raise(L, `Error ${ESP_ERR_INVALID_ARG} returned from esp_light_sleep_start()`);
      m.hw.sleep.lightSleep(us / 1000);
      lua.lua_pushinteger(L, ESP_SLEEP_WAKEUP_TIMER);
      return 1;
    },

    dsleep: (L) => {
      lua.lua_settop(L, 1);
      const req: DeepSleepRequest = { pins: [], level: 1, timerUs: undefined, pull: false, touch: false };
      const type = lua.lua_type(L, 1);
      if (type === lua.LUA_TNUMBER) {
        req.timerUs = integerAt(L, 1);
      } else if (type === lua.LUA_TTABLE) {
        req.timerUs = timeOptions(L, "dsleep");
        const mask = new Set<number>();
        lua.lua_getfield(L, 1, toLuaString("gpio"));
        const gtype = lua.lua_type(L, -1);
        if (gtype === lua.LUA_TNUMBER) {
          mask.add(shiftablePin(L, integerAt(L, -1)));
        } else if (gtype === lua.LUA_TTABLE) {
          for (let i = 1; ; i++) {
            lua.lua_rawgeti(L, -1, i);
            const pin = integerAt(L, -1);
            lua.lua_pop(L, 1);
            if (!pin) break; // node.c:340: the list ends at the first 0 or nil
            mask.add(shiftablePin(L, pin));
          }
        }
        lua.lua_pop(L, 1);
        const pins = [...mask].sort((a, b) => a - b);
        for (const pin of pins) {
          if (pin < GPIO_PIN_COUNT && !RTC_GPIOS.has(pin)) raise(L, `Pin ${pin} is not an RTC GPIO and cannot be used for wakeup`);
        }
        req.pull = optBool(L, "dsleep", "pull", false);
        if (optGet(L, "dsleep", "isolate", lua.LUA_TTABLE)) {
          for (let i = 1; ; i++) {
            lua.lua_rawgeti(L, -1, i);
            if (lua.lua_isnil(L, -1)) {
              lua.lua_pop(L, 1);
              break;
            }
            const pin = integerAt(L, -1);
            lua.lua_pop(L, 1);
            // rtc_gpio_isolate refuses a non-RTC pin with ESP_ERR_INVALID_ARG (driver/gpio/rtc_io.c).
            if (!RTC_GPIOS.has(pin)) raise(L, `Error ${ESP_ERR_INVALID_ARG} returned from rtc_gpio_isolate(${pin})`);
          }
          lua.lua_pop(L, 1);
        }
        const level = optInt(L, "dsleep", "level", 1);
        if (!(level >= 0 && level <= 1)) raise(L, "bad option level to 'dsleep' (must be in range 0-1)");
        req.level = level as 0 | 1;
        if (pins.length > 0) {
          if (pins.some((p) => p >= GPIO_PIN_COUNT)) raise(L, `Error ${ESP_ERR_INVALID_ARG} returned from esp_sleep_enable_ext1_wakeup`);
          req.pins = pins;
        }
        req.touch = optBool(L, "dsleep", "touch", false);
      } else {
        argError(L, 1, "Expected integer or table");
      }
      if (req.timerUs !== undefined && req.timerUs < 0) raise(L, `NodeMCU emulator: node.dsleep us ${req.timerUs}: esp_sleep_enable_timer_wakeup takes it as a uint64 (centuries); refused`);
      m.state.set(DSLEEP_STATE, req);
      return m.halt("deep-sleep");
    },
  };
}
