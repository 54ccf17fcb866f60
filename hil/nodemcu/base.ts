/**
 * Base-library functions that touch the board on NodeMCU: print goes to the
 * console UART; dofile/loadfile read SPIFFS (init.lua is run through them).
 */
import { lauxlib, lua, raise, toLuaString, bytesText, type LuaState } from "../fengari.js";
import type { Machine } from "../machine.js";

export function installBase(m: Machine): void {
  const L = m.L;
  const set = (name: string, impl: (L: LuaState) => number) => {
    lua.lua_pushcfunction(L, m.fn(name, impl));
    lua.lua_setglobal(L, toLuaString(name));
  };

  set("print", (L2) => {
    const n = lua.lua_gettop(L2);
    const parts: string[] = [];
    for (let i = 1; i <= n; i++) parts.push(bytesText(lauxlib.luaL_tolstring(L2, i)));
    const text = parts.join("\t") + "\n";
    m.hw.uartTx(Uint8Array.from(text, (c) => c.charCodeAt(0) & 255));
    m.hw.event({ event: "print", text: parts.join("\t") });
    return 0;
  });

  const loadFromFlash = (L2: LuaState, path: string): void => {
    const name = m.hw.flash.normalize(path);
    const code = name === undefined ? undefined : m.hw.flash.read(name);
    if (code === undefined) raise(L2, `cannot open ${path}`);
    const err = m.load(code, "@" + name);
    if (err !== undefined) raise(L2, err);
  };

  // lbaselib.c:269-296 (7c5bb151) luaB_loadfile -> load_aux: a file that is missing or does not
  // load gives nil and the message (dofile raises; loadfile does not).
  set("loadfile", (L2) => {
    const path = bytesText(lauxlib.luaL_checklstring(L2, 1));
    const name = m.hw.flash.normalize(path);
    const code = name === undefined ? undefined : m.hw.flash.read(name);
    const err = code === undefined ? `cannot open ${path}` : m.load(code, "@" + name);
    if (err === undefined) return 1;
    lua.lua_pushnil(L2);
    lua.lua_pushstring(L2, toLuaString(err));
    return 2;
  });

  // NodeMCU keeps `require` (package library); modules are "<name>.lua" on
  // SPIFFS (LFS is not emulated). TSTL bundles read the global at load time.
  const loaded = new Map<string, number>();
  set("require", (L2) => {
    const name = bytesText(lauxlib.luaL_checklstring(L2, 1));
    const have = loaded.get(name);
    if (have !== undefined) {
      lua.lua_rawgeti(L2, lua.LUA_REGISTRYINDEX, have);
      return 1;
    }
    const file = m.hw.flash.normalize(name.replace(/\./g, "_") + ".lua");
    if (file === undefined || !m.hw.flash.exists(file)) raise(L2, `module '${name}' not found (no ${name}.lua on SPIFFS; LFS is not emulated)`);
    loadFromFlash(L2, file);
    lua.lua_pushvalue(L2, 1);
    lua.lua_callk(L2, 1, 1, 0, null);
    if (lua.lua_isnil(L2, -1)) {
      lua.lua_pop(L2, 1);
      lua.lua_pushboolean(L2, true);
    }
    lua.lua_pushvalue(L2, -1);
    loaded.set(name, m.ref());
    return 1;
  });

  set("dofile", (L2) => {
    const path = bytesText(lauxlib.luaL_checklstring(L2, 1));
    lua.lua_settop(L2, 1);
    loadFromFlash(L2, path);
    lua.lua_callk(L2, 0, lua.LUA_MULTRET, 0, null);
    const nres = lua.lua_gettop(L2) - 1;
    // Remember the image's module table so tests can reach it (callImage).
    if (nres >= 1 && lua.lua_type(L2, 2) === lua.LUA_TTABLE) {
      const name = m.hw.flash.normalize(path) ?? path;
      m.unref(m.dofileResults.get(name));
      lua.lua_pushvalue(L2, 2);
      m.dofileResults.set(name, m.ref());
    }
    return nres;
  });

}
