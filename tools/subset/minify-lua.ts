/**
 * A token-level minifier for the emitted image: the board stores, uploads
 * (at 115200 baud through its REPL) and parses every byte of it, and most of
 * TSTL's output is indentation, spaces around operators and `____` names.
 *
 * What it does, all of it meaning-preserving by construction:
 * - renames every local to a short name (rename-locals.ts, luaparse), unless
 *   told not to; with oneLine, keeps no line structure (the image boots as
 *   stripped bytecode, so lines serve nothing);
 * - re-emits the tokens of tokenizeLua, each as its exact source text, with a
 *   newline where the source had one between them (so line structure and
 *   per-module layout stay, and error lines still point somewhere near), a
 *   space only where two tokens would otherwise lex differently, and nothing
 *   else (comments are gone already: removeComments);
 * - renames TSTL's own locals (`____name`, never written by hand: the subset
 *   has no such identifiers) to short names that occur nowhere in the chunk.
 *   A name that appears anywhere as a possible field (after `.` or `:`) or
 *   constructor key (`{ name =`, `, name =`) is not renamed at all.
 * The result is lexed again and must give the same token sequence, renames
 * aside; anything else is an error, so a minifier bug fails the build.
 */
import { tokenizeLua, type LuaToken } from "./lua-tokens.js";
import { mergeLocals } from "./merge-locals.js";
import { renameLocals } from "./rename-locals.js";

const isWordy = (t: LuaToken): boolean => t.kind === "name" || t.kind === "number";

/** Would a and b, written with nothing between them, lex as anything but [a, b]? */
function needsSpace(a: string, b: string, aTok: LuaToken, bTok: LuaToken): boolean {
  if (isWordy(aTok) && isWordy(bTok)) return true;
  // `1..x` or `1.x` would lex as one malformed numeral.
  if (aTok.kind === "number" && /^[.A-Za-z0-9_]/.test(b)) return true;
  if (aTok.kind === "op" || bTok.kind === "op") {
    // `- -b` -> `--b` (a comment), `x[ [[s]] ]` -> `x[[[s]]` (a long string), `= =` -> `==`...
    let joined: LuaToken[];
    const ab = a + b;
    try {
      joined = tokenizeLua(ab);
    } catch {
      return true;
    }
    return joined.length !== 2 || ab.slice(joined[0].offset, joined[0].end) !== a || ab.slice(joined[1].offset, joined[1].end) !== b;
  }
  return false;
}

function shortNames(tokens: LuaToken[]): Map<string, string> {
  const used = new Set(tokens.filter((t) => t.kind === "name").map((t) => t.text));
  // A name that ever stands where it could be a field (after `.` or `:`) or
  // a constructor key (`{ name =`, `, name =`) is never renamed, anywhere.
  const keyish = new Set<string>();
  tokens.forEach((t, k) => {
    if (t.kind !== "name") return;
    const prev = tokens[k - 1];
    const next = tokens[k + 1];
    const p = prev && prev.kind === "op" ? prev.text : "";
    if (p === "." || p === ":" || ((p === "{" || p === "," || p === ";") && next && next.kind === "op" && next.text === "=")) keyish.add(t.text);
  });
  const counts = new Map<string, number>();
  for (const t of tokens) {
    if (t.kind === "name" && t.text.startsWith("____") && !keyish.has(t.text)) counts.set(t.text, (counts.get(t.text) ?? 0) + 1);
  }
  // Most used first get the shortest names.
  const names = [...counts.entries()].sort((x, y) => y[1] - x[1]).map(([n]) => n);
  const out = new Map<string, string>();
  let n = 0;
  for (const name of names) {
    let short: string;
    do {
      short = "_" + (n++).toString(36);
    } while (used.has(short));
    out.set(name, short);
  }
  return out;
}

export interface MinifyResult {
  lua: string;
  renamed: number;
}

/**
 * TSTL turns `a[i + k]` into `a[i + k + 1]` (Lua arrays start at 1): two
 * additions per access where one does. Inside brackets whose whole content
 * is `name +|- integer + 1`, fold the constants: `[t - 3 + 1]` -> `[t-2]`,
 * `[i + 1 + 1]` -> `[i+2]`, `[t - 1 + 1]` -> `[t]`. Exact: integer addition
 * is associative, also wrapping on 32-bit Lua. Returns the replacement token
 * texts for tokens k..k+6, or undefined.
 */
function foldIndex(tokens: LuaToken[], k: number): string[] | undefined {
  const [open, name, op, num, plus, one, close] = tokens.slice(k, k + 7);
  if (!close || open.text !== "[" || open.kind !== "op" || close.text !== "]" || close.kind !== "op") return undefined;
  if (name.kind !== "name" || op.kind !== "op" || (op.text !== "+" && op.text !== "-")) return undefined;
  if (num.kind !== "number" || !/^\d+$/.test(num.text) || plus.text !== "+" || plus.kind !== "op" || one.text !== "1" || one.kind !== "number") return undefined;
  const prev = tokens[k - 1];
  // `[` opening a table-constructor key is fine too; a `[[`-string never lexes as op `[`.
  if (prev === undefined) return undefined;
  const value = (op.text === "+" ? Number(num.text) : -Number(num.text)) + 1;
  if (!Number.isSafeInteger(value) || Math.abs(value) >= 2 ** 31) return undefined;
  if (value === 0) return ["[", name.text, "]"];
  return ["[", name.text, value > 0 ? "+" : "-", String(Math.abs(value)), "]"];
}

export interface MinifyOptions {
  /** Rename every local to a short name (rename-locals.ts) and merge runs of their declarations (merge-locals.ts); default true. */
  renameLocals?: boolean;
  /**
   * Drop the line structure too: a newline only where a space would do.
   * For what the board boots as stripped bytecode, where lines mean nothing
   * and each newline costs two bytes on the REPL upload (default false).
   */
  oneLine?: boolean;
}

export function minifyLua(input: string, opts: MinifyOptions = {}): MinifyResult {
  const renamed = opts.renameLocals === false ? { lua: input, renamed: 0 } : renameLocals(input);
  // With the locals' names short, their declarations merged (merge-locals.ts), as renaming goes.
  const src = opts.renameLocals === false ? renamed.lua : mergeLocals(renamed.lua).lua;
  const raw = tokenizeLua(src);
  // Fold first, into a new source text (same token texts otherwise).
  const pieces: string[] = [];
  for (let k = 0; k < raw.length; k++) {
    const folded = foldIndex(raw, k);
    const gap = k === 0 ? "" : src.slice(raw[k - 1].end, raw[k].offset);
    pieces.push(gap.includes("\n") ? "\n" : k === 0 ? "" : " ");
    if (folded) {
      pieces.push(folded.join(" "));
      k += 6;
    } else {
      pieces.push(src.slice(raw[k].offset, raw[k].end));
    }
  }
  const r = minifyTokens(pieces.join(""), opts.oneLine === true);
  return { lua: r.lua, renamed: r.renamed + renamed.renamed };
}

function minifyTokens(src: string, oneLine: boolean): MinifyResult {
  const tokens = tokenizeLua(src);
  const rename = shortNames(tokens);
  const text = (t: LuaToken, k: number): string => {
    if (t.kind === "name" && rename.has(t.text)) return rename.get(t.text)!;
    return src.slice(t.offset, t.end);
  };
  const parts: string[] = [];
  let prevText = "";
  tokens.forEach((t, k) => {
    const cur = text(t, k);
    if (k > 0) {
      const gap = src.slice(tokens[k - 1].end, t.offset);
      if (gap.includes("\n") && !oneLine) parts.push("\n");
      else if (needsSpace(prevText, cur, tokens[k - 1], t)) parts.push(" ");
    }
    parts.push(cur);
    prevText = cur;
  });
  const lua = parts.join("") + "\n";
  // The same tokens again, renames aside.
  const again = tokenizeLua(lua);
  const want = tokens.map((t, k) => text(t, k));
  if (again.length !== want.length || again.some((t, k) => lua.slice(t.offset, t.end) !== want[k])) {
    const k = again.findIndex((t, i) => lua.slice(t.offset, t.end) !== want[i]);
    throw new Error(`minifyLua: the output lexes differently at token ${k} (${JSON.stringify(want[k])})`);
  }
  return { lua, renamed: rename.size };
}
