/**
 * OTP cost on the Lua image: for one 8-digit TOTP code from a prepared key
 * (SHA-1, SHA-256; the keyfob has no SHA-512) and for preparing a key, the Lua VM instructions, the
 * Lua heap it allocates, and the image size. Writes bench/results/otp.json.
 *
 *   node build/node/tools/bench-otp.js        (after tsc + tstl builds)
 *
 * Methods:
 * - Instructions: fengari (Lua 5.3, 32-bit integers, the device's width),
 *   debug.sethook with a count hook every 1 instruction around one call;
 *   the count for an empty function called the same way is subtracted, so
 *   the figure is the operation's own instructions. Hooks are off while the
 *   hook runs, so it does not count itself.
 * - Heap: a C Lua (Debian lua5.3, and wasmoon's Lua 5.4), fengari has no GC
 *   API. Full collect, collectgarbage("stop"), count before, one call, count
 *   after. With the collector stopped nothing is reclaimed, so the difference
 *   is every byte the call allocated: the most the call can raise the heap
 *   (the peak delta), garbage included. Scratch arrays are made once when
 *   the image loads, so they are not in the figure. Median and max of 9
 *   "warm" runs, each after an unmeasured call with the previous 60 s step
 *   (steady state: what each further code costs; max shows occasional VM
 *   growth such as the string table); "cold": right after the full collect,
 *   which also shrinks the Lua stack and CallInfo list, so the figure
 *   includes regrowing them for the call depth. Empty-call baseline
 *   subtracted as above.
 * - Image: the size in bytes of fobkit.lua.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);

/** This file runs from <build>/node/tools/; the image is <build>/firmware/fobkit.lua. */
const BUILD = process.env.FOBKIT_BUILD ? resolve(process.env.FOBKIT_BUILD) : resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** The library bundle (firmware/lib-image.ts): the keyfob image exports only start(). */
const IMAGE = resolve(BUILD, "firmware", "fobkit-lib.lua");

export interface OtpBenchRow {
  operation: string;
  /** Lua VM instructions on fengari. */
  instructions: number;
  /** Heap bytes per call on Debian lua5.3 (Lua 5.3, 64-bit). */
  heapLua53: HeapFigures;
  /** The same on wasmoon (Lua 5.4). */
  heapWasmoon: HeapFigures;
}

/** Bytes allocated by one call with the collector stopped. */
export interface HeapFigures {
  /** Median over 9 warm runs (each after an unmeasured call with the previous step). */
  median: number;
  /** Largest of those runs: occasional VM growth (string table, stack) lands here. */
  max: number;
  /** Straight after a full collect, which shrinks the Lua stack and CallInfo list: includes regrowing them. */
  cold: number;
}

export interface OtpBench {
  image: string;
  imageBytes: number;
  /** Bytes of the image's firmware.otp.* and core.* modules (the bundle's module bodies; the core's time, bytes and statuses were in firmware/otp before core/). */
  otpModuleBytes: number;
  rows: OtpBenchRow[];
  method: string;
}

const ASCII = (s: string) => "{" + Array.from(Buffer.from(s, "latin1")).join(",") + "}";

/** The operations, as Lua: each a function and its arguments, set up before measuring. */
const SETUP = String.raw`
local otp = IMAGE.otp
local seed1 = ${ASCII("12345678901234567890")}
local seed256 = ${ASCII("12345678901234567890123456789012")}
local pk1 = otp.prepareKey(seed1, 1)
local pk256 = otp.prepareKey(seed256, 2)
local flash1 = otp.serializePreparedKey(pk1)
-- Successive 60 s steps from 2033-05-18T03:33:20Z (hi > 2^15, nothing
-- special-cased small): run k of an operation gets step k, as on a keyfob
-- where each press shows a new code (strings are interned, so formatting the
-- same code twice would allocate nothing the second time).
local t0 = otp.timeFromCivil(2033, 5, 18, 3, 33, 20)
local function at(k) return otp.addSeconds(t0, 60 * k) end
local function codeText(pk, time) return otp.formatCode(otp.totp(pk, time, 60, 8), 8) end
-- { name, function, arguments of run k }
OPS = {
  { "totp SHA-1, 8 digits, 60 s (prepared key)", otp.totp, function(k) return { pk1, at(k), 60, 8 } end },
  { "totp SHA-1 + formatCode (display text)", codeText, function(k) return { pk1, at(k) } end },
  { "totp SHA-256, 8 digits, 60 s (prepared key)", otp.totp, function(k) return { pk256, at(k), 60, 8 } end },
  { "prepareKey SHA-1 (20-byte seed)", otp.prepareKey, function(k) return { seed1, 1 } end },
  { "prepareKey SHA-256 (32-byte seed)", otp.prepareKey, function(k) return { seed256, 2 } end },
  { "parsePreparedKey SHA-1 (41 flash bytes)", otp.parsePreparedKey, function(k) return { flash1 } end },
  { "addSeconds (clock tick)", otp.addSeconds, function(k) return { at(k), 1 } end },
}
local function noop() end
BASELINE = { "empty call", noop, function(k) return { 1, 2, 3, 4 } end }
RUNS = 9
-- Argument tables are made before any measurement.
for _, op in ipairs(OPS) do
  op.args = {}
  for k = 0, RUNS do op.args[k] = op[3](k) end
end
BASELINE.args = {}
for k = 0, RUNS do BASELINE.args[k] = BASELINE[3](k) end
local unpack = table.unpack
`;

const COUNT = String.raw`
local function count(op)
  local n = 0
  local f, args = op[2], op.args[1]
  f(unpack(op.args[0]))
  debug.sethook(function() n = n + 1 end, "", 1)
  f(unpack(args))
  debug.sethook()
  return n
end
local base = count(BASELINE)
local out = {}
for i = 1, #OPS do out[#out + 1] = string.format("%d", count(OPS[i]) - base) end
return "[" .. table.concat(out, ",") .. "]"
`;

// Per operation: [median warm, max warm, cold] bytes, empty-call baseline subtracted.
const HEAP = String.raw`
local function heap(f, before_args, args)
  collectgarbage("collect")
  collectgarbage("collect")
  if before_args then f(unpack(before_args)) end
  collectgarbage("stop")
  local before = collectgarbage("count")
  f(unpack(args))
  local after = collectgarbage("count")
  collectgarbage("restart")
  return (after - before) * 1024
end
local function figures(op)
  local warm = {}
  for k = 1, RUNS do warm[k] = heap(op[2], op.args[k - 1], op.args[k]) end
  table.sort(warm)
  return warm[(RUNS + 1) // 2], warm[RUNS], heap(op[2], nil, op.args[0])
end
local bm, bx, bc = figures(BASELINE)
local out = {}
for i = 1, #OPS do
  local m, x, c = figures(OPS[i])
  out[#out + 1] = string.format("[%d,%d,%d]", math.floor(m - bm + 0.5), math.floor(x - bx + 0.5), math.floor(c - bc + 0.5))
end
return "[" .. table.concat(out, ",") .. "]"
`;

function script(imagePath: string, body: string): string {
  const path = JSON.stringify(imagePath);
  return `IMAGE = dofile(${path})\n${SETUP}\n${body}`;
}

function onFengari(body: string): unknown[] {
  const { lua, lauxlib, lualib, to_luastring } = require("fengari");
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  if (lauxlib.luaL_dostring(L, to_luastring(script(IMAGE, body))) !== 0) {
    throw new Error("fengari: " + lua.lua_tojsstring(L, -1));
  }
  return JSON.parse(lua.lua_tojsstring(L, -1));
}

function onLua53(body: string): unknown[] {
  const src = script(IMAGE, body).replace(/return ("\[" \.\. .*)$/m, "io.write($1)");
  const r = spawnSync("lua5.3", ["-"], { input: src });
  if (r.error) throw new Error(`lua5.3: ${r.error.message} (make setup installs Debian's lua5.3)`);
  if (r.status !== 0) throw new Error("lua5.3: " + r.stderr.toString());
  return JSON.parse(r.stdout.toString());
}

async function onWasmoon(body: string): Promise<unknown[]> {
  const { LuaFactory } = require("wasmoon");
  const factory = new LuaFactory();
  await factory.mountFile(IMAGE, readFileSync(IMAGE));
  const engine = await factory.createEngine({ injectObjects: false, enableProxy: false });
  try {
    return JSON.parse((await engine.doString(script(IMAGE, body))) as string);
  } finally {
    engine.global.close();
  }
}

/** TSTL bundles each module as `["firmware.otp.x"]=function(...) ... end,` (minified). */
function otpModuleBytes(image: string): number {
  let n = 0;
  for (const m of image.matchAll(/\["(?:firmware\.otp|core)\.[\w.-]+"\]=function\(\.\.\.\)[\s\S]*?\nend,/g)) n += m[0].length;
  return n;
}

function operations(): string[] {
  return [...SETUP.matchAll(/^\s*\{ "([^"]+)"/gm)].map((m) => m[1]);
}

/** Measure and return the figures (also used by the combined `make bench`). */
export async function runOtpBench(): Promise<OtpBench> {
  const names = operations();
  const instructions = onFengari(COUNT) as number[];
  const heap53 = onLua53(HEAP) as number[][];
  const heapWasmoon = (await onWasmoon(HEAP)) as number[][];
  for (const xs of [instructions, heap53, heapWasmoon]) {
    if (xs.length !== names.length) throw new Error(`bench-otp: ${xs.length} figures for ${names.length} operations`);
  }
  const heap = ([median, max, cold]: number[]): HeapFigures => ({ median, max, cold });
  return {
    image: IMAGE,
    imageBytes: statSync(IMAGE).size,
    otpModuleBytes: otpModuleBytes(readFileSync(IMAGE, "latin1")),
    rows: names.map((operation, i) => ({
      operation,
      instructions: instructions[i],
      heapLua53: heap(heap53[i]),
      heapWasmoon: heap(heapWasmoon[i]),
    })),
    method:
      "instructions: fengari debug.sethook count=1 around one call, minus an empty call. heap: bytes allocated by one call with collectgarbage('stop') (nothing reclaimed, so the peak delta), minus an empty call; median and max of 9 warm runs on successive 60 s steps, and cold = right after a full collect",
  };
}

export function formatOtpBench(b: OtpBench): string {
  const head = ["operation", "Lua instr (fengari)", "heap B lua5.3 median/max/cold", "heap B wasmoon median/max/cold"];
  const fig = (h: HeapFigures) => `${h.median} / ${h.max} / ${h.cold}`;
  const rows = b.rows.map((r) => [r.operation, String(r.instructions), fig(r.heapLua53), fig(r.heapWasmoon)]);
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join("  ");
  return [
    line(head),
    width.map((w) => "-".repeat(w)).join("  "),
    ...rows.map(line),
    "",
    `image ${b.image}: ${b.imageBytes} bytes, of which the OTP modules ${b.otpModuleBytes}`,
    `method: ${b.method}`,
  ].join("\n");
}

async function main(): Promise<void> {
  const bench = await runOtpBench();
  const outDir = resolve(process.cwd(), "bench", "results");
  mkdirSync(outDir, { recursive: true });
  const out = resolve(outDir, "otp.json");
  writeFileSync(out, JSON.stringify(bench, null, 2) + "\n");
  process.stdout.write(formatOtpBench(bench) + `\nwritten ${out}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e) => {
    process.stderr.write(`bench-otp: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
