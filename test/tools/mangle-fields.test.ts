/**
 * tools/subset/mangle-fields.ts (the image's own field names made short) and
 * tools/subset/int32-masks.ts (shr's masks dropped on 32-bit-integer Lua):
 * on a bundle laid out as TSTL writes one, the result must run the same, and
 * every name the outside can know stays.
 */
import { describe, expect, it } from "vitest";
import { LUA_NAMES, mangleFields, wordsOf } from "../../tools/subset/mangle-fields.js";
import { dropInt32Masks } from "../../tools/subset/int32-masks.js";
import { dropEmptyRequires, parseBundle, splitBundle } from "../../tools/split-bundle.js";
import { runCLua } from "../support/lua-vm.js";
import { TSTL_BUNDLE_HEAD } from "../support/tstl-bundle.js";

/** A declaration file's words (stands in for firmware/board/nodemcu.d.ts). */
const DECLARATIONS = "declare namespace gpio { function config(opts: { gpio: number; dir: number; pull: number }): void; const IN: number; }";

const BUNDLE = TSTL_BUNDLE_HEAD + String.raw`
____modules = {
["lib"] = function(...) 
local ____exports = {}
function ____exports.displayBlankAfter(board, ms) return board.displayText .. ":" .. ms end
____exports.recordName = "rec"
return ____exports
 end,
["all"] = function(...) 
local ____exports = {}
do
    local ____export = require("lib")
    for ____exportKey, ____exportValue in pairs(____export) do
        if ____exportKey ~= "default" then
            ____exports[____exportKey] = ____exportValue
        end
    end
end
return ____exports
 end,
["main"] = function(...) 
local ____exports = {}
local ____all = require("all")
local gpio = { config = function(o) return o.gpio + o.dir + o.pull end, IN = 1 }
function ____exports.start()
    local state = { zeroPending = false, inFrame = true, buf = {}, computed = 5 }
    local key = "computed"
    local r = {}
    r[#r + 1] = ____all.displayBlankAfter({ displayText = "hi" }, 30)
    r[#r + 1] = tostring(state.zeroPending) .. tostring(state.inFrame) .. state[key]
    r[#r + 1] = gpio.config({ gpio = 27, dir = gpio.IN, pull = 2 })
    r[#r + 1] = string.format("%d", #state.buf)
    r[#r + 1] = ____all.recordName
    return table.concat(r, ";")
end
return ____exports
 end,
}
local ____entry = require("main", ...)
return ____entry
`;

const keep = [...LUA_NAMES, ...wordsOf(DECLARATIONS), "start"];
const run = (src: string) => runCLua("lua5.3", `local function chunk(...) ${src} end io.write(chunk().start())`);

describe("mangleFields", () => {
  it("renames the bundle's own fields everywhere alike and keeps Lua's, the declarations', a computed key's and the caller's names", () => {
    const { lua, renamed } = mangleFields(BUNDLE, keep);
    for (const own of ["displayBlankAfter", "displayText", "zeroPending", "inFrame", "recordName"]) {
      expect(renamed.has(own), own).toBe(true);
      expect(lua, own).not.toMatch(new RegExp(`\\b${own}\\b`));
      expect(renamed.get(own)!.length).toBeLessThan(own.length);
    }
    // Lua's (format, concat), the declaration file's (config, gpio, dir, pull, IN), a string that is a
    // name (computed, default), and start stay.
    for (const kept of ["format", "concat", "config", "gpio", "dir", "pull", "IN", "computed", "start"]) expect(renamed.has(kept), kept).toBe(false);
    expect(lua).toContain("____exports.start");
    expect(lua).toContain("computed = 5");
    // Short names never collide with a kept field or with each other.
    const shorts = [...renamed.values()];
    expect(new Set(shorts).size).toBe(shorts.length);
    for (const s of shorts) expect(keep.includes(s) || ["computed", "buf", "start"].includes(s), s).toBe(false);
    expect(lua.length).toBeLessThan(BUNDLE.length);
    expect(run(lua)).toBe(run(BUNDLE));
    expect(run(BUNDLE)).toBe("hi:30;falsetrue5;30;0;rec");
  });
});

describe("dropInt32Masks", () => {
  const src = String.raw`
local function f(x)
  local a = ((x >> 8) & 16777215)
  local b = (((x >> 8) & 16777215) & 255)
  local c = (x & ((x >> 4) & 268435455))
  local d = ((x >> 8) & 255)
  local e = ((x >> 2) & 1073741823) + 1
  local g = (x >> 4) & 268435455
  return a, b, c, d, e, g
end
local r = {}
for _, x in ipairs({ 0, 1, 255, 305419896, -1, -2147483648, 2147483647, -305419897 }) do
  r[#r + 1] = table.concat({ f(x) }, ",")
end
io.write(table.concat(r, ";"))
`;

  it("drops exactly the mask 2^(32-n)-1 after a parenthesized >> n inside parentheses, and gives the same values on 32-bit Lua", () => {
    const { lua, dropped } = dropInt32Masks(src);
    expect(dropped).toBe(4);
    expect(lua).toContain("local a = (x >> 8)");
    expect(lua).toContain("local b = ((x >> 8) & 255)");
    expect(lua).toContain("local c = (x & (x >> 4))");
    expect(lua).toContain("local d = ((x >> 8) & 255)"); // 255 is not 2^24 - 1
    expect(lua).toContain("local e = (x >> 2) + 1");
    expect(lua).toContain("local g = (x >> 4) & 268435455"); // not in parentheses of its own: kept
    // NodeMCU's number model: the same results with and without the masks.
    expect(runCLua("lua32", lua)).toBe(runCLua("lua32", src));
    // On 64-bit Lua they differ for negative numbers: why the library bundle keeps its masks.
    expect(runCLua("lua5.3", lua)).not.toBe(runCLua("lua5.3", src));
  });
});

describe("dropEmptyRequires (tools/split-bundle.ts)", () => {
  it("removes a require of an empty module whose result nothing reads, keeps one whose result is read, and the empty module leaves the image", () => {
    const bundle = TSTL_BUNDLE_HEAD + String.raw`
____modules = {
["types"] = function(...) 
local ____exports = {}
return ____exports
 end,
["a"] = function(...) 
local ____exports = {}
local ____types = require("types")
require("types")
____exports.x = 1
return ____exports
 end,
["b"] = function(...) 
local ____exports = {}
local ____types = require("types")
____exports.t = ____types
return ____exports
 end,
["main"] = function(...) 
local ____exports = {}
local ____a = require("a")
function ____exports.start() return ____a.x end
return ____exports
 end,
}
local ____entry = require("main", ...)
return ____entry
`;
    const { modules } = parseBundle(bundle);
    const { modules: out, dropped } = dropEmptyRequires(modules);
    expect(dropped).toBe(2);
    const body = (n: string) => out.find((m) => m.name === n)!.body;
    expect(body("a")).not.toContain('require("types")');
    expect(body("b")).toContain('local ____types = require("types")');
    // The split image: "types" is no longer reached from the entry, so it is in no file.
    const files = splitBundle(bundle, ["core", "core-2"], {});
    expect(files.flatMap((f) => f.modules)).toEqual(expect.arrayContaining(["main", "a"]));
    expect(files.flatMap((f) => f.modules)).not.toContain("types");
    const lua = files.map((f) => f.lua);
    expect(runCLua("lua5.3", `local files = {} ${lua.slice(1).map((l, k) => `files["core-${k + 2}"] = function(...) ${l} end`).join(" ")}
      loadfile = function(n) local f = files[n:gsub("%.lc$", ""):gsub("%.lua$", "")] return f end
      local function chunk(...) ${lua[0]} end io.write(chunk().start())`)).toBe("1");
  });
});
