/**
 * `sodium.random` (sodium.c of dev-esp32) over node:crypto. Installed only
 * when the emulated firmware has an RNG; otherwise the global `sodium` is nil,
 * as in a build without the module. A draw with the radio off is
 * pseudo-random on a real ESP32 and raises a warning event here.
 */
import { randomBytes } from "node:crypto";
import { argError, lauxlib, lua, pushBytes } from "../fengari.js";
import type { Machine } from "../machine.js";
import type { Radio } from "./wifi.js";

const MAX_BUF = 65536;

export function installSodium(m: Machine, radio: Radio): void {
  m.defineModule("sodium", {});
  lua.lua_getglobal(m.L, "sodium");
  m.pushStrictTable("sodium.random", {
    buf: (L) => {
      const n = lauxlib.luaL_checkinteger(L, 1);
      if (n < 0 || n > MAX_BUF) argError(L, 1, `byte count ${n} out of 0..${MAX_BUF}`);
      if (!radio.on) m.hw.event({ event: "warning", message: "sodium.random.buf with the radio off: only pseudo-random on a real ESP32 (call wifi.start first)" });
      pushBytes(L, new Uint8Array(randomBytes(n)));
      return 1;
    },
  });
  lua.lua_setfield(m.L, -2, "random");
  lua.lua_pop(m.L, 1);
}
