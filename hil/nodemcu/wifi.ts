/**
 * `wifi` (wifi.c, wifi_sta.c of dev-esp32), only as far as the board uses it:
 * the station MAC (the hardware id) and switching the radio on and off around
 * a random draw. The radio state is tracked so the RNG model can tell a true
 * random draw from a pseudo-random one.
 */
import { lauxlib, lua, pushText, raise } from "../fengari.js";
import type { Machine } from "../machine.js";

const NULLMODE = 0;
const STATION = 1;
const SOFTAP = 2;
const STATIONAP = 3;

export interface Radio {
  readonly on: boolean;
}

export function installWifi(m: Machine): Radio {
  let mode = NULLMODE;
  let started = false;
  m.defineModule("wifi", {
    NULLMODE,
    STATION,
    SOFTAP,
    STATIONAP,
    mode: (L) => {
      const next = lauxlib.luaL_checkinteger(L, 1);
      if (![NULLMODE, STATION, SOFTAP, STATIONAP].includes(next)) raise(L, `invalid wifi mode ${next}`);
      mode = next;
      // wifi.c:61-78: returns nothing (0 results) on success.
      return 0;
    },
    start: () => {
      started = true;
      return 0;
    },
    stop: () => {
      started = false;
      return 0;
    },
  });
  // wifi.sta as a strict sub-table
  lua.lua_getglobal(m.L, "wifi");
  m.pushStrictTable("wifi.sta", {
    getmac: (L) => {
      pushText(L, Array.from(m.hw.mac, (b) => b.toString(16).padStart(2, "0")).join(":"));
      return 1;
    },
  });
  lua.lua_setfield(m.L, -2, "sta");
  lua.lua_pop(m.L, 1);
  return {
    get on() {
      return started && mode !== NULLMODE;
    },
  };
}
