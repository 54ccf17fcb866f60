/**
 * `node` (node.c of dev-esp32): restart, heap and compile; dsleep, sleep and
 * bootreason in sleep.ts. There is no node.random on ESP32; reading it fails
 * loudly like any other missing function.
 */
import { dumpStripped, lauxlib, lua, raise, bytesText, type LuaState } from "../fengari.js";
import type { Machine } from "../machine.js";
import { sleepFunctions } from "./sleep.js";

/**
 * Heap node.compile needs per byte of the source it compiles: the parser
 * holds every function prototype of the file with its debug information
 * (stripped only when dumped), the string table and the read buffer at once.
 * Measured on lua32 (NodeMCU's number model, lua32-heap's allocator peak
 * around node.compile): 5.5 to 8.0 bytes per byte of the minified image's
 * files (fobkit-prov.lua 3,937 B: 31,541 B of heap; fobkit.lua 17,078 B:
 * 122,915 B). The emulator takes 8.5, so it never compiles a file the board
 * could not.
 */
export const COMPILE_HEAP_PER_SOURCE_BYTE = 8.5;

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
    // node.c:718-779 node_compile(filename): NAME.lua -> NAME.lc.
    compile: (L) => compile(m, L),
  });
}

function compile(m: Machine, L: LuaState): number {
  const flash = m.hw.flash;
  const fname = bytesText(lauxlib.luaL_checklstring(L, 1));
  // node.c:729-733: the name must end in ".lua"; the output replaces "ua" by "c".
  if (fname.length < 4 || !fname.endsWith(".lua")) raise(L, "not a .lua file");
  const output = fname.slice(0, -2) + "c";
  const name = flash.normalize(fname);
  if (name !== undefined) flash.chargeLookup("load");
  const code = name === undefined ? undefined : flash.read(name);
  if (code !== undefined) flash.chargeRead(code.length);
  // node.c:740-743: luaL_loadfile's error becomes the error (lauxlib errfile: "cannot open NAME").
  if (code === undefined) raise(L, `cannot open ${fname}`);
  // The board parses the whole file in RAM: a file too big for the heap fails as LUA_ERRMEM does.
  if (code.length * COMPILE_HEAP_PER_SOURCE_BYTE > m.hw.freeHeap || m.hw.faults.has("oom-at-load")) raise(L, "not enough memory");
  const err = m.load(code, "@" + name);
  if (err !== undefined) raise(L, err);
  // node.c:745-755: luaU_dump with stripping = 1 (no debug information).
  const { bytes, status } = dumpStripped(L);
  lua.lua_pop(L, 1);
  if (status !== 0) raise(L, "writing to file failed");
  // node.c:749-753: fopen(output, "w+") creates or truncates in place (no temporary name).
  const out = flash.normalize(output);
  const opened = out === undefined ? "fail" : flash.openWrite(out, true);
  if (opened === "cut") m.halt("power-cut");
  if (out === undefined || opened !== "ok") raise(L, "cannot open/write to file");
  // node.c:755-772: a failed fwrite or fflush is "writing to file failed"; what
  // reached flash stays (a truncated .lc: loading it then fails). fclose's result is ignored.
  const r = flash.write(out, 0, bytes);
  if (r === "cut") m.halt("power-cut");
  if (r !== "ok") raise(L, "writing to file failed");
  return 0;
}

