/**
 * Fold the image's integer constants into the code that uses them (issue 10
 * items 5 and 6): TSTL turns `export const X = 5` into `____exports.X = 5`
 * and every import of it into a module-level `local X = ____mod.X`, which
 * each function using it then holds as an upvalue. On the keyfob that costs
 * upload bytes, an upvalue per closure and a table entry per constant.
 *
 * In a TSTL bundle (parsed with luaparse), for every module:
 * - its integer constants: `____exports.NAME = <integer>` at the module's top
 *   level, NAME assigned nowhere else in the bundle, plus those of modules it
 *   re-exports with `export *`;
 * - an import alias `local A = ____m.NAME` (____m = require("m"), NAME an
 *   integer constant of m) that is never assigned: every use of A becomes
 *   the literal and the alias goes;
 * - a use of its own `____exports.NAME` becomes the literal.
 * The export assignments stay (the module table keeps its fields). Exact:
 * the value is the same integer literal TSTL printed, and a local that is
 * never assigned always holds it.
 */
import { type Node, parseLua, walk } from "./lua-ast.js";


const isInt = (n: Node | undefined): string | undefined => {
  if (!n) return undefined;
  if (n.type === "NumericLiteral" && /^\d+$/.test(n.raw as string)) return n.raw as string;
  if (n.type === "UnaryExpression" && n.operator === "-") {
    const v = isInt(n.argument as Node);
    return v === undefined ? undefined : `(-${v})`;
  }
  return undefined;
};

const requireOf = (n: Node | undefined): string | undefined => {
  if (!n || n.type !== "CallExpression") return undefined;
  const base = n.base as Node;
  const args = n.arguments as Node[];
  if (base.type !== "Identifier" || base.name !== "require" || args.length < 1 || args[0].type !== "StringLiteral") return undefined;
  return (args[0].raw as string).slice(1, -1);
};


interface ModuleInfo {
  name: string;
  body: Node[];
  own: Map<string, string>;
  reexports: string[];
}

export function inlineConstants(src: string): { lua: string; inlined: number } {
  const chunk = parseLua(src);
  const table = (chunk.body as Node[]).find(
    (s) => s.type === "AssignmentStatement" && (s.variables as Node[])[0]?.type === "Identifier" && (s.variables as Node[])[0].name === "____modules",
  );
  if (!table) return { lua: src, inlined: 0 };
  // NAME assigned as a field anywhere: `x.NAME = ...` more than once means it is not a constant.
  const fieldAssigns = new Map<string, number>();
  for (const n of walk(chunk)) {
    if (n.type !== "AssignmentStatement") continue;
    for (const v of n.variables as Node[]) if (v.type === "MemberExpression") fieldAssigns.set((v.identifier as Node).name as string, (fieldAssigns.get((v.identifier as Node).name as string) ?? 0) + 1);
  }
  const modules = new Map<string, ModuleInfo>();
  for (const f of ((table.init as Node[])[0].fields as Node[])) {
    if (f.type !== "TableKey" || (f.key as Node).type !== "StringLiteral" || (f.value as Node).type !== "FunctionDeclaration") continue;
    const name = ((f.key as Node).raw as string).slice(1, -1);
    const body = (f.value as Node).body as Node[];
    const info: ModuleInfo = { name, body, own: new Map(), reexports: [] };
    for (const s of body) {
      if (s.type === "AssignmentStatement" && (s.variables as Node[]).length === 1) {
        const v = (s.variables as Node[])[0];
        const value = isInt((s.init as Node[])[0]);
        if (v.type === "MemberExpression" && (v.base as Node).type === "Identifier" && (v.base as Node).name === "____exports" && value !== undefined) {
          const field = (v.identifier as Node).name as string;
          if (fieldAssigns.get(field) === 1) info.own.set(field, value);
        }
      }
      if (s.type === "DoStatement") {
        const first = (s.body as Node[])[0];
        const m = first?.type === "LocalStatement" ? requireOf((first.init as Node[])[0]) : undefined;
        if (m && (s.body as Node[]).some((x) => x.type === "ForGenericStatement")) info.reexports.push(m);
      }
    }
    modules.set(name, info);
  }
  const constantsOf = (m: string, seen = new Set<string>()): Map<string, string> => {
    const info = modules.get(m);
    if (!info || seen.has(m)) return new Map();
    seen.add(m);
    const out = new Map<string, string>();
    for (const r of info.reexports) for (const [k, v] of constantsOf(r, seen)) out.set(k, v);
    for (const [k, v] of info.own) out.set(k, v);
    return out;
  };

  const edits: { at: [number, number]; text: string }[] = [];
  let inlined = 0;
  for (const info of modules.values()) {
    // Module-level locals: require results and constant aliases.
    const required = new Map<string, string>();
    const aliases = new Map<string, { value: string; decl: Node }>();
    for (const s of info.body) {
      if (s.type !== "LocalStatement" || (s.variables as Node[]).length !== 1) continue;
      const v = (s.variables as Node[])[0].name as string;
      const init = (s.init as Node[])[0];
      const m = requireOf(init);
      if (m) required.set(v, m);
      else if (init?.type === "MemberExpression" && init.indexer === "." && (init.base as Node).type === "Identifier") {
        const from = required.get((init.base as Node).name as string);
        const value = from === undefined ? undefined : constantsOf(from).get((init.identifier as Node).name as string);
        if (value !== undefined) aliases.set(v, { value, decl: s });
      }
    }
    const own = constantsOf(info.name);
    // Uses: any identifier named like an alias, unless some inner scope declares that name too
    // (then the module is left alone for that name) or it is ever assigned.
    const declaredInside = new Set<string>();
    const assigned = new Set<string>();
    for (const n of walk(info.body)) {
      if (n.type === "LocalStatement" && !info.body.includes(n)) for (const v of n.variables as Node[]) declaredInside.add(v.name as string);
      if (n.type === "FunctionDeclaration") for (const p of n.parameters as Node[]) if (p.type === "Identifier") declaredInside.add(p.name as string);
      if (n.type === "FunctionDeclaration" && n.isLocal && n.identifier) declaredInside.add((n.identifier as Node).name as string);
      if (n.type === "ForNumericStatement") declaredInside.add((n.variable as Node).name as string);
      if (n.type === "ForGenericStatement") for (const v of n.variables as Node[]) declaredInside.add(v.name as string);
      if (n.type === "AssignmentStatement") for (const v of n.variables as Node[]) if (v.type === "Identifier") assigned.add(v.name as string);
    }
    const usable = new Map([...aliases].filter(([a]) => !declaredInside.has(a) && !assigned.has(a) && a !== "____exports"));
    const declRanges = new Set([...usable.values()].map((a) => a.decl));
    for (const { decl } of usable.values()) edits.push({ at: decl.range, text: "" });
    // Identifiers: skip the alias declarations themselves; MemberExpression identifiers are fields (not walked as uses below).
    const visit = (n: unknown, inDecl: boolean): void => {
      if (Array.isArray(n)) {
        for (const x of n) visit(x, inDecl);
        return;
      }
      if (n === null || typeof n !== "object") return;
      const o = n as Node;
      if (declRanges.has(o)) return;
      if (o.type === "Identifier") {
        const a = usable.get(o.name as string);
        if (a && !inDecl) {
          edits.push({ at: o.range, text: a.value });
          inlined++;
        }
        return;
      }
      if (o.type === "MemberExpression") {
        const base = o.base as Node;
        const field = (o.identifier as Node).name as string;
        if (o.indexer === "." && base.type === "Identifier" && base.name === "____exports" && own.has(field) && info.own.has(field) === true) {
          // A read of the module's own constant (its defining assignment is an AssignmentStatement target, handled below).
          edits.push({ at: o.range, text: own.get(field)! });
          inlined++;
          return;
        }
        visit(base, inDecl);
        return;
      }
      if (o.type === "AssignmentStatement") {
        // Targets are not reads: visit only inside them (a[i] = ...), never replace a whole target.
        for (const v of o.variables as Node[]) {
          if (v.type === "MemberExpression") visit((v as Node).base, inDecl);
          else if (v.type === "IndexExpression") {
            visit((v as Node).base, inDecl);
            visit((v as Node).index, inDecl);
          }
        }
        visit(o.init, inDecl);
        return;
      }
      if (o.type === "TableKeyString") {
        visit(o.value, inDecl);
        return;
      }
      for (const [k, v] of Object.entries(o)) if (k !== "range" && v && typeof v === "object") visit(v, inDecl);
    };
    visit(info.body, false);
  }
  edits.sort((x, y) => x.at[0] - y.at[0]);
  const parts: string[] = [];
  let pos = 0;
  for (const e of edits) {
    if (e.at[0] < pos) throw new Error("inline-constants: overlapping edits");
    parts.push(src.slice(pos, e.at[0]), e.text);
    pos = e.at[1];
  }
  parts.push(src.slice(pos));
  return { lua: parts.join(""), inlined };
}
