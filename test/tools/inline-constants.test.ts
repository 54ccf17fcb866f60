/**
 * tools/subset/inline-constants.ts: TSTL's integer constants folded into the
 * code that reads them, on a bundle laid out as TSTL writes one; the result
 * must run the same.
 */
import { describe, expect, it } from "vitest";
import { inlineConstants } from "../../tools/subset/inline-constants.js";
import { runCLua } from "../support/lua-vm.js";
import { TSTL_BUNDLE_HEAD } from "../support/tstl-bundle.js";

const BUNDLE = TSTL_BUNDLE_HEAD + String.raw`
____modules = {
["codes"] = function(...) 
local ____exports = {}
____exports.LIMIT = 1000
____exports.NEG = -7
____exports.MOVED = 1
____exports.NAME = "x"
function ____exports.twice() return ____exports.LIMIT * 2 end
return ____exports
 end,
["all"] = function(...) 
local ____exports = {}
do
    local ____export = require("codes")
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
local LIMIT = ____all.LIMIT
local NEG = ____all.NEG
local MOVED = ____all.MOVED
local NAME = ____all.NAME
local SHADOWED = ____all.LIMIT
local twice = ____all.twice
local function f(SHADOWED) return SHADOWED end
local t = { LIMIT = LIMIT, [LIMIT] = NEG }
function ____exports.run()
    local r = {}
    r[#r + 1] = LIMIT + NEG
    r[#r + 1] = t.LIMIT .. "," .. t[1000]
    r[#r + 1] = -NEG
    r[#r + 1] = MOVED
    r[#r + 1] = NAME
    r[#r + 1] = f(3) + SHADOWED
    r[#r + 1] = twice()
    return table.concat(r, ";")
end
return ____exports
 end,
}
local other = {}
other.MOVED = 2
local ____entry = require("main", ...)
return ____entry
`;

describe("inlineConstants", () => {
  it("replaces reads of integer constants, through export * too, and leaves strings, shadowed and reassigned names alone", () => {
    const { lua, inlined } = inlineConstants(BUNDLE);
    expect(inlined).toBeGreaterThanOrEqual(6);
    expect(lua).not.toMatch(/local LIMIT =/);
    expect(lua).not.toMatch(/local NEG =/);
    expect(lua).toContain("1000 + (-7)");
    expect(lua).toContain("return 1000 * 2"); // a module's own ____exports.LIMIT read
    expect(lua).toContain("____exports.LIMIT = 1000"); // the table keeps its field
    expect(lua).toContain("{ LIMIT = 1000, [1000] = (-7) }"); // a key stays a key
    expect(lua).toMatch(/local MOVED = ____all\.MOVED/); // MOVED is assigned twice in the bundle: not a constant
    expect(lua).toMatch(/local NAME = ____all\.NAME/); // not an integer
    expect(lua).toMatch(/local SHADOWED = ____all\.LIMIT/); // a parameter of that name exists inside
    const run = (src: string) => runCLua("lua5.3", `local function chunk(...) ${src} end io.write(chunk().run())`);
    expect(run(lua)).toBe(run(BUNDLE));
    expect(run(BUNDLE)).toBe("993;1000,-7;7;1;x;1003;2000");
  });
});
