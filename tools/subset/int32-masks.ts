/**
 * Drop the masks after logical right shifts in the keyfob's image (issue 10
 * item 6: every byte is uploaded at 115200 baud; item 9: each mask is one more
 * VM instruction).
 *
 * core/intrinsics.ts's shr(x, n) becomes `((x >> n) & (2^(32-n) - 1))`
 * (tools/tstl-int32-plugin.cjs), correct on 32-bit and on 64-bit integer Lua:
 * on 64-bit Lua the mask drops bits 32 and up. The image runs only on 32-bit
 * integers: NodeMCU's build with CONFIG_LUA_NUMBER_INT64=n
 * (nodemcu-build/sdkconfig.fobkit:16; hil/nodemcu-build.ts:83 refuses a 64-bit build),
 * the emulator's fengari (32-bit integers) and the suite's lua32
 * (-DLUA_32BITS). There `>>` is already logical on 32 bits (lvm.c luaV_shiftl
 * shifts the value as lua_Unsigned, 32 bits wide), so the mask keeps every
 * bit it is given: `((x >> n) & M)` with M = 2^(32-n) - 1 is `(x >> n)`.
 * The library bundle (fobkit-lib.lua), which tests run on 64-bit Lua too,
 * keeps its masks.
 *
 * Only that exact shape is rewritten: a `&` whose one operand is `(E >> n)`
 * with n a literal 1..31 and whose other is the literal 2^(32-n) - 1, the
 * `&` itself inside parentheses (or call parentheses), so the result
 * `(E >> n)` needs no new ones. Innermost first, until none is left.
 */
import luaparse from "luaparse";
import type { Node } from "./lua-ast.js";
import { walk } from "./lua-ast.js";

function literal(n: Node): number | undefined {
  return n.type === "NumericLiteral" && /^\d+$/.test(String(n.raw)) ? Number(n.raw) : undefined;
}

function candidates(src: string): { at: [number, number]; keep: [number, number] }[] {
  const ast = luaparse.parse(src, { luaVersion: "5.3", ranges: true, comments: false }) as unknown as Node;
  const out: { at: [number, number]; keep: [number, number] }[] = [];
  for (const n of walk(ast)) {
    if (n.type !== "BinaryExpression" || n.operator !== "&") continue;
    if (src[n.range[0] - 1] !== "(" || src[n.range[1]] !== ")") continue;
    for (const [shift, mask] of [[n.left, n.right], [n.right, n.left]] as [Node, Node][]) {
      if (shift.type !== "BinaryExpression" || shift.operator !== ">>") continue;
      // The shift is written in its own parentheses: `(E>>n)`.
      if (src[shift.range[0] - 1] !== "(" || src[shift.range[1]] !== ")") continue;
      const by = literal(shift.right as Node);
      const m = literal(mask);
      if (by === undefined || by < 1 || by > 31 || m !== 2 ** (32 - by) - 1) continue;
      out.push({ at: n.range, keep: shift.range });
      break;
    }
  }
  return out;
}

export function dropInt32Masks(src: string): { lua: string; dropped: number } {
  let lua = src;
  let dropped = 0;
  for (;;) {
    const all = candidates(lua);
    // Innermost: no other candidate inside it.
    const inner = all.filter((c) => !all.some((d) => d !== c && d.at[0] >= c.at[0] && d.at[1] <= c.at[1]));
    if (inner.length === 0) return { lua, dropped };
    for (const c of inner.sort((a, b) => b.at[0] - a.at[0])) {
      lua = lua.slice(0, c.at[0]) + lua.slice(c.keep[0], c.keep[1]) + lua.slice(c.at[1]);
      dropped++;
    }
  }
}
