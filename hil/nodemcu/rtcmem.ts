/**
 * `rtcmem` (components/modules/rtcmem.c of dev-esp32 at 7c5bb151): 128 32-bit slots in
 * RTC memory declared RTC_NOINIT_ATTR (rtcmem.c:9), so they keep their values across a
 * software restart (esp_restart: node.restart, the onerror restart) but hold
 * garbage after power-on. The emulator owns the slots (they outlive a
 * Machine) and fills them with random words at every power-on.
 *
 * - read32(idx [, n]): pushes the slots idx.. (fewer at the end of the
 *   range, nothing when idx is outside 0..127 or n is 0), each as
 *   lua_pushinteger of a uint32_t: on NodeMCU's 32-bit Lua a value of 2^31
 *   or more reads back negative (rtcmem.c:11-28 rtcmem_read32, the loop at :20-22).
 * - write32(idx, v...): luaL_argcheck(idx + n <= 128, 1, "RTC mem would
 *   overrun"), each value lua_tointeger'd and stored as uint32_t
 *   (rtcmem.c:30-42 rtcmem_write32, the check at :34-35). A negative idx is not checked there either:
 *   the C code writes below the array; here that is an error, not silence.
 */
import { argError, lauxlib, lua } from "../fengari.js";
import type { Machine } from "../machine.js";

export const RTC_USER_MEM_NUM_DWORDS = 128;

export function installRtcmem(m: Machine, slots: Int32Array): void {
  if (slots.length !== RTC_USER_MEM_NUM_DWORDS) throw new RangeError(`rtcmem: ${slots.length} slots, the module has ${RTC_USER_MEM_NUM_DWORDS}`);
  m.defineModule("rtcmem", {
    read32: (L) => {
      let idx = lauxlib.luaL_checkinteger(L, 1);
      let n = lua.lua_gettop(L) < 2 ? 1 : lua.lua_tointeger(L, 2);
      let pushed = 0;
      while (n > 0 && idx >= 0 && idx < RTC_USER_MEM_NUM_DWORDS) {
        lua.lua_pushinteger(L, slots[idx++]);
        n--;
        pushed++;
      }
      return pushed;
    },
    write32: (L) => {
      let idx = lauxlib.luaL_checkinteger(L, 1);
      let n = lua.lua_gettop(L) - 1;
      if (idx + n > RTC_USER_MEM_NUM_DWORDS) argError(L, 1, "RTC mem would overrun");
      if (idx < 0) argError(L, 1, "negative index: rtcmem.c would write outside its array");
      for (let src = 2; n > 0; n--, src++) slots[idx++] = (lua.lua_tointeger(L, src) || 0) | 0;
      return 0;
    },
  });
}
