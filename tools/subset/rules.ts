/**
 * The rule ids of the firmware subset and the one-line reason each exists.
 * firmware/SUBSET.md explains every rule at length; test/tools/subset.test.ts
 * checks that each id here is documented there and has a firing fixture.
 */

export interface Violation {
  /** Path as given to the checker (relative paths stay relative). */
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  rule: RuleId;
  message: string;
}

/** Source rules (TypeScript side). */
export const SOURCE_RULES = {
  "float-division": "`/` is always float division in Lua; use idiv(a, b)",
  "exponent": "`**` becomes Lua `^`, which always yields a float",
  "float-literal": "fractional or exponent-notation literals are floats (float32 on the device)",
  "big-literal": "integer literals >= 2^31 (and BigInt) are floats on 32-bit-integer Lua",
  "right-shift": "`>>` is a TSTL error and `>>>` emits a float mask on 32-bit Lua; use shr(x, n)",
  "math": "Math.* and Lua math.* (but math.type) work in floats or differ between 32- and 64-bit Lua",
  "array-method": "array methods other than arr.push(x) need TSTL's lualib",
  "string-method": "string methods and string indexing need TSTL's lualib",
  "lib-method": "methods of JS built-in objects need TSTL's lualib",
  "es-global": "JS standard-library globals need TSTL's lualib or do not exist on the device",
  "spread": "spread allocates a copy and unpacks through the Lua stack",
  "destructuring-rest": "rest elements in destructuring need TSTL's lualib (__TS__ArraySlice, __TS__ObjectRest)",
  "instanceof": "`instanceof` needs TSTL's lualib and classes",
  "delete": "`delete` needs TSTL's lualib (__TS__Delete)",
  "typeof": "`typeof` is allowed only as `typeof x === \"number\"` (string/boolean/undefined/function/object); as a value it needs lualib",
  "template-literal": "template literals build strings with tostring(), which formats floats differently in Lua",
  "in": "`in` cannot tell a missing key from one holding undefined in Lua",
  "unary-plus": "unary `+` on a non-number is a string-to-number conversion (lualib __TS__Number)",
  "for-of": "for...of over anything but an array needs TSTL's lualib iterator",
  "new": "`new` on anything but LuaTable/LuaMap/LuaSet needs lualib's __TS__New",
  "enum-value": "enum values are printed folded; one outside (-2^31, 2^31) is a float literal on 32-bit Lua",
  "class": "classes cost metatables and lualib's __TS__Class on a tens-of-KB heap",
  "closure": "function expressions inside a function allocate a closure on every call",
  "try-catch": "try/catch becomes pcall of a fresh closure; the firmware returns status codes",
  "throw": "throw becomes error(); the firmware returns status codes",
  "async": "async/await need lualib's promise machinery and coroutines",
  "generator": "generators need lualib's generator machinery and coroutines",
  "null": "Lua has only nil; null and undefined collapse, so write undefined",
  "loose-equality": "`==`/`!=` coerce in JS but not in Lua; use `===`/`!==`",
  "var": "TSTL rejects `var` (function-scoped hoisting has no Lua equivalent); use let/const",
  "accessor": "getters/setters need metatables and lualib",
  "label": "TSTL does not support labeled statements (it drops the loop); use a flag",
  "for-in": "for...in iterates with pairs(): unordered, and arrays are 1-based tables",
  "shr-count": "shr(x, n) is inlined with a mask computed from n, so n must be an integer literal 1..31",
  "i32-arg": "i32(x) is inlined and evaluates x twice, so x must be a plain variable",
  "intrinsic-call": "the plugin inlines only direct calls shr(...)/idiv(...)/i32(...); any other use calls a module the image lacks",
} as const;

/** Rules on the emitted Lua text (the post-check). */
export const LUA_RULES = {
  "lua-lualib-helper": "a TSTL lualib helper (__TS__*) reached the image",
  "lua-lualib-require": "the image requires lualib_bundle, which does not exist on the device",
  "lua-float-literal": "a float literal reached the image",
  "lua-big-literal": "an integer literal >= 2^31 reached the image (a float on 32-bit Lua)",
  "lua-float-operator": "Lua `/` and `^` always yield floats",
  "lua-syntax": "the image does not lex as Lua 5.3, so nothing else about it can be trusted",
} as const;

export type SourceRuleId = keyof typeof SOURCE_RULES;
export type LuaRuleId = keyof typeof LUA_RULES;
export type RuleId = SourceRuleId | LuaRuleId;

export const ALL_RULES: Record<RuleId, string> = { ...SOURCE_RULES, ...LUA_RULES };

/** `file:line:col: rule-id: message`, the form editors and CI logs link. */
export function formatViolation(v: Violation): string {
  return `${v.file}:${v.line}:${v.col}: ${v.rule}: ${v.message}`;
}
