/**
 * The `file` module (metadata only on ESP32, docs/modules/file.md) and Lua's
 * `io` library on SPIFFS, which is how dev-esp32 reads and writes contents.
 */
import { argError, lauxlib, lua, pushBytes, pushText, raise, toLuaString, bytesText, type LuaState } from "../fengari.js";
import type { Machine } from "../machine.js";

interface OpenFile {
  name: string;
  readable: boolean;
  writable: boolean;
  append: boolean;
  pos: number;
  closed: boolean;
}

const FILE_CLASS = "FILE*";

export function installFile(m: Machine): void {
  const flash = m.hw.flash;

  const checkName = (L: LuaState, idx: number): string | undefined => flash.normalize(bytesText(lauxlib.luaL_checklstring(L, idx)));

  m.defineModule("file", {
    exists: (L) => {
      const name = checkName(L, 1);
      lua.lua_pushboolean(L, name !== undefined && flash.exists(name));
      return 1;
    },
    remove: (L) => {
      const name = checkName(L, 1);
      if (name !== undefined && flash.remove(name) === "cut") m.halt("power-cut");
      return 0;
    },
    rename: (L) => {
      const from = checkName(L, 1);
      const to = checkName(L, 2);
      if (from === undefined || to === undefined) {
        lua.lua_pushboolean(L, false);
        return 1;
      }
      const r = flash.rename(from, to);
      if (r === "cut") m.halt("power-cut");
      lua.lua_pushboolean(L, r === "ok");
      return 1;
    },
    list: (L) => {
      if (!lua.lua_isnoneornil(L, 1)) raise(L, "file.list: only the default SPIFFS root is emulated");
      lua.lua_newtable(L);
      for (const [name, size] of flash.list()) {
        lua.lua_pushinteger(L, size);
        lua.lua_setfield(L, -2, toLuaString(name));
      }
      return 1;
    },
  });

  const fileMethods: Record<string, (L: LuaState) => number> = {
    read: (L) => {
      const f = m.checkObject<OpenFile>(L, 1, FILE_CLASS);
      if (f.closed) raise(L, "attempt to use a closed file");
      if (!f.readable) {
        lua.lua_pushnil(L);
        pushText(L, "Bad file descriptor");
        lua.lua_pushinteger(L, 9);
        return 3;
      }
      const data = flash.read(f.name) ?? new Uint8Array(0);
      const nargs = Math.max(1, lua.lua_gettop(L) - 1);
      let pushed = 0;
      for (let a = 0; a < nargs; a++) {
        const idx = a + 2;
        if (lua.lua_type(L, idx) === lua.LUA_TNUMBER) {
          const n = lua.lua_tointeger(L, idx);
          if (f.pos >= data.length && n > 0) {
            lua.lua_pushnil(L);
            return pushed + 1;
          }
          pushBytes(L, data.subarray(f.pos, f.pos + n));
          f.pos = Math.min(data.length, f.pos + n);
        } else {
          const fmt = lua.lua_isnoneornil(L, idx) ? "l" : bytesText(lauxlib.luaL_checklstring(L, idx)).replace(/^\*/, "");
          if (fmt.startsWith("a")) {
            pushBytes(L, data.subarray(f.pos));
            f.pos = data.length;
          } else if (fmt.startsWith("l") || fmt.startsWith("L")) {
            if (f.pos >= data.length) {
              lua.lua_pushnil(L);
              return pushed + 1;
            }
            let end = data.indexOf(10, f.pos);
            const next = end < 0 ? data.length : end + 1;
            if (end < 0) end = data.length;
            pushBytes(L, data.subarray(f.pos, fmt.startsWith("L") ? next : end));
            f.pos = next;
          } else raise(L, `file:read: format '${fmt}' is not emulated`);
        }
        pushed++;
      }
      return pushed;
    },
    write: (L) => {
      const f = m.checkObject<OpenFile>(L, 1, FILE_CLASS);
      if (f.closed) raise(L, "attempt to use a closed file");
      if (!f.writable) {
        lua.lua_pushnil(L);
        pushText(L, "Bad file descriptor");
        lua.lua_pushinteger(L, 9);
        return 3;
      }
      const n = lua.lua_gettop(L);
      for (let i = 2; i <= n; i++) {
        const t = lua.lua_type(L, i);
        if (t !== lua.LUA_TSTRING && t !== lua.LUA_TNUMBER) argError(L, i, "string expected");
        const bytes: Uint8Array = lua.lua_tolstring(L, i);
        if (f.append) f.pos = flash.read(f.name)?.length ?? 0;
        const r = flash.write(f.name, f.pos, bytes);
        if (r === "cut") m.halt("power-cut");
        f.pos += bytes.length;
      }
      lua.lua_settop(L, 1);
      return 1;
    },
    close: (L) => {
      const f = m.checkObject<OpenFile>(L, 1, FILE_CLASS);
      if (f.closed) raise(L, "attempt to use a closed file");
      f.closed = true;
      lua.lua_pushboolean(L, true);
      return 1;
    },
  };

  m.defineModule("io", {
    open: (L) => {
      const path = bytesText(lauxlib.luaL_checklstring(L, 1));
      const mode = lua.lua_isnoneornil(L, 2) ? "r" : bytesText(lauxlib.luaL_checklstring(L, 2));
      if (!/^[rwa]\+?b?$/.test(mode)) argError(L, 2, "invalid mode");
      const name = flash.normalize(path);
      const fail = (msg: string, errno: number) => {
        lua.lua_pushnil(L);
        pushText(L, `${path}: ${msg}`);
        lua.lua_pushinteger(L, errno);
        return 3;
      };
      if (name === undefined) return fail("Invalid argument", 22);
      const kind = mode[0];
      const plus = mode.includes("+");
      if (kind === "r" && !flash.exists(name)) return fail("No such file or directory", 2);
      if (kind !== "r" && flash.openWrite(name, kind === "w") === "cut") m.halt("power-cut");
      const f: OpenFile = { name, readable: kind === "r" || plus, writable: kind !== "r" || plus, append: kind === "a", pos: 0, closed: false };
      m.pushObject(L, FILE_CLASS, f, fileMethods);
      return 1;
    },
  });
}
