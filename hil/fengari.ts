/**
 * Typed access to fengari (Lua 5.3 with 32-bit integers, in JS) and the few
 * value conversions the emulator needs. Lua strings are byte strings: they
 * cross as Uint8Array, never through UTF-8.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
// fengari ships no types; this module is the only place that sees `any`.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const fengari: any = require("fengari");

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const lua: any = fengari.lua;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const lauxlib: any = fengari.lauxlib;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const lualib: any = fengari.lualib;
export const toLuaString: (s: string) => Uint8Array = fengari.to_luastring;
export const toJsString: (s: Uint8Array) => string = fengari.to_jsstring;

/** A fengari lua_State. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type LuaState = any;
/** A JS function callable from Lua: reads args from the stack, returns the number of results. */
export type LuaJsFunction = (L: LuaState) => number;

/** ASCII/latin1 text to a Lua byte string (no UTF-8 expansion). */
export function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 255;
  return out;
}

export function pushBytes(L: LuaState, bytes: Uint8Array | number[]): void {
  const u = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
  lua.lua_pushlstring(L, u, u.length);
}

export function pushText(L: LuaState, s: string): void {
  pushBytes(L, latin1(s));
}

/** Argument `idx` as bytes (a Lua string, or a number converted like Lua does). */
export function checkBytes(L: LuaState, idx: number): Uint8Array {
  return lauxlib.luaL_checklstring(L, idx) as Uint8Array;
}

export function bytesText(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

/** Raise a Lua error with a plain message (no format directives interpreted). */
export function raise(L: LuaState, message: string): never {
  lauxlib.luaL_where(L, 1); // "chunk:line:" of the Lua caller, like luaL_error
  pushText(L, message);
  lua.lua_concat(L, 2);
  lua.lua_error(L);
  throw new Error("unreachable: lua_error returned");
}

/** JS value -> Lua value on the stack (numbers must be integers or finite). */
export function pushJs(L: LuaState, v: unknown): void {
  if (v === undefined || v === null) lua.lua_pushnil(L);
  else if (typeof v === "boolean") lua.lua_pushboolean(L, v);
  else if (typeof v === "number") {
    if (Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31) lua.lua_pushinteger(L, v);
    else lua.lua_pushnumber(L, v);
  } else if (typeof v === "string") pushText(L, v);
  else if (v instanceof Uint8Array) pushBytes(L, v);
  else if (Array.isArray(v)) {
    lua.lua_createtable(L, v.length, 0);
    v.forEach((x, i) => {
      pushJs(L, x);
      lua.lua_rawseti(L, -2, i + 1);
    });
  } else if (typeof v === "object") {
    lua.lua_newtable(L);
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      pushJs(L, x);
      lua.lua_setfield(L, -2, toLuaString(k));
    }
  } else throw new TypeError(`cannot pass a ${typeof v} to Lua`);
}

/** Lua value at idx -> JS: strings as latin1 text, sequences as arrays, other tables as objects. */
export function toJs(L: LuaState, idx: number, depth = 0): unknown {
  const i = lua.lua_absindex(L, idx);
  switch (lua.lua_type(L, i)) {
    case lua.LUA_TNIL:
    case lua.LUA_TNONE:
      return undefined;
    case lua.LUA_TBOOLEAN:
      return lua.lua_toboolean(L, i);
    case lua.LUA_TNUMBER:
      return lua.lua_isinteger(L, i) ? lua.lua_tointeger(L, i) : { $float: lua.lua_tonumber(L, i) };
    case lua.LUA_TSTRING:
      return bytesText(lua.lua_tolstring(L, i));
    case lua.LUA_TTABLE: {
      if (depth > 8) return "<table>";
      const n = lua.lua_rawlen(L, i);
      const arr: unknown[] = [];
      const obj: Record<string, unknown> = {};
      let count = 0;
      lua.lua_pushnil(L);
      while (lua.lua_next(L, i) !== 0) {
        count++;
        if (lua.lua_type(L, -2) === lua.LUA_TSTRING) obj[bytesText(lua.lua_tolstring(L, -2))] = toJs(L, -1, depth + 1);
        else if (lua.lua_isinteger(L, -2)) obj[String(lua.lua_tointeger(L, -2))] = toJs(L, -1, depth + 1);
        lua.lua_pop(L, 1);
      }
      if (count === n) {
        for (let k = 1; k <= n; k++) arr.push(obj[String(k)]);
        return arr;
      }
      return obj;
    }
    default:
      return `<${bytesText(lua.lua_typename(L, lua.lua_type(L, i)))}>`;
  }
}

/** luaL_argerror with a JS message. */
export function argError(L: LuaState, idx: number, message: string): never {
  lauxlib.luaL_argerror(L, idx, toLuaString(message));
  throw new Error("unreachable: luaL_argerror returned");
}

/**
 * The function on top of L's stack as stripped bytecode, as node.c:745-755
 * writes it (luaU_dump with stripping = 1); status is lua_dump's (non-zero:
 * the writer failed). The function stays on the stack.
 */
export function dumpStripped(L: LuaState): { bytes: Uint8Array; status: number } {
  const parts: Uint8Array[] = [];
  const status = lua.lua_dump(L, (_L: LuaState, b: Uint8Array, size: number) => {
    parts.push(Uint8Array.from(b.subarray(0, size)));
    return 0;
  }, null, 1);
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { bytes, status };
}
