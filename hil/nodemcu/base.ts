/**
 * Base-library functions that touch the board on NodeMCU: print goes to the
 * console UART; dofile/loadfile/require read SPIFFS (init.lua is run through
 * them). Each as NodeMCU's Lua 5.3 does it (components/lua/lua-5.3 of
 * dev-esp32 at 7c5bb151; file and line cited below):
 * - print: tostring of each argument, tab-separated, then a newline
 *   (lbaselib.c:23-42), written to the console.
 * - loadfile(name [, mode [, env]]): a failure is returned, not raised:
 *   nil plus the message (lbaselib.c:269-292). dofile(name) raises the same
 *   message with lua_error, so no "chunk:line:" prefix (lbaselib.c:361-368).
 *   Without a name both raise "filename is NULL": on the board there is no
 *   stdin to load from (lauxlib.c:774-780).
 * - The message for a file that cannot be opened is lauxlib's errfile:
 *   "cannot open NAME: strerror(errno)" (lauxlib.c:725-731, :785); the
 *   chunk is named "@NAME" as given (lauxlib.c:783).
 * - require(name): package.loaded first, then ROM (LFS, not emulated), then
 *   the searchers (loadlib.c:612-640): preload, then package.path, which is
 *   "?.lc;?.lua" (luaconf.h:86), with each "." of the name replaced by "/"
 *   (loadlib.c:455-457, LUA_LSUBSEP): "a.b" is SPIFFS's flat name "a/b.lua".
 *   The loader gets (name, filename) (loadlib.c:513-519, :636). Not
 *   emulated: bytecode (.lc, raised as such), package.preload entries (none
 *   exist on the keyfob), the C searchers.
 */
import { lauxlib, lua, pushText, raise, toLuaString, bytesText, type LuaState } from "../fengari.js";
import type { Machine } from "../machine.js";

/** strerror texts newlib gives for fopen's failures here. */
const ENOENT_TEXT = "No such file or directory";
const ENAMETOOLONG_TEXT = "File name too long";

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

  /** luaL_loadfilex (lauxlib.c:768-810): the chunk on the stack, or the error message returned (nothing pushed). */
  const loadFromFlash = (L2: LuaState, path: string): string | undefined => {
    const name = m.hw.flash.normalize(path);
    if (name !== undefined) m.hw.flash.chargeLookup();
    const code = name === undefined ? undefined : m.hw.flash.read(name);
    if (code !== undefined) m.hw.flash.chargeRead(code.length);
    if (code === undefined) return `cannot open ${path}: ${name === undefined ? ENAMETOOLONG_TEXT : ENOENT_TEXT}`;
    return m.load(code, "@" + path);
  };
  /** luaL_optstring(L, 1, NULL), then the NULL check of luaL_loadfilex. */
  const fileName = (L2: LuaState): string => {
    if (lua.lua_isnoneornil(L2, 1)) raise(L2, "filename is NULL");
    return bytesText(lauxlib.luaL_checklstring(L2, 1));
  };

  // luaB_loadfile + load_aux (lbaselib.c:269-292)
  set("loadfile", (L2) => {
    const path = fileName(L2);
    const env = lua.lua_isnone(L2, 3) ? 0 : 3;
    const err = loadFromFlash(L2, path);
    if (err !== undefined) {
      lua.lua_pushnil(L2);
      pushText(L2, err);
      return 2;
    }
    if (env !== 0) {
      lua.lua_pushvalue(L2, env);
      if (lua.lua_setupvalue(L2, -2, 1) === null) lua.lua_pop(L2, 1);
    }
    return 1;
  });

  // ll_require (loadlib.c:612-640) with searcher_preload and searcher_Lua (loadlib.c:513-582).
  const loaded = new Map<string, number>();
  set("require", (L2) => {
    const name = bytesText(lauxlib.luaL_checklstring(L2, 1));
    lua.lua_settop(L2, 1);
    const have = loaded.get(name);
    if (have !== undefined) {
      lua.lua_rawgeti(L2, lua.LUA_REGISTRYINDEX, have);
      return 1;
    }
    let msg = `\n\tno field package.preload['${name}']`;
    let found: string | undefined;
    for (const template of ["?.lc", "?.lua"]) {
      const file = template.replace("?", name.replace(/\./g, "/"));
      const spiffs = m.hw.flash.normalize(file);
      if (spiffs !== undefined && m.hw.flash.exists(spiffs)) {
        found = file;
        break;
      }
      msg += `\n\tno file '${file}'`;
    }
    if (found === undefined) raise(L2, `module '${name}' not found:${msg}`);
    if (found.endsWith(".lc")) raise(L2, `require: ${found} is bytecode; loading .lc files is not emulated`);
    const err = loadFromFlash(L2, found);
    // checkload (loadlib.c:502-510)
    if (err !== undefined) raise(L2, `error loading module '${name}' from file '${found}':\n\t${err}`);
    lua.lua_pushvalue(L2, 1);
    pushText(L2, found);
    lua.lua_callk(L2, 2, 1, 0, null);
    if (lua.lua_isnil(L2, -1)) {
      lua.lua_pop(L2, 1);
      lua.lua_pushboolean(L2, true);
    }
    lua.lua_pushvalue(L2, -1);
    loaded.set(name, m.ref());
    return 1;
  });

  // luaB_dofile (lbaselib.c:361-368): the load error goes up with lua_error, unprefixed.
  set("dofile", (L2) => {
    const path = fileName(L2);
    lua.lua_settop(L2, 1);
    const err = loadFromFlash(L2, path);
    if (err !== undefined) {
      pushText(L2, err);
      lua.lua_error(L2);
    }
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
