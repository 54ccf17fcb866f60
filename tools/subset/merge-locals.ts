/**
 * Merge runs of one-name local declarations into one statement:
 * `local a=x local b=y` -> `local a,b=x,y`, 6 bytes fewer per merge (issue 10
 * item 6: the board receives every byte at 115200 baud; TSTL declares one
 * local a statement, ~230 such runs in the image).
 *
 * The same meaning, by Lua 5.3's rules (manual §3.3.7, lparser.c localstat):
 * the expressions are evaluated left to right before any of the new locals
 * exists, and each list has as many expressions as names, so a call or `...`
 * still gives exactly one value. So a statement joins the run only if its
 * expression names none of the run's locals (anywhere, nested functions
 * included: the name would then mean the outer variable) and it declares no
 * name the run declared (a run that declared _ENV takes nothing more: any free
 * name means _ENV.name). Only `local NAME = EXPR` statements in the same
 * block, one after the other, are merged; `local function`, several names,
 * or a name without a value end a run. The result is parsed again.
 */
import { parseLua, type Node } from "./lua-ast.js";

/** Every identifier name under n (fields and labels too: conservative). */
function names(n: unknown, out: Set<string>): Set<string> {
  if (Array.isArray(n)) for (const x of n) names(x, out);
  else if (n !== null && typeof n === "object") {
    const o = n as Node;
    if (o.type === "Identifier") out.add(o.name as string);
    for (const [k, v] of Object.entries(o)) if (k !== "range") names(v, out);
  }
  return out;
}

/** The text of `local NAME = EXPR` after its `=`. */
function exprText(src: string, st: Node): string {
  const name = (st.variables as Node[])[0];
  const eq = src.indexOf("=", name.range[1]);
  return src.slice(eq + 1, st.range[1]).trim();
}

export function mergeLocals(src: string): { lua: string; merged: number } {
  // A run inside the expression of another is merged on the next pass.
  let total = 0;
  for (;;) {
    const r = mergePass(src);
    if (r.merged === 0) return { lua: src, merged: total };
    src = r.lua;
    total += r.merged;
  }
}

function mergePass(src: string): { lua: string; merged: number } {
  const runs: Node[][] = [];
  const visit = (n: unknown): void => {
    if (Array.isArray(n)) {
      n.forEach(visit);
      return;
    }
    if (n === null || typeof n !== "object") return;
    const o = n as Node;
    if (Array.isArray(o.body)) collect(o.body as Node[]);
    for (const [k, v] of Object.entries(o)) if (k !== "range") visit(v);
  };
  const collect = (body: Node[]): void => {
    let run: Node[] = [];
    let declared = new Set<string>();
    const end = () => {
      if (run.length > 1) runs.push(run);
      run = [];
      declared = new Set();
    };
    for (const st of body) {
      const vars = st.type === "LocalStatement" ? (st.variables as Node[]) : [];
      if (vars.length !== 1 || (st.init as Node[]).length !== 1) {
        end();
        continue;
      }
      const name = vars[0].name as string;
      // Every free name in the expression is _ENV.name (lparser.c singlevar looks
      // _ENV up among the active locals): a run that declared _ENV ends here.
      const uses = names(st.init, new Set(["_ENV"]));
      if (declared.has(name) || [...declared].some((d) => uses.has(d))) end();
      run.push(st);
      declared.add(name);
    }
    end();
  };
  visit(parseLua(src));
  runs.sort((a, b) => a[0].range[0] - b[0].range[0]);
  const parts: string[] = [];
  let pos = 0;
  let merged = 0;
  for (const run of runs) {
    // A run inside an expression of a run already merged stays as it is (its text went whole).
    if (run[0].range[0] < pos) continue;
    parts.push(src.slice(pos, run[0].range[0]));
    const vars = run.map((st) => (st.variables as Node[])[0].name as string);
    parts.push(`local ${vars.join(",")}=${run.map((st) => exprText(src, st)).join(",")}`);
    pos = run[run.length - 1].range[1];
    merged += run.length - 1;
  }
  parts.push(src.slice(pos));
  const lua = parts.join("");
  parseLua(lua); // throws if the merge broke the syntax
  return { lua, merged };
}
