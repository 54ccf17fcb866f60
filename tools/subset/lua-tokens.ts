/**
 * A Lua 5.3 lexer just precise enough for the image post-check: it must
 * find every numeral, name and operator in code while never looking inside
 * strings or comments (Lua 5.3 manual §3.1, lexer rules of llex.c).
 */

export type LuaTokenKind = "name" | "number" | "string" | "op";

/** Lua 5.3's reserved words (manual §3.1): never a name. */
export const LUA_KEYWORDS: ReadonlySet<string> = new Set(
  "and break do else elseif end false for function goto if in local nil not or repeat return then true until while".split(" "),
);

/**
 * Every Lua name in order of length, shortest first (a..z, A..Z, _, then two
 * characters, then three), keywords left out; the renaming passes
 * (rename-locals.ts, mangle-fields.ts) take them in this order.
 */
export function* luaShortNames(): Generator<string> {
  const first = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
  const rest = first + "0123456789";
  for (const a of first) yield a;
  for (const a of first) for (const b of rest) if (!LUA_KEYWORDS.has(a + b)) yield a + b;
  for (const a of first) for (const b of rest) for (const c of rest) if (!LUA_KEYWORDS.has(a + b + c)) yield a + b + c;
  throw new Error("out of short Lua names");
}

export interface LuaToken {
  kind: LuaTokenKind;
  /** Source text; for strings the raw text between the delimiters (escapes not decoded). */
  text: string;
  line: number;
  col: number;
  /** Offsets of the token's source text, delimiters included: src.slice(offset, end). */
  offset: number;
  end: number;
}

export class LuaLexError extends Error {
  constructor(message: string, readonly line: number, readonly col: number) {
    super(`${line}:${col}: ${message}`);
  }
}

const isDigit = (c: string): boolean => c >= "0" && c <= "9";
const isHexDigit = (c: string): boolean => /^[0-9a-fA-F]$/.test(c);
const isNameStart = (c: string): boolean => /^[A-Za-z_]$/.test(c);
const isNameChar = (c: string): boolean => /^[A-Za-z0-9_]$/.test(c);

export function tokenizeLua(src: string): LuaToken[] {
  const tokens: LuaToken[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;

  const at = (k: number): string => (k < src.length ? src[k] : "");
  const advanceTo = (end: number): void => {
    for (; i < end; i++) {
      if (src[i] === "\n") {
        line++;
        lineStart = i + 1;
      }
    }
  };
  /** Level of a long bracket `[==[` starting at k, or -1 if there is none. */
  const longBracketLevel = (k: number): number => {
    if (at(k) !== "[") return -1;
    let j = k + 1;
    while (at(j) === "=") j++;
    return at(j) === "[" ? j - k - 1 : -1;
  };
  const skipLong = (level: number, what: string): string => {
    const startLine = line;
    const startCol = i - lineStart + 1;
    const open = i + level + 2;
    const close = "]" + "=".repeat(level) + "]";
    const end = src.indexOf(close, open);
    if (end < 0) throw new LuaLexError(`unfinished long ${what}`, startLine, startCol);
    const body = src.slice(open, end);
    advanceTo(end + close.length);
    return body;
  };

  while (i < src.length) {
    const c = src[i];
    const tokLine = line;
    const tokCol = i - lineStart + 1;
    const tokStart = i;
    // Every branch pushes before it advances, so the end is patched in after.
    const push = (kind: LuaTokenKind, text: string): void => {
      tokens.push({ kind, text, line: tokLine, col: tokCol, offset: tokStart, end: -1 });
    };

    const last = tokens[tokens.length - 1];
    if (last !== undefined && last.end < 0) last.end = i;
    if (c === "\n" || c === " " || c === "\t" || c === "\r" || c === "\f" || c === "\v") {
      advanceTo(i + 1);
      continue;
    }
    if (c === "-" && at(i + 1) === "-") {
      const level = longBracketLevel(i + 2);
      if (level >= 0) {
        advanceTo(i + 2);
        skipLong(level, "comment");
      } else {
        const nl = src.indexOf("\n", i);
        advanceTo(nl < 0 ? src.length : nl);
      }
      continue;
    }
    if (c === "[") {
      const level = longBracketLevel(i);
      if (level >= 0) {
        push("string", skipLong(level, "string"));
        continue;
      }
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < src.length && src[j] !== c) {
        if (src[j] === "\n") throw new LuaLexError("unfinished string", tokLine, tokCol);
        j += src[j] === "\\" ? 2 : 1;
      }
      if (j >= src.length) throw new LuaLexError("unfinished string", tokLine, tokCol);
      push("string", src.slice(i + 1, j));
      advanceTo(j + 1);
      continue;
    }
    if (isDigit(c) || (c === "." && isDigit(at(i + 1)))) {
      // llex.c read_numeral: hex digits, '.', and an exponent marker with
      // an optional sign; malformed numerals are consumed whole, as Lua does.
      const hex = c === "0" && (at(i + 1) === "x" || at(i + 1) === "X");
      const expo = hex ? "Pp" : "Ee";
      let j = hex ? i + 2 : i;
      for (;;) {
        const d = at(j);
        if (d !== "" && expo.includes(d)) {
          j++;
          if (at(j) === "+" || at(j) === "-") j++;
        } else if (isHexDigit(d) || d === ".") {
          j++;
        } else {
          break;
        }
      }
      push("number", src.slice(i, j));
      advanceTo(j);
      continue;
    }
    if (isNameStart(c)) {
      let j = i + 1;
      while (isNameChar(at(j))) j++;
      push("name", src.slice(i, j));
      advanceTo(j);
      continue;
    }
    const three = src.slice(i, i + 3);
    const two = src.slice(i, i + 2);
    const op = three === "..." ? three : ["..", "==", "~=", "<=", ">=", "//", "<<", ">>", "::"].includes(two) ? two : c;
    push("op", op);
    advanceTo(i + op.length);
  }
  const last = tokens[tokens.length - 1];
  if (last !== undefined && last.end < 0) last.end = i;
  return tokens;
}

/** A numeral's Lua type and, for integers, its value (Lua 5.3 manual §3.1). */
export function classifyLuaNumeral(text: string): { kind: "float" } | { kind: "integer"; value: bigint } | { kind: "malformed" } {
  const hex = /^0[xX]([0-9a-fA-F]*)(\.[0-9a-fA-F]*)?([pP][+-]?[0-9]+)?$/.exec(text);
  if (hex) {
    if (hex[1] === "" && (hex[2] ?? ".").length <= 1) return { kind: "malformed" };
    if (hex[2] !== undefined || hex[3] !== undefined) return { kind: "float" };
    return { kind: "integer", value: BigInt("0x" + hex[1]) };
  }
  const dec = /^([0-9]*)(\.[0-9]*)?([eE][+-]?[0-9]+)?$/.exec(text);
  if (!dec || (dec[1] === "" && (dec[2] ?? ".").length <= 1)) return { kind: "malformed" };
  if (dec[2] !== undefined || dec[3] !== undefined) return { kind: "float" };
  return { kind: "integer", value: BigInt(dec[1]) };
}
