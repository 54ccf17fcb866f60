/**
 * The bytecode NodeMCU's node.compile writes (node.c:718-779: luaL_loadfile,
 * then luaU_dump with stripping = 1), made by fengari, the emulator's Lua:
 * the emulator loads only what its own VM dumped, as a board loads only what
 * its own node.compile wrote. Used where an image is put onto an emulated
 * board without its REPL (install.ts); on the running board node.compile is
 * hil/nodemcu/node.ts, which shares the heap rule.
 */
import { dumpStripped, lauxlib, lua, bytesText, toLuaString, type LuaState } from "./fengari.js";
import { COMPILE_HEAP_PER_SOURCE_BYTE } from "./nodemcu/node.js";

/** Default free heap of the emulated board (emulator.ts freeHeap). */
export const DEFAULT_FREE_HEAP = 120000;

/** Stripped bytecode of a source chunk; throws with the board's message if it would not compile there. */
export function compileChunk(code: Uint8Array, name: string, freeHeap = DEFAULT_FREE_HEAP): Uint8Array {
  if (code.length * COMPILE_HEAP_PER_SOURCE_BYTE > freeHeap) {
    throw new Error(`node.compile("${name}"): not enough memory (${code.length} bytes of source need about ${code.length * COMPILE_HEAP_PER_SOURCE_BYTE} of heap; the board has ${freeHeap} free)`);
  }
  const L: LuaState = lauxlib.luaL_newstate();
  if (lauxlib.luaL_loadbufferx(L, code, code.length, toLuaString("@" + name), toLuaString("t")) !== lua.LUA_OK) {
    throw new Error(`node.compile("${name}"): ${bytesText(lua.lua_tolstring(L, -1))}`);
  }
  return dumpStripped(L).bytes;
}
