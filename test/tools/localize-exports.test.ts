/**
 * tools/subset/localize-exports.ts: a module's own exported functions read
 * from locals, so a function calling a sibling export no longer holds the
 * module's export table (and every export in it) alive; on a bundle laid out
 * as TSTL writes one, the result must run the same.
 */
import { describe, expect, it } from "vitest";
import { localizeExports } from "../../tools/subset/localize-exports.js";
import { runCLua } from "../support/lua-vm.js";
import { TSTL_BUNDLE_HEAD } from "../support/tstl-bundle.js";

const BUNDLE = TSTL_BUNDLE_HEAD + String.raw`
____modules = {
["dev"] = function(...) 
local ____exports = {}
____exports.PREFIX = "r"
function ____exports.reply(x) return ____exports.PREFIX .. x end
function ____exports.bootOnly() return "boot" end
function ____exports.handle(x) return ____exports.reply(x) end
function ____exports.other() return ____exports.replaced() end
function ____exports.replaced() return "old" end
____exports.replaced = function() return "new" end
function ____exports.callback() return ____exports.handle end
return ____exports
 end,
["main"] = function(...) 
local ____exports = {}
local ____dev = require("dev")
local handle = ____dev.handle
function ____exports.run()
    local held = false
    for i = 1, 10 do
        local n, v = debug.getupvalue(handle, i)
        if n == nil then break end
        if v == ____dev then held = true end
    end
    return table.concat({ handle("a"), ____dev.callback()("b"), ____dev.reply("c"), ____dev.bootOnly(), ____dev.other(), tostring(held) }, ";")
end
return ____exports
 end,
}
local ____entry = require("main", ...)
return ____entry
`;

describe("localizeExports", () => {
  it("turns a module's own exported functions into locals, keeps the export table's fields, and leaves a reassigned field alone", () => {
    const { lua, localized } = localizeExports(BUNDLE);
    expect(localized).toBe(3); // dev: PREFIX, reply, handle (read inside dev); the others are never read there
    expect(lua).toContain("____exports.reply = ____lx_reply"); // other modules still see the field
    expect(lua).toContain("____exports.PREFIX = ____lx_PREFIX");
    expect(lua).toContain("function ____exports.bootOnly()"); // never read inside its module: left as it was
    expect(lua).toContain("function ____exports.replaced()"); // assigned again: stays a field
    expect(lua).toContain("____exports.replaced()"); // and is read as one
    const run = (src: string) => runCLua("lua5.3", `local function chunk(...) ${src} end io.write(chunk().run())`);
    // The behaviour is the same; only the export table is no longer an upvalue of handle.
    expect(run(BUNDLE)).toBe("ra;rb;rc;boot;new;true");
    expect(run(lua)).toBe("ra;rb;rc;boot;new;false");
  });
});
