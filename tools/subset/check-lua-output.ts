/**
 * Post-check of the emitted Lua: the source checker sees TypeScript, this
 * sees what TSTL (and the int32 plugin) actually printed. Anything that
 * slipped past the source rules — a lualib helper, a float or >= 2^31
 * constant — is caught here before the image is written.
 */
import { LUA_RULES, type LuaRuleId, type Violation } from "./rules.js";
import { classifyLuaNumeral, LuaLexError, tokenizeLua, type LuaToken } from "./lua-tokens.js";

const TWO_POW_31 = 2n ** 31n;

export function checkLuaOutput(luaText: string, fileName: string): Violation[] {
  const out: Violation[] = [];
  const report = (t: { line: number; col: number }, rule: LuaRuleId, detail: string): void => {
    out.push({ file: fileName, line: t.line, col: t.col, rule, message: `${detail}: ${LUA_RULES[rule]}` });
  };
  let tokens: LuaToken[];
  try {
    tokens = tokenizeLua(luaText);
  } catch (e) {
    if (!(e instanceof LuaLexError)) throw e;
    report(e, "lua-syntax", e.message);
    return out;
  }
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    switch (t.kind) {
      case "name":
        if (t.text.startsWith("__TS__")) report(t, "lua-lualib-helper", t.text);
        break;
      case "string":
        if (t.text === "lualib_bundle" && requiredAt(tokens, k)) report(t, "lua-lualib-require", 'require("lualib_bundle")');
        break;
      case "number": {
        const n = classifyLuaNumeral(t.text);
        if (n.kind === "malformed") report(t, "lua-syntax", `malformed number ${t.text}`);
        else if (n.kind === "float") report(t, "lua-float-literal", t.text);
        else if (n.value >= TWO_POW_31) report(t, "lua-big-literal", t.text);
        break;
      }
      case "op":
        if (t.text === "/" || t.text === "^") report(t, "lua-float-operator", `operator ${t.text}`);
        break;
    }
  }
  return out;
}

/** `require "x"`, `require("x")`, `require(("x"))`: the string at k is an argument of require. */
function requiredAt(tokens: LuaToken[], k: number): boolean {
  let j = k - 1;
  while (j >= 0 && tokens[j].kind === "op" && tokens[j].text === "(") j--;
  return j >= 0 && tokens[j].kind === "name" && tokens[j].text === "require";
}
