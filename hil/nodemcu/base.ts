/**
 * Base-library functions that touch the board on NodeMCU: print goes to the
 * console UART; dofile/loadfile/require read SPIFFS (init.lua is run through
 * them). Each as NodeMCU's Lua 5.3 does it (components/lua/lua-5.3 of
 * dev-esp32 at 7c5bb151; file and line cited below):
 * - print: tostring of each argument, tab-separated, then a newline
 *   (lbaselib.c:23-42), written to the console.
 * - loadfile(name [, mode [, env]]): a failure is returned, not raised:
 *   nil plus the message (lbaselib.c:269-292). mode "t", "b" or "bt" limits
 *   what loads: a binary chunk under "t" (or text under "b") is refused with
 *   "attempt to load a binary chunk (mode is 't')" (ldo.c:761-780). dofile(name) raises the same
 *   message with lua_error, so no "chunk:line:" prefix (lbaselib.c:361-368).
 *   Without a name both raise "filename is NULL": on the board there is no
 *   stdin to load from (lauxlib.c:774-780).
 * - The message for a file that cannot be opened is lauxlib's errfile:
 *   "cannot open NAME: strerror(errno)" (lauxlib.c:725-731, :785); the
 *   chunk is named "@NAME" as given (lauxlib.c:783).
 * - require(name): package.loaded first, then ROM (LFS, not emulated), then
 *   the searchers (loadlib.c:612-640): package.preload, then package.path,
 *   "?.lc;?.lua" by default (luaconf.h:86), with each "." of the name
 *   replaced by "/" (loadlib.c:455-457, LUA_LSUBSEP): "a.b" is SPIFFS's flat
 *   name "a/b.lua". The loader gets (name, filename) (loadlib.c:513-519,
 *   :636). package.loaded is the registry's _LOADED table, so a module
 *   cleared from it is loaded again, and a value put there is what require
 *   returns. Not emulated: bytecode through the path (.lc, raised as such),
 *   the ROM table, package.searchers (always preload, then the path).
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
  const loadFromFlash = (L2: LuaState, path: string, mode: string | null = null): string | undefined => {
    const name = m.hw.flash.normalize(path);
    if (name !== undefined) m.hw.flash.chargeLookup("load");
    const code = name === undefined ? undefined : m.hw.flash.read(name);
    if (code !== undefined) m.hw.flash.chargeRead(code.length);
    if (code === undefined) return `cannot open ${path}: ${name === undefined ? ENAMETOOLONG_TEXT : ENOENT_TEXT}`;
    return m.load(code, "@" + path, mode);
  };
  /** luaL_optstring(L, 1, NULL), then the NULL check of luaL_loadfilex. */
  const fileName = (L2: LuaState): string => {
    if (lua.lua_isnoneornil(L2, 1)) raise(L2, "filename is NULL");
    return bytesText(lauxlib.luaL_checklstring(L2, 1));
  };

  // luaB_loadfile + load_aux (lbaselib.c:269-292)
  set("loadfile", (L2) => {
    const path = fileName(L2);
    // lbaselib.c:288: luaL_optstring(L, 2, NULL); the chunk's first byte decides
    // binary or text, and a mode without that letter refuses it (ldo.c:761-780).
    const mode = lua.lua_isnoneornil(L2, 2) ? null : bytesText(lauxlib.luaL_checklstring(L2, 2));
    const env = lua.lua_isnone(L2, 3) ? 0 : 3;
    const err = loadFromFlash(L2, path, mode);
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

  // luaopen_package (loadlib.c:794-818), opened by NodeMCU (components/lua/common/linit.c:84):
  // package.loaded is the registry's _LOADED table (the one luaL_requiref fills with the
  // standard libraries), package.preload its _PRELOAD, package.path LUA_PATH_DEFAULT
  // "?.lc;?.lua" (luaconf.h:86). No C loaders (LUA_NODEMCU_NOCLOADERS, luaconf.h:48): no cpath.
  lua.lua_createtable(L, 0, 4);
  lauxlib.luaL_getsubtable(L, lua.LUA_REGISTRYINDEX, toLuaString("_LOADED"));
  lua.lua_setfield(L, -2, toLuaString("loaded"));
  lauxlib.luaL_getsubtable(L, lua.LUA_REGISTRYINDEX, toLuaString("_PRELOAD"));
  lua.lua_setfield(L, -2, toLuaString("preload"));
  pushText(L, "?.lc;?.lua");
  lua.lua_setfield(L, -2, toLuaString("path"));
  // LUA_DIRSEP, LUA_PATH_SEP, LUA_PATH_MARK, LUA_EXEC_DIR, LUA_IGMARK (loadlib.c:804-806).
  pushText(L, "/\n;\n?\n!\n-\n");
  lua.lua_setfield(L, -2, toLuaString("config"));
  lua.lua_pushvalue(L, -1);
  const packageRef = lauxlib.luaL_ref(L, lua.LUA_REGISTRYINDEX);
  lua.lua_setglobal(L, toLuaString("package"));

  // ll_require (loadlib.c:614-639): package.loaded first, then the searchers: preload
  // (loadlib.c:584-594), then package.path over SPIFFS (searcher_Lua, loadlib.c:513-519; the
  // path's templates split at ";" with "?" replaced by the name, its dots made "/",
  // loadlib.c:443-470). The loader's result goes into package.loaded[name]; a nil result
  // leaves whatever the module put there itself, or true. Not emulated: ROM (LFS and the
  // built-in modules' ROTables, loadlib.c:621-624): require("gpio") fails here, not on the
  // board; loading a .lc through the path (raised as such).
  set("require", (L2) => {
    const name = bytesText(lauxlib.luaL_checklstring(L2, 1));
    lua.lua_settop(L2, 1);
    lua.lua_getfield(L2, lua.LUA_REGISTRYINDEX, toLuaString("_LOADED")); // 2
    lua.lua_getfield(L2, 2, toLuaString(name));
    if (lua.lua_toboolean(L2, -1)) return 1;
    lua.lua_pop(L2, 1);
    lua.lua_rawgeti(L2, lua.LUA_REGISTRYINDEX, packageRef); // 3: package
    // searcher_preload
    if (lua.lua_getfield(L2, 3, toLuaString("preload")) !== lua.LUA_TTABLE) raise(L2, "'package.preload' must be a table");
    if (lua.lua_getfield(L2, -1, toLuaString(name)) !== lua.LUA_TNIL) {
      lua.lua_pushvalue(L2, 1);
      pushText(L2, ":preload:");
    } else {
      lua.lua_pop(L2, 2);
      let msg = `\n\tno field package.preload['${name}']`;
      if (lua.lua_getfield(L2, 3, toLuaString("path")) !== lua.LUA_TSTRING) raise(L2, "'package.path' must be a string");
      const path = bytesText(lua.lua_tolstring(L2, -1));
      lua.lua_pop(L2, 1);
      let found: string | undefined;
      for (const template of path.split(";").filter((t) => t !== "")) {
        const file = template.replace(/\?/g, name.replace(/\./g, "/"));
        const spiffs = m.hw.flash.normalize(file);
        // readable(): fopen for reading, which looks the name up (lookup charged, found or not).
        if (spiffs !== undefined) m.hw.flash.chargeLookup("load");
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
    }
    lua.lua_callk(L2, 2, 1, 0, null);
    if (!lua.lua_isnil(L2, -1)) lua.lua_setfield(L2, 2, toLuaString(name));
    else lua.lua_pop(L2, 1);
    if (lua.lua_getfield(L2, 2, toLuaString(name)) === lua.LUA_TNIL) {
      lua.lua_pushboolean(L2, true);
      lua.lua_pushvalue(L2, -1);
      lua.lua_setfield(L2, 2, toLuaString(name));
    }
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
