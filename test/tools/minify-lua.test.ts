/**
 * tools/subset/minify-lua.ts: the image's minifier keeps every token and the
 * meaning, on the token pairs that would fuse without a space.
 */
import { describe, expect, it } from "vitest";
import { minifyLua } from "../../tools/subset/minify-lua.js";
import { tokenizeLua } from "../../tools/subset/lua-tokens.js";
import { runCLua } from "../support/lua-vm.js";

const TRICKY = String.raw`
local ____exports = {}
local ____lualib = { ____x = 1 }
local t = { ["a b"] = "  spaced  string  ", ____y = 2 }
local a, b = 5, 3
local r = {}
r[#r + 1] = a - -b
r[#r + 1] = a // b
r[#r + 1] = a / b
r[#r + 1] = 1 .. 2
r[#r + 1] = a .. b
r[#r + 1] = 0x10 .. ""
r[#r + 1] = a ~ b
r[#r + 1] = a ~= b and 1 or 0
r[#r + 1] = ~a
r[#r + 1] = a < -b and 1 or 0
r[#r + 1] = a << 2 >> 1
r[#r + 1] = t[ [[x]] ] == nil and 1 or 0
r[#r + 1] = t["a b"]
r[#r + 1] = ____lualib.____x + t.____y
function ____exports.f(x) return x * 2 end
r[#r + 1] = ____exports.f(21)
r[#r + 1] = #"\"quoted\" \\ "
return table.concat(r, ",")
`;

function runBoth(src: string): string {
  return runCLua("lua5.3", `local function chunk() ${src} end io.write(chunk())`);
}

/** The token minifier alone (rename-locals.ts has its own tests below). */
const tokensOnly = (src: string) => minifyLua(src, { renameLocals: false });

describe("minifyLua", () => {
  it("keeps every token (renames aside) and the result of a chunk full of fusable pairs", () => {
    const { lua, renamed } = minifyLua(TRICKY, { renameLocals: false });
    expect(renamed).toBe(2); // ____exports and ____lualib; fields ____x / ____y stay
    expect(lua.length).toBeLessThan(TRICKY.length);
    expect(lua).toContain('"  spaced  string  "');
    expect(lua).toContain(".____x");
    expect(tokenizeLua(lua).length).toBe(tokenizeLua(TRICKY).length);
    expect(runBoth(lua)).toBe(runBoth(TRICKY));
    expect(runBoth(TRICKY)).toBe('8,1,1.6666666666667,12,53,16,6,1,-6,0,10,1,  spaced  string  ,3,42,11');
  });

  it("keeps a space only where tokens would fuse", () => {
    expect(tokensOnly("local x = a - -b\n").lua).toBe("local x=a- -b\n");
    expect(tokensOnly("local x = 1 .. 2\n").lua).toBe("local x=1 ..2\n");
    expect(tokensOnly("local y = x [ [[s]] ]\n").lua).toBe("local y=x[ [[s]]]\n");
  });

  it("folds TSTL's 1-based index constants, and only whole bracket contents", () => {
    expect(tokensOnly("local y = w[t - 3 + 1] + w[i + 1 + 1] + w[j - 1 + 1] + w[k + 1]\n").lua).toBe("local y=w[t-2]+w[i+2]+w[j]+w[k+1]\n");
    expect(tokensOnly("local y = w[2 * t - 3 + 1] + w[t - 3 + 1 + n]\n").lua).toBe("local y=w[2*t-3+1]+w[t-3+1+n]\n");
    const src = "local w = {10, 20, 30, 40} local t, i = 4, 1 return w[t - 3 + 1] .. w[i + 1 + 1] .. w[t - 1 + 1]";
    expect(runBoth(minifyLua(src).lua)).toBe(runBoth(src));
    expect(runBoth(src)).toBe("203040");
  });

  it("renames every local, parameter and loop variable to a short name of its own, never a global, a field or self, and keeps the result", () => {
    const src = String.raw`
local counter = 0
local function bump(amount, ...)
  local total = counter + amount
  counter = total
  return total, select("#", ...)
end
local t = { bump = bump, counter = 1 }
function t:method(value) return self.counter + value end
for index = 1, 3 do bump(index) end
for key, value in pairs({ a = 1 }) do counter = counter + value end
local shadow = 1
do local shadow = 2 counter = counter + shadow end
repeat local stop = true until stop
a = 7 -- a global: no local may be called a, or this would change
return table.concat({ counter, shadow, t:method(2), t.bump(1), a, print == nil and 0 or 1 }, ",")
`;
    const { lua, renamed } = minifyLua(src, { oneLine: true });
    expect(renamed).toBeGreaterThanOrEqual(12);
    for (const long of ["counter =", "amount", "total", "index", "shadow", "stop"]) expect(lua, long).not.toContain(long);
    expect(lua).toContain("self.counter"); // a field and self stay
    expect(lua).toContain("bump=");
    expect(lua).not.toMatch(/local a\b|function a\(/); // no local takes the global's name
    expect(lua.includes("\n", 0) && lua.indexOf("\n") < lua.length - 1).toBe(false); // one line
    expect(lua.length).toBeLessThan(src.length * 0.7);
    expect(runBoth(lua)).toBe(runBoth(src));
  });
});

describe("mergeLocals (tools/subset/merge-locals.ts)", () => {
  it("merges runs of one-name locals into one statement, where the meaning stays", async () => {
    const { mergeLocals } = await import("../../tools/subset/merge-locals.js");
    const src = String.raw`
local n = 0
local function f(...) n = n + 1 return n, ... end
local a = f(10, 20)
local b = f()
local c = { f(30, 40) }
local d = a + 1
local e = (f(50, 60))
local a2 = function() return d end
do local x = 1 local x = 2 local y = x local z = function() local p = 1 local q = 2 return p + q end return table.concat({ n, a, b, #c, d, e, a2(), x, y, z() }, ",") end
`;
    const { lua, merged } = mergeLocals(src);
    // a,b,c merge (f's results cut to one each); d uses a, a2 uses d, the second x is a new
    // one, y uses x: each begins a run of its own; p,q inside z's function merge too.
    expect(lua).toContain("local a,b,c=f(10, 20),f(),{ f(30, 40) }\nlocal d,e=a + 1,(f(50, 60))\nlocal a2 = function() return d end\n");
    expect(lua).toContain("do local x = 1 local x = 2 local y,z=x,function() local p,q=1,2 return p + q end return");
    expect(merged).toBe(5);
    expect(runBoth(lua)).toBe(runBoth(src));
    expect(runBoth(src)).toBe("4,1,2,3,2,4,2,2,2,3");
  });
});

describe("mergeLocals and _ENV", () => {
  it("does not merge a statement after `local _ENV = ...`: its free names go through that _ENV", async () => {
    const { mergeLocals } = await import("../../tools/subset/merge-locals.js");
    // In `local _ENV = e local b = x`, x is e.x; merged into `local _ENV,b=e,x` it would
    // be the outer _ENV's x (lparser.c singlevar looks _ENV up among the active locals).
    const src = String.raw`
x = "outer"
local e = { x = "inner" }
local _ENV = e
local b = x
return b
`;
    const { lua } = mergeLocals(src);
    expect(runBoth(src)).toBe("inner");
    expect(runBoth(lua)).toBe(runBoth(src));
  });
});
