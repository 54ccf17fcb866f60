/**
 * Drop exports nothing in the image uses (issue 10 items 5 and 6). The image
 * shares modules with the host (protocol/messages.ts holds encodeRequest and
 * decodeReply beside what the keyfob runs; core/ has helpers only the host
 * tests call), and TSTL bundles every export of each module it includes:
 * bytes on the wire at every install, and code a booting keyfob holds in
 * RAM until boot is over (the loader keeps every module's table till then).
 *
 * In a TSTL bundle (parsed with luaparse), for every module, a top-level
 * `function ____exports.NAME(...)`, or `____exports.NAME = <literal or
 * function>`, goes when NAME occurs nowhere else in the whole bundle (as an
 * identifier, a field, a key or inside a string: a name a module reaches
 * through a table it was handed, `m.provisionHandle`, counts as a use).
 * A module's top-level `local function NAME` goes on the same condition.
 * Repeated until nothing more goes: an export or local function used only by
 * a dropped one goes next. `keep` names what the bundle's caller uses from outside
 * (init.lua's `start`).
 */
import { type Node, parseLua, exportsField } from "./lua-ast.js";



const PLAIN = new Set(["NumericLiteral", "StringLiteral", "BooleanLiteral", "NilLiteral", "FunctionDeclaration"]);
const plainValue = (n: Node | undefined): boolean =>
  n !== undefined && (PLAIN.has(n.type) || (n.type === "UnaryExpression" && (n.argument as Node).type === "NumericLiteral"));

function shakeOnce(src: string, keep: ReadonlySet<string>): { lua: string; dropped: string[] } {
  const chunk = parseLua(src);
  const table = (chunk.body as Node[]).find(
    (s) => s.type === "AssignmentStatement" && (s.variables as Node[])[0]?.type === "Identifier" && (s.variables as Node[])[0].name === "____modules",
  );
  if (!table) return { lua: src, dropped: [] };
  const defs: { name: string; at: [number, number] }[] = [];
  for (const f of (table.init as Node[])[0].fields as Node[]) {
    if (f.type !== "TableKey" || (f.value as Node).type !== "FunctionDeclaration") continue;
    for (const s of (f.value as Node).body as Node[]) {
      let name: string | undefined;
      if (s.type === "FunctionDeclaration" && !s.isLocal) name = exportsField(s.identifier as Node);
      else if (s.type === "AssignmentStatement" && (s.variables as Node[]).length === 1 && (s.init as Node[]).length === 1 && plainValue((s.init as Node[])[0])) {
        name = exportsField((s.variables as Node[])[0]);
      }
      if (name !== undefined && !keep.has(name)) defs.push({ name, at: s.range });
      // A module's local function nothing calls (its only caller was a dropped export).
      if (s.type === "FunctionDeclaration" && s.isLocal && (s.identifier as Node)?.type === "Identifier") defs.push({ name: (s.identifier as Node).name as string, at: s.range });
    }
  }
  const drop = defs.filter((d) => {
    const word = new RegExp(`\\b${d.name}\\b`, "g");
    for (const m of src.matchAll(word)) if (m.index! < d.at[0] || m.index! >= d.at[1]) return false;
    return true;
  });
  // A name defined twice (a reassigned field) is used by the other definition: never dropped.
  let lua = src;
  for (const d of [...drop].sort((x, y) => y.at[0] - x.at[0])) lua = lua.slice(0, d.at[0]) + lua.slice(d.at[1]);
  return { lua, dropped: drop.map((d) => d.name) };
}

export function shakeExports(src: string, keep: readonly string[] = ["start"]): { lua: string; dropped: string[] } {
  const keepSet = new Set(keep);
  let lua = src;
  const dropped: string[] = [];
  for (;;) {
    const r = shakeOnce(lua, keepSet);
    if (r.dropped.length === 0) return { lua, dropped };
    lua = r.lua;
    dropped.push(...r.dropped);
  }
}
