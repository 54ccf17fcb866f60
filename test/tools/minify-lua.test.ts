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

describe("minifyLua", () => {
  it("keeps every token (renames aside) and the result of a chunk full of fusable pairs", () => {
    const { lua, renamed } = minifyLua(TRICKY);
    expect(renamed).toBe(2); // ____exports and ____lualib; fields ____x / ____y stay
    expect(lua.length).toBeLessThan(TRICKY.length);
    expect(lua).toContain('"  spaced  string  "');
    expect(lua).toContain(".____x");
    expect(tokenizeLua(lua).length).toBe(tokenizeLua(TRICKY).length);
    expect(runBoth(lua)).toBe(runBoth(TRICKY));
    expect(runBoth(TRICKY)).toBe('8,1,1.6666666666667,12,53,16,6,1,-6,0,10,1,  spaced  string  ,3,42,11');
  });

  it("keeps a space only where tokens would fuse", () => {
    expect(minifyLua("local x = a - -b\n").lua).toBe("local x=a- -b\n");
    expect(minifyLua("local x = 1 .. 2\n").lua).toBe("local x=1 ..2\n");
    expect(minifyLua("local y = x [ [[s]] ]\n").lua).toBe("local y=x[ [[s]]]\n");
  });

  it("folds TSTL's 1-based index constants, and only whole bracket contents", () => {
    expect(minifyLua("local y = w[t - 3 + 1] + w[i + 1 + 1] + w[j - 1 + 1] + w[k + 1]\n").lua).toBe("local y=w[t-2]+w[i+2]+w[j]+w[k+1]\n");
    expect(minifyLua("local y = w[2 * t - 3 + 1] + w[t - 3 + 1 + n]\n").lua).toBe("local y=w[2*t-3+1]+w[t-3+1+n]\n");
    const src = "local w = {10, 20, 30, 40} local t, i = 4, 1 return w[t - 3 + 1] .. w[i + 1 + 1] .. w[t - 1 + 1]";
    expect(runBoth(minifyLua(src).lua)).toBe(runBoth(src));
    expect(runBoth(src)).toBe("203040");
  });
});
