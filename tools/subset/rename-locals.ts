/**
 * Rename every local variable of a Lua chunk (locals, parameters, loop
 * variables, `local function` names) to a short name, scope by scope, with
 * luaparse (fstirlitz/luaparse, Lua 5.3 grammar) for the syntax tree.
 *
 * Why: the board receives every byte at 115200 baud through its REPL
 * (issue 10 item 6), and identifiers are most of TSTL's output; the board
 * boots stripped bytecode, where local names do not exist at all, so they
 * buy nothing on the device.
 *
 * Safe by construction: each binding gets a name of its own, used by no
 * other binding and by no global the chunk reads or writes, so no rename can
 * capture or shadow anything. Fields (`a.b`, `{b = 1}`), labels and `self`
 * are never touched. The result is parsed again and must have the same
 * shape (node types and every non-identifier token), or this throws.
 */
import { parseLua } from "./lua-ast.js";
import { luaShortNames } from "./lua-tokens.js";

type Node = { type: string; range?: [number, number]; [k: string]: unknown };

interface Binding {
  uses: [number, number][];
}

interface Scope {
  names: Map<string, Binding>;
  parent: Scope | undefined;
}

/** Walk the tree, resolving every identifier that names a variable. */
function resolve(chunk: Node): { bindings: Binding[]; globals: Set<string> } {
  const bindings: Binding[] = [];
  const globals = new Set<string>();
  const declare = (scope: Scope, id: Node) => {
    const b: Binding = { uses: [id.range!] };
    bindings.push(b);
    scope.names.set(id.name as string, b);
  };
  const use = (scope: Scope, id: Node) => {
    const name = id.name as string;
    for (let s: Scope | undefined = scope; s; s = s.parent) {
      const b = s.names.get(name);
      if (b) {
        b.uses.push(id.range!);
        return;
      }
    }
    globals.add(name);
  };
  const child = (scope: Scope): Scope => ({ names: new Map(), parent: scope });

  const block = (scope: Scope, body: Node[]) => {
    for (const st of body) stmt(scope, st);
  };
  const exprs = (scope: Scope, list: Node[] | undefined) => {
    for (const e of list ?? []) expr(scope, e);
  };
  const fn = (scope: Scope, f: Node) => {
    const inner = child(scope);
    for (const p of f.parameters as Node[]) if (p.type === "Identifier") declare(inner, p);
    block(inner, f.body as Node[]);
  };
  function expr(scope: Scope, e: Node | null | undefined): void {
    if (!e) return;
    switch (e.type) {
      case "Identifier":
        use(scope, e);
        return;
      case "StringLiteral":
      case "NumericLiteral":
      case "BooleanLiteral":
      case "NilLiteral":
      case "VarargLiteral":
        return;
      case "FunctionDeclaration":
        fn(scope, e);
        return;
      case "TableConstructorExpression":
        for (const f of e.fields as Node[]) {
          if (f.type === "TableKey") expr(scope, f.key as Node);
          // TableKeyString's key is a field name, not a variable.
          expr(scope, f.value as Node);
        }
        return;
      case "BinaryExpression":
      case "LogicalExpression":
        expr(scope, e.left as Node);
        expr(scope, e.right as Node);
        return;
      case "UnaryExpression":
        expr(scope, e.argument as Node);
        return;
      case "MemberExpression":
        expr(scope, e.base as Node);
        return;
      case "IndexExpression":
        expr(scope, e.base as Node);
        expr(scope, e.index as Node);
        return;
      case "CallExpression":
        expr(scope, e.base as Node);
        exprs(scope, e.arguments as Node[]);
        return;
      case "TableCallExpression":
      case "StringCallExpression":
        expr(scope, e.base as Node);
        expr(scope, (e.arguments ?? e.argument) as Node);
        return;
      default:
        throw new Error(`rename-locals: unexpected expression ${e.type}`);
    }
  }
  function stmt(scope: Scope, s: Node): void {
    switch (s.type) {
      case "LocalStatement":
        exprs(scope, s.init as Node[]);
        for (const v of s.variables as Node[]) declare(scope, v);
        return;
      case "AssignmentStatement":
        exprs(scope, s.init as Node[]);
        exprs(scope, s.variables as Node[]);
        return;
      case "CallStatement":
        expr(scope, s.expression as Node);
        return;
      case "FunctionDeclaration": {
        const id = s.identifier as Node | null;
        if (s.isLocal && id) declare(scope, id);
        else if (id) {
          // `function a.b:c()`: a is a variable; with ':' the body has an implicit self (never renamed).
          expr(scope, id);
        }
        fn(scope, s);
        return;
      }
      case "ReturnStatement":
        exprs(scope, s.arguments as Node[]);
        return;
      case "IfStatement":
        for (const c of s.clauses as Node[]) {
          expr(scope, c.condition as Node);
          block(child(scope), c.body as Node[]);
        }
        return;
      case "WhileStatement":
        expr(scope, s.condition as Node);
        block(child(scope), s.body as Node[]);
        return;
      case "DoStatement":
        block(child(scope), s.body as Node[]);
        return;
      case "RepeatStatement": {
        // The condition sees the body's locals.
        const inner = child(scope);
        block(inner, s.body as Node[]);
        expr(inner, s.condition as Node);
        return;
      }
      case "ForNumericStatement": {
        expr(scope, s.start as Node);
        expr(scope, s.end as Node);
        expr(scope, s.step as Node);
        const inner = child(scope);
        declare(inner, s.variable as Node);
        block(inner, s.body as Node[]);
        return;
      }
      case "ForGenericStatement": {
        exprs(scope, s.iterators as Node[]);
        const inner = child(scope);
        for (const v of s.variables as Node[]) declare(inner, v);
        block(inner, s.body as Node[]);
        return;
      }
      case "BreakStatement":
      case "GotoStatement":
      case "LabelStatement":
        return;
      default:
        throw new Error(`rename-locals: unexpected statement ${s.type}`);
    }
  }
  block({ names: new Map(), parent: undefined }, chunk.body as Node[]);
  return { bindings, globals };
}

/** The shape of a tree without identifier names: what must not change. */
function shape(n: unknown): unknown {
  if (Array.isArray(n)) return n.map(shape);
  if (n === null || typeof n !== "object") return n;
  const o = n as Node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === "range" || k === "raw") continue;
    if (o.type === "Identifier" && k === "name") continue;
    out[k] = shape(v);
  }
  return out;
}

export function renameLocals(src: string): { lua: string; renamed: number } {
  const tree = parseLua(src) as Node;
  const { bindings, globals } = resolve(tree);
  // Most used first get the shortest names.
  const order = [...bindings].sort((a, b) => b.uses.length - a.uses.length);
  const gen = luaShortNames();
  const edits: { at: [number, number]; name: string }[] = [];
  for (const b of order) {
    let name: string;
    do name = gen.next().value as string;
    while (globals.has(name) || name === "self");
    for (const at of b.uses) edits.push({ at, name });
  }
  edits.sort((x, y) => x.at[0] - y.at[0]);
  const parts: string[] = [];
  let pos = 0;
  for (const e of edits) {
    parts.push(src.slice(pos, e.at[0]), e.name);
    pos = e.at[1];
  }
  parts.push(src.slice(pos));
  const lua = parts.join("");
  if (JSON.stringify(shape(parseLua(lua) as Node)) !== JSON.stringify(shape(tree))) throw new Error("rename-locals: the renamed chunk parses to another shape");
  return { lua, renamed: bindings.length };
}
