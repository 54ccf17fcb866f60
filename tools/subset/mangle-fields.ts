/**
 * Shorter field names in the keyfob's image (issue 10 item 6: flash time;
 * item 5: the names are string constants every loaded function holds).
 * After the other passes, 5,972 of the image's 43,940 bytes were field names
 * (`x.displayBlankAfter`, `{zeroPending=false}`): names the firmware gives its
 * own tables, which nothing outside the image ever reads. The protocol's
 * wire format carries no names (protocol/SPEC.md: bytes), so renaming them
 * changes no byte the host sees.
 *
 * Every occurrence of a name as a field (`a.NAME`, `a:NAME`, `{NAME = v}`) is
 * renamed to the same short name across the whole bundle, so a module that
 * reaches another's export, `export *` copying a table with pairs, and a
 * table built in one place and read in another all still agree. A name is
 * kept as it is when anything outside the bundle could know it:
 * - a name of Lua 5.3's standard library (manual §6: the globals, their
 *   fields, string and file methods, metamethods: LUA_NAMES below);
 * - any word of the declaration files the firmware is typed against
 *   (firmware/board/nodemcu.d.ts: NodeMCU's modules, their constants and the
 *   fields of their option tables, `gpio.config({gpio=, dir=, pull=})`);
 * - a field of a global (`gpio.IN`, `node.dsleep`), whatever its name;
 * - a method name (`f:write`, `t:register`): methods are the C side's;
 * - any name that is a string literal's whole text (a computed key or a
 *   name compared with a string: `k ~= "default"` in TSTL's `export *`);
 *   a string with an escape or long brackets keeps every word in it;
 * - the names the caller lists (`start`: init.lua's `dofile(...).start()`).
 * Short names are handed out most-bytes-saved first and never equal a kept
 * name or a Lua keyword. The result is parsed again.
 */
import luaparse from "luaparse";
import type { Node } from "./lua-ast.js";
import { luaShortNames } from "./lua-tokens.js";

/** Lua 5.3 manual §6 and §2.4 (lua5.3 -e dump of _G, its tables, string and file metatables). */
export const LUA_NAMES: readonly string[] = (
  "_G _VERSION __add __band __bnot __bor __bxor __call __close __concat __div __eq __gc __idiv __index __le __len __lt " +
  "__metatable __mod __mode __mul __name __newindex __pairs __pow __shl __shr __sub __tostring __unm abs acos arg arshift " +
  "asin assert atan atan2 band bit32 bnot bor btest bxor byte ceil char charpattern clock close codepoint codes " +
  "collectgarbage concat config coroutine cos cosh cpath create date debug deg difftime dofile dump error execute exit " +
  "exp extract find floor flush fmod format frexp getenv gethook getinfo getlocal getmetatable getregistry getupvalue " +
  "getuservalue gmatch gsub huge input insert io ipairs isyieldable ldexp len lines load loaded loadfile loadlib log log10 " +
  "lower lrotate lshift match math max maxinteger min mininteger modf move next offset open os output pack package " +
  "packsize pairs path pcall pi popen pow preload print rad random randomseed rawequal rawget rawlen rawset read remove " +
  "rename rep replace require resume reverse rrotate rshift running searchers searchpath seek select sethook setlocal " +
  "setlocale setmetatable setupvalue setuservalue setvbuf sin sinh sort sqrt status stderr stdin stdout string sub table " +
  "tan tanh time tmpfile tmpname tointeger tonumber tostring traceback type ult unpack upper upvalueid upvaluejoin utf8 " +
  "wrap write xpcall yield"
).split(" ");


/** Every identifier-like word of a text (a declaration file): conservative, comments included. */
export function wordsOf(text: string): string[] {
  return text.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? [];
}

/** Short names in order (luaShortNames), without "_" alone. */
function* shortNames(): Generator<string> {
  for (const n of luaShortNames()) if (n !== "_") yield n;
}

interface Site {
  name: string;
  at: [number, number];
}

export interface MangleResult {
  lua: string;
  /** Original name -> short name. */
  renamed: Map<string, string>;
}

/**
 * Rename the bundle's own field names (see the header). `keepWords`: words that
 * must stay (LUA_NAMES, the declaration files' words, the caller's names).
 */
export function mangleFields(src: string, keepWords: Iterable<string>): MangleResult {
  const ast = luaparse.parse(src, { luaVersion: "5.3", ranges: true, comments: false, scope: true, locations: false }) as unknown as Node;
  const keep = new Set<string>(keepWords);
  const sites: Site[] = [];
  const visit = (n: unknown): void => {
    if (Array.isArray(n)) {
      for (const x of n) visit(x);
      return;
    }
    if (n === null || typeof n !== "object") return;
    const o = n as Node;
    if (o.type === "StringLiteral") {
      // A string that is a name may be a computed key (`t[k]`, `k ~= "default"`); luaparse keeps
      // the raw text, so an escape in it makes it no plain name (kept as words to be safe).
      const raw = String(o.raw);
      const body = raw.slice(1, -1);
      if (/^["']/.test(raw) && !body.includes("\\")) {
        if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(body)) keep.add(body);
      } else for (const w of wordsOf(raw)) keep.add(w);
    } else if (o.type === "MemberExpression") {
      const id = o.identifier as Node;
      const base = o.base as Node;
      const name = id.name as string;
      if (o.indexer === ":" || (base.type === "Identifier" && base.isLocal !== true)) keep.add(name);
      else sites.push({ name, at: id.range });
    } else if (o.type === "TableKeyString") {
      const key = o.key as Node;
      sites.push({ name: key.name as string, at: key.range });
    }
    for (const [k, v] of Object.entries(o)) if (k !== "range" && v && typeof v === "object") visit(v);
  };
  visit(ast);

  const bytes = new Map<string, number>();
  for (const s of sites) if (!keep.has(s.name)) bytes.set(s.name, (bytes.get(s.name) ?? 0) + s.name.length);
  const order = [...bytes.keys()].sort((a, b) => bytes.get(b)! - bytes.get(a)! || (a < b ? -1 : 1));
  const taken = new Set<string>([...keep, ...sites.map((s) => s.name)]);
  const renamed = new Map<string, string>();
  const gen = shortNames();
  let next = gen.next().value as string;
  for (const name of order) {
    // A short name that is already some field's name (kept, or one still to be renamed) would merge two fields.
    while (taken.has(next)) next = gen.next().value as string;
    if (next.length >= name.length) continue;
    renamed.set(name, next);
    taken.add(next);
  }
  let lua = src;
  for (const s of [...sites].sort((a, b) => b.at[0] - a.at[0])) {
    const to = renamed.get(s.name);
    if (to !== undefined) lua = lua.slice(0, s.at[0]) + to + lua.slice(s.at[1]);
  }
  luaparse.parse(lua, { luaVersion: "5.3", comments: false });
  return { lua, renamed };
}
