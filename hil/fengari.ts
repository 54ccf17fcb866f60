/**
 * Typed access to fengari (Lua 5.3 with 32-bit integers, in JS) and the few
 * value conversions the emulator needs. Lua strings are byte strings: they
 * cross as Uint8Array, never through UTF-8.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, sep } from "node:path";

const require = createRequire(import.meta.url);

/**
 * "%.7g" as C's printf writes it: NodeMCU's LUA_NUMBER_FMT for float builds
 * (nodemcu-firmware 7c5bb151 components/lua/lua-5.3/luaconf.h:248), which
 * lua_number2str uses (:220-221). Ties round to even (newlib's dtoa, as glibc).
 * Self-contained: its source text is put into fengari's luaconf.js.
 */
export function formatG7(n: number): string {
  if (Number.isNaN(n)) return new Uint8Array(new Float64Array([n]).buffer)[7] >= 128 ? "-nan" : "nan";
  if (n === Infinity) return "inf";
  if (n === -Infinity) return "-inf";
  if (n === 0) return Object.is(n, -0) ? "-0" : "0";
  const P = 7;
  const neg = n < 0;
  let a = Math.abs(n);
  // An exact tie at the 8th significant digit: JS rounds it up, printf to even.
  const long = a.toExponential(20);
  const digits = long.slice(0, 1) + long.slice(2, 22);
  if (digits[P] === "5" && /^0*$/.test(digits.slice(P + 1)) && Number(digits[P - 1]) % 2 === 0) {
    a = Number(digits.slice(0, 1) + "." + digits.slice(1, P) + long.slice(22));
  }
  const x = Number(a.toExponential(P - 1).split("e")[1]);
  let s: string;
  if (x >= -4 && x < P) {
    s = a.toFixed(P - 1 - x);
    if (s.includes(".")) s = s.replace(/0+$/, "").replace(/\.$/, "");
  } else {
    const [m, e] = a.toExponential(P - 1).split("e");
    const mant = m.includes(".") ? m.replace(/0+$/, "").replace(/\.$/, "") : m;
    const ex = Number(e);
    s = mant + "e" + (ex < 0 ? "-" : "+") + String(Math.abs(ex)).padStart(2, "0");
  }
  return (neg ? "-" : "") + s;
}

/**
 * fengari's sources, rewritten as they load so its VM has NodeMCU's number
 * model and limits (fengari 0.1.5; node_modules is never edited). Each
 * replacement must match exactly once, so a different fengari fails loudly.
 *
 * Floats: NodeMCU's Lua is built with LUA_FLOAT_FLOAT (luaconf.h:71-75, the
 * keyfob's nodemcu-build/sdkconfig.fobkit:16-17 leaves
 * CONFIG_LUA_NUMBER_DOUBLE unset), so every float the VM makes is a C float:
 * each float value is rounded to single precision where fengari creates or
 * changes one (the TValue constructor, setfltvalue, chgfltvalue: every
 * arithmetic result, constant, pushed number and loaded chunk constant), an
 * integer converted to a float is rounded (luaV_tonumber_ is cast_num,
 * lvm.c), a float for-loop's index is a float sum, and floor division floors
 * the float quotient (llimits.h luai_numidiv: floor(luai_numdiv)). + - * /
 * and sqrt computed in double and then rounded equal the float operation.
 *
 * Stack: LUAI_MAXSTACK 12000 (luaconf.h:171), not fengari's 1,000,000.
 *
 * Read-only tables: NodeMCU's libraries and modules are ROTables in flash,
 * and luaH_set / luaH_setint raise "table is readonly" for one
 * (lua-5.3/ltable.c:630-643). A fengari table with `readonly` set (markReadOnly)
 * refuses the same way in every store (luaH_setfrom: assignment, rawset,
 * lua_setfield; lua_rawseti). lua_setmetatable on a ROTable is no Lua error
 * on the board: its LUA_TTBLROF case (lapi.c:876-878) has only
 * luai_apicheck, which is lua_assert, nothing in a release build
 * (llimits.h:95, :103-104; luaconf.h:165-167 only with LUA_USE_APICHECK), and
 * falls through to the userdata case (:879-880), which writes the ROTable's
 * metatable field (the same offset as Udata's, lobject.h:382-386, :520-521,
 * :567-574) in .rodata: flash, mapped read-only (DROM; link_lua.lf and
 * ESP-IDF app.lf:5 put rodata in flash_rodata). The CPU raises a
 * LoadStoreError and the chip panics (setRomMetatableStore: Machine panics).
 *
 * Heap: every allocation site that grows the heap (a table, a new key, a
 * string, a closure, a userdata) charges its size to `L.l_G.heapCharge`
 * (Machine's heap meter, lua-heap.ts), which may raise LUA_ERRMEM there, as
 * luaM_realloc_ does on the board (lmem.c:86-94). luaH_setint has no state at
 * hand (nor has luaH_setfrom from the code generator, lcode.js addk passes
 * none): they leave their charge in the table's global state (`heapOwed`).
 */
const FENGARI_PATCHES: Record<string, [string, string][]> = {
  "lobject.js": [
    ["        this.p = null;\n        this.nupvalues = n;", "        if (L.l_G.heapCharge) L.l_G.heapCharge(L, 16 + 4 * n);\n        this.p = null;\n        this.nupvalues = n;"],
    ["        this.f = f;\n        this.nupvalues = n;", "        if (L.l_G.heapCharge) L.l_G.heapCharge(L, 16 + 8 * n);\n        this.f = f;\n        this.nupvalues = n;"],
    ["        this.metatable = null;\n        this.uservalue = new TValue(LUA_TNIL, null);", "        if (L.l_G.heapCharge) L.l_G.heapCharge(L, 24 + size);\n        this.metatable = null;\n        this.uservalue = new TValue(LUA_TNIL, null);"],
    ["constructor(type, value) {\n        this.type = type;\n        this.value = value;",
      "constructor(type, value) {\n        this.type = type;\n        this.value = type === LUA_TNUMFLT ? Math.fround(value) : value;"],
    ["this.type = LUA_TNUMFLT;\n        this.value = x;", "this.type = LUA_TNUMFLT;\n        this.value = Math.fround(x);"],
    ["lua_assert(this.type == LUA_TNUMFLT);\n        this.value = x;", "lua_assert(this.type == LUA_TNUMFLT);\n        this.value = Math.fround(x);"],
    ["case LUA_OPIDIV: return Math.floor(v1 / v2);", "case LUA_OPIDIV: return Math.floor(Math.fround(v1 / v2));"],
  ],
  "lvm.js": [
    ["const tonumber = function(o) {",
      "const tonumber = function(o) {\n    const n = tonumber_double(o);\n    return n === false ? false : Math.fround(n);\n};\nconst tonumber_double = function(o) {"],
    ["setfltvalue(Math.floor(numberop1 / numberop2))", "setfltvalue(Math.floor(Math.fround(numberop1 / numberop2)))"],
    ["let idx = L.stack[ra].value + step;", "let idx = Math.fround(L.stack[ra].value + step);"],
  ],
  "lstring.js": [
    ["    constructor(L, str) {\n        this.hash = null;",
      "    constructor(L, str) {\n        if (L && L.l_G.heapCharge) L.l_G.heapCharge(L, 17 + (str ? str.length : 0));\n        this.hash = null;"],
  ],
  "ltable.js": [
    ["        this.id = L.l_G.id_counter++;\n        this.strong = new Map();",
      "        if (L.l_G.heapCharge) L.l_G.heapCharge(L, 32);\n        this.g = L.l_G;\n        this.id = L.l_G.id_counter++;\n        this.strong = new Map();"],
    ["        let k = new lobject.TValue(LUA_TNUMINT, key);\n        let v = new lobject.TValue(value.type, value.value);\n        add(t, hash, k, v);",
      "        if (t.g) t.g.heapOwed = (t.g.heapOwed || 0) + 8;\n        let k = new lobject.TValue(LUA_TNUMINT, key);\n        let v = new lobject.TValue(value.type, value.value);\n        add(t, hash, k, v);"],
    ["        let k;\n        let kv = key.value;",
      "        if (L && L.l_G.heapCharge) L.l_G.heapCharge(L, key.ttisinteger() ? 8 : 20);\n        else if (t.g) t.g.heapOwed = (t.g.heapOwed || 0) + (key.ttisinteger() ? 8 : 20);\n        let k;\n        let kv = key.value;"],
    ["const luaH_setfrom = function(L, t, key, value) {",
      "const luaH_setfrom = function(L, t, key, value) {\n    if (t.readonly) ldebug.luaG_runerror(L, to_luastring(\"table is readonly\", true));"],
  ],
  "lapi.js": [
    ["    ltable.luaH_setint(o.value, n, L.stack[L.top - 1]);",
      "    if (o.value.readonly) ldebug.luaG_runerror(L, to_luastring(\"table is readonly\", true));\n    ltable.luaH_setint(o.value, n, L.stack[L.top - 1]);"],
    ["        case LUA_TTABLE: {\n            obj.value.metatable = mt;",
      "        case LUA_TTABLE: {\n            if (obj.value.readonly) {\n                if (L.l_G.romMetatableStore) L.l_G.romMetatableStore(L);\n                ldebug.luaG_runerror(L, to_luastring(\"setmetatable on a ROTable (the board panics: a store into flash)\", true));\n            }\n            obj.value.metatable = mt;"],
  ],
  "luaconf.js": [
    ["const conf = (process.env.FENGARICONF ? JSON.parse(process.env.FENGARICONF) : {});",
      "const conf = Object.assign(process.env.FENGARICONF ? JSON.parse(process.env.FENGARICONF) : {}, { LUAI_MAXSTACK: 12000 });"],
    ["return String(Number(n.toPrecision(14))); /* should match behaviour of LUA_NUMBER_FMT */", "return formatG7(n);"],
    ['const LUA_NUMBER_FMT  = "%.14g";', `const LUA_NUMBER_FMT  = "%.7g";\nconst formatG7 = ${formatG7.toString()};`],
  ],
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
let patchedLdo: any;

/**
 * Load a private copy of fengari with FENGARI_PATCHES applied. Any copy
 * already in require's cache (test/support/lua-vm.ts runs plain fengari as
 * one of its VMs) is set aside and put back, so neither sees the other.
 */
function loadPatchedFengari(): unknown {
  const main = require.resolve("fengari");
  const srcDir = dirname(main) + sep;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const Module = require("node:module") as any;
  const cache = require.cache;
  const setAside: [string, NodeJS.Module][] = [];
  for (const key of Object.keys(cache)) {
    if (key.startsWith(srcDir)) {
      setAside.push([key, cache[key]!]);
      delete cache[key];
    }
  }
  const plainJs = Module._extensions[".js"];
  const applied = new Set<string>();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  Module._extensions[".js"] = function (module: any, filename: string) {
    const patches = filename.startsWith(srcDir) ? FENGARI_PATCHES[basename(filename)] : undefined;
    if (!patches) {
      const r = plainJs(module, filename);
      // This copy's ldo: luaD_throw raises an error without the message handler (throwMemoryError).
      if (filename === srcDir + "ldo.js") patchedLdo = module.exports;
      return r;
    }
    let text = readFileSync(filename, "utf8");
    for (const [from, to] of patches) {
      const at = text.indexOf(from);
      if (at < 0 || text.indexOf(from, at + 1) >= 0) {
        throw new Error(`hil/fengari.ts: fengari's ${basename(filename)} does not contain ${JSON.stringify(from)} exactly once (not fengari 0.1.5?)`);
      }
      text = text.slice(0, at) + to + text.slice(at + from.length);
    }
    applied.add(basename(filename));
    module._compile(text, filename);
  };
  try {
    const loaded = require(main);
    for (const name of Object.keys(FENGARI_PATCHES)) {
      if (!applied.has(name)) throw new Error(`hil/fengari.ts: fengari's ${name} was not loaded, so not patched`);
    }
    return loaded;
  } finally {
    Module._extensions[".js"] = plainJs;
    for (const key of Object.keys(cache)) if (key.startsWith(srcDir)) delete cache[key];
    for (const [key, m] of setAside) cache[key] = m;
  }
}

/**
 * Make the table at idx a ROTable: every later store into it raises "table
 * is readonly", as NodeMCU's ltable.c:630-643 (FENGARI_PATCHES). Reads,
 * pairs and rawget are unchanged.
 */
export function markReadOnly(L: LuaState, idx: number): void {
  if (lua.lua_type(L, idx) !== lua.LUA_TTABLE) throw new TypeError("markReadOnly: not a table");
  lua.lua_topointer(L, idx).readonly = true;
}

/**
 * What happens when Lua sets the metatable of a ROTable (setmetatable,
 * debug.setmetatable, lua_setmetatable): on the board a store into flash,
 * a CPU exception (FENGARI_PATCHES). `onStore` must not return (Machine.panic);
 * if it does, or none is set, a Lua error is raised so nothing goes on silently.
 */
export function setRomMetatableStore(L: LuaState, onStore: (L: LuaState) => never): void {
  L.l_G.romMetatableStore = onStore;
}

/**
 * Raise LUA_ERRMEM in L as luaM_realloc_ does (lmem.c:93-94): luaD_throw, so
 * no message handler runs (ldo.c:93-95 puts "not enough memory" in place).
 */
export function throwMemoryError(L: LuaState): never {
  patchedLdo.luaD_throw(L, lua.LUA_ERRMEM);
  throw new Error("unreachable: luaD_throw returned");
}

// fengari ships no types; this module is the only place that sees `any`.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const fengari: any = loadPatchedFengari();

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
