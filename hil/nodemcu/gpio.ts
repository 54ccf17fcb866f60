/**
 * `gpio` (gpio.c of dev-esp32 at 7c5bb151): config, read, trig, write. Levels come
 * from the board model (the button pin, VBUS; other inputs read their pull;
 * an output pin reads what it drives). gpio.write (gpio.c:204-211) is
 * gpio_set_level: any non-zero level is high, and an input-only pin (34-39) or
 * a missing one is ESP_ERR_INVALID_ARG, raised as "invalid argument"
 * (gpio.c:48-52). A written level drives the pin only while it is configured
 * as an output; Hardware.gpioOut tells the board (its power switches).
 *
 * Interrupts as the source takes them: the ISR switches the pin's interrupt
 * off and posts one low-priority task carrying the level it read
 * (gpio.c:61-66, task_post_isr_low, which does not wait); the task runs the
 * Lua callback and only then switches the interrupt back on (gpio.c:226-241).
 * Edges in between are not seen: ESP-IDF's gpio_hal_intr_enable_on_core
 * clears the pin's latched status before enabling (hal/gpio_hal.c), so
 * nothing pending fires afterwards. If the low-priority queue is full the post
 * is lost and the interrupt stays off until gpio.trig is called again
 * (gpio.c:172-186 re-enables it). A level interrupt (INTR_LOW/HIGH) whose
 * level still holds when it is re-enabled fires again at once.
 */
import { argError, lauxlib, lua, raise, toLuaString, type LuaState } from "../fengari.js";
import type { Machine } from "../machine.js";

export const GPIO = {
  OUT: 2, // GPIO_MODE_OUTPUT
  IN: 1, // GPIO_MODE_INPUT
  IN_OUT: 3,
  FLOATING: 0,
  PULL_UP: 1,
  PULL_DOWN: 2,
  PULL_UP_DOWN: 3,
  INTR_NONE: 0, // gpio.md calls it INTR_DISABLE; the module table says INTR_NONE
  INTR_UP: 1,
  INTR_DOWN: 2,
  INTR_UP_DOWN: 3,
  INTR_LOW: 4,
  INTR_HIGH: 5,
} as const;

/** GPIOs that exist as pins on the ESP32 (gpio.md "GPIO Overview"); 6-11 belong to the flash. */
function validPin(pin: number): boolean {
  return Number.isInteger(pin) && pin >= 0 && pin <= 39 && ![20, 24, 28, 29, 30, 31].includes(pin) && !(pin >= 6 && pin <= 11);
}

export interface GpioPort {
  /** The board changed a pin's level: the ISR, if the pin's interrupt is on and the change matches it. */
  edge(pin: number, level: number): void;
  pull(pin: number): number;
  /** The level an output pin drives; undefined when it is not configured as an output. */
  output(pin: number): number | undefined;
}

/** postLow: task_post_isr_low; false when the queue is full (the task is lost). */
export function installGpio(m: Machine, postLow: (task: () => string | undefined) => boolean): GpioPort {
  const trig = new Map<number, { type: number; ref: number }>();
  /** Pins whose interrupt is enabled (gpio_intr_enable / gpio_intr_disable). */
  const enabled = new Set<number>();

  const matches = (type: number, level: number) =>
    (type === GPIO.INTR_UP && level === 1) ||
    (type === GPIO.INTR_DOWN && level === 0) ||
    type === GPIO.INTR_UP_DOWN ||
    (type === GPIO.INTR_LOW && level === 0) ||
    (type === GPIO.INTR_HIGH && level === 1);

  // single_pin_isr (gpio.c:61-66)
  const isr = (pin: number) => {
    enabled.delete(pin);
    const level = m.hw.gpioLevel(pin);
    postLow(() => callbackTask(pin, level));
  };

  // nodemcu_gpio_callback_task (gpio.c:226-241)
  const callbackTask = (pin: number, level: number): string | undefined => {
    const t = trig.get(pin);
    if (!t) return undefined;
    const err = m.callRef(t.ref, () => {
      lua.lua_pushinteger(m.L, pin);
      lua.lua_pushinteger(m.L, level);
      return 2;
    });
    if (m.halted) return err;
    const now = trig.get(pin);
    if (now) {
      enabled.add(pin);
      const isLevelType = now.type === GPIO.INTR_LOW || now.type === GPIO.INTR_HIGH;
      if (isLevelType && matches(now.type, m.hw.gpioLevel(pin))) isr(pin);
    }
    return err;
  };
  const pulls = new Map<number, number>();
  const dirs = new Map<number, number>();
  /** The output register (gpio_set_level), kept whatever the pin's direction. */
  const outLevels = new Map<number, number>();
  const driven = (pin: number): number | undefined => {
    const dir = dirs.get(pin);
    return dir === GPIO.OUT || dir === GPIO.IN_OUT ? (outLevels.get(pin) ?? 0) : undefined;
  };

  const checkPin = (L: LuaState, idx: number): number => {
    const pin = lauxlib.luaL_checkinteger(L, idx);
    if (!validPin(pin)) argError(L, idx, `GPIO${pin} is not a usable pin`);
    return pin;
  };

  m.defineModule("gpio", {
    ...GPIO,
    config: (L) => {
      const n = lua.lua_gettop(L);
      for (let i = 1; i <= n; i++) {
        lauxlib.luaL_checktype(L, i, lua.LUA_TTABLE);
        lua.lua_getfield(L, i, toLuaString("dir"));
        const dir = lua.lua_tointeger(L, -1);
        lua.lua_pop(L, 1);
        if (dir !== GPIO.IN && dir !== GPIO.OUT && dir !== GPIO.IN_OUT) raise(L, "gpio.config: dir must be gpio.IN, gpio.OUT or gpio.IN_OUT");
        lua.lua_getfield(L, i, toLuaString("pull"));
        const pull = lua.lua_isnil(L, -1) ? GPIO.FLOATING : lua.lua_tointeger(L, -1);
        lua.lua_pop(L, 1);
        const pins: number[] = [];
        lua.lua_getfield(L, i, toLuaString("gpio"));
        if (lua.lua_type(L, -1) === lua.LUA_TTABLE) {
          const len = lua.lua_rawlen(L, -1);
          for (let k = 1; k <= len; k++) {
            lua.lua_rawgeti(L, -1, k);
            pins.push(lua.lua_tointeger(L, -1));
            lua.lua_pop(L, 1);
          }
        } else pins.push(lauxlib.luaL_checkinteger(L, -1));
        lua.lua_pop(L, 1);
        for (const pin of pins) {
          if (!validPin(pin)) raise(L, `gpio.config: GPIO${pin} is not a usable pin`);
          if (pin >= 34 && pull !== GPIO.FLOATING) raise(L, `gpio.config: GPIO${pin} has no pull resistors (GPIO34-39)`);
          pulls.set(pin, pull);
          const was = driven(pin);
          dirs.set(pin, dir);
          const now = driven(pin);
          if (now !== undefined && now !== was) m.hw.gpioOut(pin, now);
        }
      }
      return 0;
    },
    read: (L) => {
      const pin = checkPin(L, 1);
      lua.lua_pushinteger(L, m.hw.gpioLevel(pin));
      return 1;
    },
    write: (L) => {
      const pin = lauxlib.luaL_checkinteger(L, 1);
      const level = lauxlib.luaL_checkinteger(L, 2) !== 0 ? 1 : 0;
      // GPIO_IS_VALID_OUTPUT_GPIO: an existing pin below 34.
      if (!validPin(pin) || pin >= 34) raise(L, "invalid argument");
      outLevels.set(pin, level);
      if (driven(pin) !== undefined) m.hw.gpioOut(pin, level);
      return 0;
    },
    trig: (L) => {
      const pin = checkPin(L, 1);
      const type = lua.lua_isnoneornil(L, 2) ? GPIO.INTR_NONE : lauxlib.luaL_checkinteger(L, 2);
      if (type < 0 || type > 5) argError(L, 2, "invalid interrupt type");
      const old = trig.get(pin);
      enabled.delete(pin);
      if (type === GPIO.INTR_NONE) {
        if (old) m.unref(old.ref);
        trig.delete(pin);
        return 0;
      }
      let ref = old?.ref;
      if (lua.lua_type(L, 3) === lua.LUA_TFUNCTION) {
        if (old) m.unref(old.ref);
        lua.lua_pushvalue(L, 3);
        ref = m.ref();
      }
      if (ref === undefined) raise(L, "gpio.trig: no callback given or registered");
      trig.set(pin, { type, ref });
      enabled.add(pin);
      return 0;
    },
  });

  return {
    pull: (pin) => pulls.get(pin) ?? GPIO.FLOATING,
    output: driven,
    edge(pin: number, level: number): void {
      const t = trig.get(pin);
      if (!t || !enabled.has(pin) || !matches(t.type, level)) return;
      isr(pin);
    },
  };
}
