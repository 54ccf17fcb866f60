/**
 * Run calls into a built Lua image on a real Lua VM and get the results back
 * as JS values. One batch interface for all four VMs the project targets:
 *
 *   fengari  - Lua 5.3, 32-bit integers (the device's integer width), doubles
 *   wasmoon  - Lua 5.4, 64-bit integers, full GC API (heap figures)
 *   lua5.3   - Debian's C Lua 5.3, 64-bit integers
 *   lua32    - Debian's lua5.3 source built with -DLUA_32BITS -m32 by
 *              scripts/setup.sh (build/lua32/lua32): 32-bit integers AND
 *              32-bit floats and pointers, NodeMCU's number model
 *
 * Values cross as text: JS -> Lua table constructors, Lua -> JSON. A float
 * coming back from Lua is returned as {$float: "..."} so a test notices float
 * contamination instead of silently comparing 1 == 1.0.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";

const require = createRequire(import.meta.url);

export type LuaVmKind = "fengari" | "wasmoon" | "lua5.3" | "lua32";
export const LUA_VMS: LuaVmKind[] = ["fengari", "wasmoon", "lua5.3", "lua32"];

/** scripts/setup.sh builds it into the project's build/ (not FOBKIT_BUILD: it is a tool, not a build output). */
export const LUA32 = resolve(import.meta.dirname, "..", "..", "build", "lua32", "lua32");

export interface LuaCall {
  /** Dotted path into the table the image returns, e.g. "otp.totp". */
  fn: string;
  /** Arguments; { $ref: i } stands for what call i (0-based, earlier in the same batch) returned, as the VM holds it. */
  args: unknown[];
}

/** An argument standing for an earlier call's result in the same batch (LuaCall.args). */
export function ref(index: number): { $ref: number } {
  return { $ref: index };
}

/** Replace { $ref: i } arguments with results[i] (the JS side of the same convention). */
export function resolveRefs(args: unknown[], results: unknown[]): unknown[] {
  return args.map((a) => (a !== null && typeof a === "object" && "$ref" in a ? results[(a as { $ref: number }).$ref] : a));
}

export type LuaResult = { ok: true; value: unknown } | { ok: false; error: string };

/** JS value -> Lua expression. Strings are byte strings (code units 0..255). */
export function toLua(v: unknown): string {
  if (v === null || v === undefined) return "nil";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new RangeError(`toLua: non-finite number ${v}`);
    if (Number.isInteger(v)) {
      if (Math.abs(v) > 2 ** 53) throw new RangeError(`toLua: integer ${v} beyond 2^53`);
      return String(v);
    }
    return v.toPrecision(17);
  }
  if (typeof v === "string") {
    let out = '"';
    for (let i = 0; i < v.length; i++) {
      const c = v.charCodeAt(i);
      if (c > 255) throw new RangeError(`toLua: string has a code unit ${c} > 255 at ${i}`);
      out += "\\" + String(c).padStart(3, "0");
    }
    return out + '"';
  }
  if (Array.isArray(v)) return "{" + v.map(toLua).join(",") + "}";
  if (typeof v === "object") {
    return "{" + Object.entries(v as Record<string, unknown>).map(([k, x]) => `[${toLua(k)}]=${toLua(x)}`).join(",") + "}";
  }
  throw new TypeError(`toLua: cannot pass a ${typeof v}`);
}

/** Lua side: JSON encoder and the batch loop. Kept free of anything 5.4-only. */
const LUA_PRELUDE = String.raw`
local function enc(v, out)
  local t = type(v)
  if v == nil then out[#out+1] = "null"
  elseif t == "boolean" then out[#out+1] = tostring(v)
  elseif t == "number" then
    if math.type(v) == "float" then out[#out+1] = '{"$float":"' .. string.format("%.17g", v) .. '"}'
    else out[#out+1] = string.format("%d", v) end
  elseif t == "string" then
    out[#out+1] = '"' .. v:gsub('[%z\1-\31\127-\255"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  elseif t == "table" then
    local n = #v
    local count = 0
    for _ in pairs(v) do count = count + 1 end
    if count == n then
      out[#out+1] = "["
      for i = 1, n do if i > 1 then out[#out+1] = "," end enc(v[i], out) end
      out[#out+1] = "]"
    else
      out[#out+1] = "{"
      local first = true
      for k, x in pairs(v) do
        if not first then out[#out+1] = "," end
        first = false
        enc(tostring(k), out) out[#out+1] = ":" enc(x, out)
      end
      out[#out+1] = "}"
    end
  else out[#out+1] = '"<' .. t .. '>"' end
end
local function json(v) local out = {} enc(v, out) return table.concat(out) end
local function lookup(root, path)
  local v = root
  for part in path:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end
function __fobkit_batch(image, calls)
  local results = {}
  local raw = {}
  for i = 1, #calls do
    local c = calls[i]
    local f = lookup(image, c[1])
    local args = c[2]
    for k = 1, c[3] do
      local a = args[k]
      if type(a) == "table" and a["$ref"] ~= nil then args[k] = raw[a["$ref"] + 1] end
    end
    local ok, res
    if type(f) ~= "function" then ok, res = false, "no function " .. c[1]
    else ok, res = pcall(f, table.unpack(args, 1, c[3])) end
    raw[i] = res
    if ok then results[i] = '{"ok":true,"value":' .. json(res) .. '}'
    else results[i] = '{"ok":false,"error":' .. json(tostring(res)) .. '}' end
  end
  return "[" .. table.concat(results, ",") .. "]"
end
`;

function batchScript(imagePath: string, calls: LuaCall[]): string {
  const list = calls.map((c) => `{${toLua(c.fn)},{${c.args.map(toLua).join(",")}},${c.args.length}}`).join(",\n");
  return `${LUA_PRELUDE}\nlocal image = dofile(${toLua(imagePath)})\nreturn __fobkit_batch(image, {${list}})\n`;
}

function parse(out: string): LuaResult[] {
  return JSON.parse(out, (_k, v) => v) as LuaResult[];
}

/** Lua strings come back as JSON strings whose code units are the bytes. */
export function bytesOf(s: string): number[] {
  return Array.from(s, (c) => c.charCodeAt(0));
}

function runFengari(script: string): string {
  const { lua, lauxlib, lualib, to_luastring } = require("fengari");
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  if (lauxlib.luaL_dostring(L, to_luastring(script)) !== 0) {
    throw new Error("fengari: " + lua.lua_tojsstring(L, -1));
  }
  return lua.lua_tojsstring(L, -1);
}

let wasmoonFactory: any;
async function runWasmoon(script: string, imagePath: string): Promise<string> {
  const { LuaFactory } = require("wasmoon");
  wasmoonFactory ??= new LuaFactory();
  // wasmoon reads files from emscripten's in-memory FS: mount the image there.
  await wasmoonFactory.mountFile(imagePath, readFileSync(imagePath));
  const engine = await wasmoonFactory.createEngine({ injectObjects: false, enableProxy: false });
  try {
    return (await engine.doString(script)) as string;
  } finally {
    engine.global.close();
  }
}

/** Run a script on a C Lua read from stdin; its last `return __fobkit_batch(...)` becomes io.write. */
export function runCLua(vm: "lua5.3" | "lua32", script: string): string {
  const exe = vm === "lua32" ? LUA32 : "lua5.3";
  const r = spawnSync(exe, ["-"], { input: script.replace(/^return (__fobkit_batch\(.*)$/ms, "io.write($1)"), maxBuffer: 1 << 30 });
  const hint = vm === "lua32" ? "scripts/setup.sh (make setup) builds build/lua32/lua32" : "make setup installs Debian's lua5.3";
  if (r.error) throw new Error(`${vm}: ${r.error.message} (${hint})`);
  if (r.status !== 0) throw new Error(`${vm}: ` + r.stderr.toString());
  return r.stdout.toString("latin1");
}

/** Run a batch of calls against the image on one VM. */
export async function callLua(vm: LuaVmKind, imagePath: string, calls: LuaCall[]): Promise<LuaResult[]> {
  const script = batchScript(imagePath, calls);
  const out = vm === "fengari" ? runFengari(script) : vm === "wasmoon" ? await runWasmoon(script, imagePath) : runCLua(vm, script);
  return parse(out);
}

/** Convenience: one call, throw on Lua error. */
export async function callLuaOne(vm: LuaVmKind, imagePath: string, fn: string, ...args: unknown[]): Promise<unknown> {
  const [r] = await callLua(vm, imagePath, [{ fn, args }]);
  if (!r.ok) throw new Error(`${vm} ${fn}: ${r.error}`);
  return r.value;
}

export function readImage(path: string): string {
  return readFileSync(path, "latin1");
}
