/**
 * `node` (node.c of dev-esp32): restart and heap; dsleep, sleep and bootreason in sleep.ts. There is no node.random on
 * ESP32; reading it fails loudly like any other missing function.
 */
import { lua } from "../fengari.js";
import type { Machine } from "../machine.js";
import { sleepFunctions } from "./sleep.js";

export function installNode(m: Machine): void {
  m.defineModule("node", {
    restart: () => m.halt("restart"),
    heap: (L) => {
      // fengari cannot measure its heap; this is the configured figure.
      lua.lua_pushinteger(L, m.hw.freeHeap);
      return 1;
    },
    // dsleep, sleep, bootreason: sleep.ts (issue 12).
    ...sleepFunctions(m),
  });
}
