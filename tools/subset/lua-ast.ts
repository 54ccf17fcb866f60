/**
 * The Lua syntax tree the image build's passes read (luaparse, Lua 5.3, with
 * source ranges): one parse call and the helpers every pass shares
 * (inline-constants.ts, localize-exports.ts, shake-exports.ts, rename-locals.ts).
 */
import luaparse from "luaparse";

/** A luaparse node: its type, its source range and its fields. */
export type Node = { type: string; range: [number, number]; [k: string]: unknown };

/** Parse a chunk of Lua 5.3 with source ranges (what the passes splice by). */
export function parseLua(src: string): Node {
  return luaparse.parse(src, { luaVersion: "5.3", ranges: true, comments: false, scope: false, locations: false }) as unknown as Node;
}

/** Every node below n (objects with a type), depth first. */
export function* walk(n: unknown): Generator<Node> {
  if (Array.isArray(n)) {
    for (const x of n) yield* walk(x);
    return;
  }
  if (n === null || typeof n !== "object") return;
  const o = n as Node;
  if (typeof o.type === "string") yield o;
  for (const [k, v] of Object.entries(o)) if (k !== "range" && v && typeof v === "object") yield* walk(v);
}

/** NAME when n is `____exports.NAME` (TSTL's export table), else undefined. */
export function exportsField(n: Node | undefined): string | undefined {
  if (!n || n.type !== "MemberExpression" || n.indexer !== ".") return undefined;
  const base = n.base as Node;
  return base.type === "Identifier" && base.name === "____exports" ? ((n.identifier as Node).name as string) : undefined;
}
