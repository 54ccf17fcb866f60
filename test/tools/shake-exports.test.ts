/**
 * tools/subset/shake-exports.ts: exports nothing in the image uses are
 * dropped (repeatedly: one used only by a dropped one goes too); a name
 * reached through a handed table, a string or a kept entry stays; on a
 * bundle laid out as TSTL writes one, the result must run the same.
 */
import { describe, expect, it } from "vitest";
import { shakeExports } from "../../tools/subset/shake-exports.js";
import { runCLua } from "../support/lua-vm.js";
import { TSTL_BUNDLE_HEAD } from "../support/tstl-bundle.js";

const BUNDLE = TSTL_BUNDLE_HEAD + String.raw`
____modules = {
["lib"] = function(...) 
local ____exports = {}
____exports.UNUSED_CONST = 7
____exports.KEPT_CONST = 8
____exports.SIDE = print("side effect")
local function localOfHostOnly() return 2 end
local function localUsed() return 1 end
function ____exports.hostOnly() return ____exports.helperOfHostOnly() + localOfHostOnly() end
function ____exports.helperOfHostOnly() return 1 end
function ____exports.used(x) return x + ____exports.KEPT_CONST + localUsed() - 1 end
function ____exports.viaTable() return "t" end
return ____exports
 end,
["main"] = function(...) 
local ____exports = {}
local ____lib = require("lib")
local used = ____lib.used
function ____exports.start()
    local handed = ____lib
    return used(1) .. handed.viaTable()
end
return ____exports
 end,
}
local ____entry = require("main", ...)
return ____entry
`;

describe("shakeExports", () => {
  it("drops unused exports, then those only they used, and keeps what is reached by name, side effects and the entry", () => {
    const { lua, dropped } = shakeExports(BUNDLE);
    expect(dropped.sort()).toEqual(["UNUSED_CONST", "helperOfHostOnly", "hostOnly", "localOfHostOnly"]);
    expect(lua).not.toContain("hostOnly");
    expect(lua).toContain("local function localUsed()");
    expect(lua).toContain("____exports.KEPT_CONST = 8");
    expect(lua).toContain('____exports.SIDE = print("side effect")'); // not a plain value: may do something
    expect(lua).toContain("function ____exports.viaTable()"); // reached through a table the module was handed
    expect(lua).toContain("function ____exports.start()");
    const run = (src: string) => runCLua("lua5.3", `local print = function() end local function chunk(...) ${src} end io.write(chunk().start())`);
    expect(run(lua)).toBe(run(BUNDLE));
    expect(run(lua)).toBe("9t");
  });
});
