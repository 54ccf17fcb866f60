/**
 * Keep a module's own exported functions in locals (issue 10 item 5): TSTL
 * emits `export function f` as `function ____exports.f(...)` and every call
 * of f inside its module as `____exports.f(...)`, so each function calling a
 * sibling export holds the module's export table as an upvalue, and with it
 * every function the module exports. On a locked keyfob that kept boot-only
 * code (device.ts deviceBoot and the record decoder behind it, the civil-date
 * code only provisioning uses) resident for as long as any handler lived.
 *
 * Exported constants read inside their module (a string like device.ts
 * PROVISION_MODULE) did the same.
 *
 * In a TSTL bundle (parsed with luaparse), for every module and every
 * `function ____exports.NAME(...)` or `____exports.NAME = value` at its top
 * level that the module also reads, and whose field NAME is assigned nowhere
 * else in the module:
 * - the declaration becomes `function ____lx_NAME(...)` (`____lx_NAME = value`),
 *   a local declared right after `local ____exports = {}`;
 * - every `____exports.NAME` in the module reads that local;
 * - `____exports.NAME = ____lx_NAME` is set just before the module's final
 *   `return ____exports`, so other modules see the same table as before.
 * Exact: inside the module the local holds the same function the field
 * would have held from the same moment on (a read before the declaration
 * is nil either way).
 */
import { type Node, parseLua, walk, exportsField } from "./lua-ast.js";




export const LOCAL_PREFIX = "____lx_";

export function localizeExports(src: string): { lua: string; localized: number } {
  const chunk = parseLua(src);
  const table = (chunk.body as Node[]).find(
    (s) => s.type === "AssignmentStatement" && (s.variables as Node[])[0]?.type === "Identifier" && (s.variables as Node[])[0].name === "____modules",
  );
  if (!table) return { lua: src, localized: 0 };
  const edits: { at: [number, number]; text: string }[] = [];
  let localized = 0;
  for (const f of (table.init as Node[])[0].fields as Node[]) {
    if (f.type !== "TableKey" || (f.value as Node).type !== "FunctionDeclaration") continue;
    const body = (f.value as Node).body as Node[];
    const first = body[0];
    const last = body[body.length - 1];
    const opensExports = first?.type === "LocalStatement" && (first.variables as Node[]).length === 1 && (first.variables as Node[])[0].name === "____exports";
    const returnsExports = last?.type === "ReturnStatement" && (last.arguments as Node[]).length === 1 && (last.arguments as Node[])[0].type === "Identifier" && (last.arguments as Node[])[0].name === "____exports";
    if (!opensExports || !returnsExports) continue;
    // Candidates: `function ____exports.NAME(` and `____exports.NAME = value` at the top level, once each.
    const defs = new Map<string, Node>();
    const twice = new Set<string>();
    const define = (name: string, target: Node) => {
      if (defs.has(name)) twice.add(name);
      defs.set(name, target);
    };
    for (const s of body) {
      if (s.type === "FunctionDeclaration" && !s.isLocal) {
        const name = exportsField(s.identifier as Node);
        if (name !== undefined) define(name, s.identifier as Node);
      }
      if (s.type === "AssignmentStatement" && (s.variables as Node[]).length === 1 && (s.init as Node[]).length === 1) {
        const name = exportsField((s.variables as Node[])[0]);
        if (name !== undefined) define(name, (s.variables as Node[])[0]);
      }
    }
    // A field assigned or declared anywhere else (a block, a function, a multiple assignment) stays a field.
    const reads = new Map<string, Node[]>();
    const targets = new Set([...defs.values()]);
    for (const n of walk(body)) {
      if (n.type === "AssignmentStatement") for (const v of n.variables as Node[]) { const name = exportsField(v); if (name !== undefined && !targets.has(v)) twice.add(name); }
      if (n.type === "FunctionDeclaration") { const name = exportsField(n.identifier as Node); if (name !== undefined && !targets.has(n.identifier as Node)) twice.add(name); }
      const name = exportsField(n);
      if (name !== undefined && !targets.has(n)) reads.set(name, [...(reads.get(name) ?? []), n]);
    }
    // Only a field the module reads itself gains anything (and each costs a few bytes).
    const names = [...defs.keys()].filter((n) => !twice.has(n) && reads.has(n));
    if (names.length === 0) continue;
    for (const name of names) for (const n of [defs.get(name)!, ...reads.get(name)!]) edits.push({ at: n.range, text: LOCAL_PREFIX + name });
    edits.push({ at: [first.range[1], first.range[1]], text: `\nlocal ${names.map((n) => LOCAL_PREFIX + n).join(", ")}` });
    edits.push({ at: [last.range[0], last.range[0]], text: names.map((n) => `____exports.${n} = ${LOCAL_PREFIX}${n}\n`).join("") });
    localized += names.length;
  }
  edits.sort((x, y) => x.at[0] - y.at[0] || x.at[1] - y.at[1]);
  const parts: string[] = [];
  let pos = 0;
  for (const e of edits) {
    if (e.at[0] < pos) throw new Error("localize-exports: overlapping edits");
    parts.push(src.slice(pos, e.at[0]), e.text);
    pos = e.at[1];
  }
  parts.push(src.slice(pos));
  return { lua: parts.join(""), localized };
}
