/**
 * Split TSTL's one-file bundle into files the keyfob loads as it needs them
 * (issue 10 item 5: a locked keyfob never loads the provisioning code).
 *
 * TSTL writes a bundle as a header (its own `require`), a table
 * `____modules = { ["a.b"] = function(...) <module> end, ... }` and a tail
 * that requires the entry. Each module's imports are `require("x.y")` calls
 * in its text. split() keeps in the first file (the core) every module the
 * entry reaches through such calls, and puts each lazy module named by the
 * caller, with every module only it reaches, in a file of its own.
 *
 * A lazy module is reached at run time through the core's own require, which
 * the core's tail hands to the entry's start() (firmware/app/main.ts; device.ts
 * calls it under pcall, and keeps it only on a keyfob not yet locked): the core's header
 * maps the module to its file, runs that file with (modules, require) so it
 * adds its modules to the core's table and shares the core's modules and
 * cache, then carries on as for any module. It loads FILE.lc (the bytecode
 * node.compile wrote at install) or, failing that, FILE.lua; a file that is
 * missing or does not load makes require raise, which the caller turns into
 * a refusal. No global is defined and nothing else on the board is read.
 */

export interface BundleModule {
  name: string;
  /** The module function's body (between `function(...)` and its `end,`). */
  body: string;
}

export interface ParsedBundle {
  modules: BundleModule[];
  entry: string;
}

const START = /^\["([^"\n]+)"\] = function\(\.\.\.\) ?$/;

/** The modules and entry of a TSTL bundle; throws if the text is not laid out as TSTL 1.x writes it. */
export function parseBundle(lua: string): ParsedBundle {
  const lines = lua.split("\n");
  const open = lines.indexOf("____modules = {");
  const tailAt = lines.findIndex((l) => /^local ____entry = require\("([^"]+)", \.\.\.\)$/.test(l));
  if (open < 0 || tailAt < 0 || lines[tailAt - 1] !== "}") throw new Error("split-bundle: not a TSTL bundle (no `____modules = {` or entry line)");
  const entry = /require\("([^"]+)"/.exec(lines[tailAt])![1];
  const modules: BundleModule[] = [];
  let cur: { name: string; from: number } | undefined;
  const close = (to: number) => {
    if (!cur) return;
    const text = lines.slice(cur.from, to);
    const last = text.length - 1;
    if (text[last] !== " end,") throw new Error(`split-bundle: module ${cur.name} does not end with " end,"`);
    modules.push({ name: cur.name, body: text.slice(0, last).join("\n") });
  };
  for (let k = open + 1; k < tailAt - 1; k++) {
    const m = START.exec(lines[k]);
    if (m) {
      close(k);
      cur = { name: m[1], from: k + 1 };
    }
  }
  close(tailAt - 1);
  return { modules, entry };
}

/** Names a module requires statically (its imports): `require("x")` with a literal. */
export function staticRequires(body: string): string[] {
  return [...body.matchAll(/\brequire\("([^"\n]+)"\)/g)].map((m) => m[1]);
}

function closure(from: string[], byName: Map<string, BundleModule>, stop: Set<string>): Set<string> {
  const seen = new Set<string>();
  const todo = [...from];
  while (todo.length > 0) {
    const n = todo.pop()!;
    if (seen.has(n) || stop.has(n)) continue;
    const m = byName.get(n);
    if (!m) throw new Error(`split-bundle: ${n} is required but not in the bundle`);
    seen.add(n);
    todo.push(...staticRequires(m.body));
  }
  return seen;
}

export interface SplitFile {
  /** File name without extension (the board holds NAME.lc, or NAME.lua). */
  base: string;
  modules: string[];
  /** The name each module of the file goes by in it (a short id, or a lazy module's own name). */
  ids: Record<string, string>;
  lua: string;
}

/** Modules in an order where each comes after every module it requires (depth-first from the roots). */
function dependencyOrder(roots: string[], byName: Map<string, BundleModule>, within: Set<string>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (n: string) => {
    if (seen.has(n) || !within.has(n)) return;
    seen.add(n);
    for (const d of staticRequires(byName.get(n)!.body)) visit(d);
    out.push(n);
  };
  for (const r of roots) visit(r);
  return out;
}

/** Cut names (in order) into `parts` runs of about equal text size. */
function partition(names: string[], size: (n: string) => number, parts: number): string[][] {
  const total = names.reduce((t, n) => t + size(n), 0);
  const out: string[][] = [];
  let cur: string[] = [];
  let acc = 0;
  for (const n of names) {
    if (cur.length > 0 && out.length < parts - 1 && acc + size(n) / 2 > (total * (out.length + 1)) / parts) {
      out.push(cur);
      cur = [];
    }
    cur.push(n);
    acc += size(n);
  }
  out.push(cur);
  while (out.length < parts) out.push([]);
  return out;
}

const quote = (s: string) => JSON.stringify(s);
/** A module's key: a short id is an integer (no quotes: 2 characters, and 4 escaped bytes on the REPL wire, per use), a lazy module keeps its name. */
const key = (id: string) => (/^\d+$/.test(id) ? id : quote(id));
const moduleEntry = (name: string, body: string) => `____modules[${key(name)}] = function(...)\n${body}\n end`;

/**
 * Split the bundle:
 * - the core (the entry's static closure): the first file holds only the
 *   loader; the modules go, in dependency order, to the other core files,
 *   of about equal size: each must compile on the board (node.compile holds
 *   the whole file in RAM). At boot the loader loads each further core file,
 *   which registers and runs its modules, so only one file's module bodies
 *   are in RAM at a time;
 * - one file per lazy module ({module: base}) with what only that module
 *   reaches, loaded by require on first use.
 * A lazy module the core reaches statically is an error (it would never be lazy).
 */
/**
 * Modules left empty by the build's passes (every export folded into its
 * readers or dropped: `local ____exports = {}` and `return ____exports`)
 * run nothing and give nothing: a require of one whose result no code reads
 * (`local ____x = require("m")` with ____x used nowhere else in the module,
 * or a bare `require("m")`) is removed, and a module nothing requires any
 * more is not in the image (the closure below). Bytes on the wire at every
 * install, and a table each for as long as the loader lives.
 */
export function dropEmptyRequires(modules: BundleModule[]): { modules: BundleModule[]; dropped: number } {
  const empty = new Set(modules.filter((m) => /^\s*local (\w+) = \{\}\s*return \1\s*$/.test(m.body)).map((m) => m.name));
  let dropped = 0;
  const out = modules.map((m) => {
    const lines = m.body.split("\n");
    const kept = lines.filter((line) => {
      const bare = /^\s*require\("([^"\n]+)"\)\s*$/.exec(line);
      if (bare && empty.has(bare[1])) {
        dropped++;
        return false;
      }
      const local = /^\s*local (\w+) = require\("([^"\n]+)"\)\s*$/.exec(line);
      if (!local || !empty.has(local[2])) return true;
      const uses = m.body.match(new RegExp(`(?<![\\w.:])${local[1]}(?!\\w)`, "g"))?.length ?? 0;
      if (uses > 1) return true;
      dropped++;
      return false;
    });
    return { name: m.name, body: kept.join("\n") };
  });
  return { modules: out, dropped };
}

export function splitBundle(lua: string, coreBases: string[], lazy: Record<string, string>): SplitFile[] {
  const parsed = parseBundle(lua);
  const { entry } = parsed;
  const modules = dropEmptyRequires(parsed.modules).modules;
  const byName = new Map(modules.map((m) => [m.name, m]));
  const core = closure([entry], byName, new Set());
  for (const name of Object.keys(lazy)) {
    if (!byName.has(name)) throw new Error(`split-bundle: lazy module ${name} is not in the bundle`);
    if (core.has(name)) throw new Error(`split-bundle: lazy module ${name} is imported by the core; import it as a type only`);
  }
  // The first file is the loader alone: a chunk's function keeps every function
  // prototype of its file until it returns, and the first one runs until boot is over.
  const parts: string[][] = [[], ...partition(dependencyOrder([entry], byName, core), (n) => byName.get(n)!.body.length, coreBases.length - 1)];
  // Every module but the lazy ones (whose names the core's code holds as strings)
  // under a short id, an integer: each is on the wire at every install, once per require.
  const shortNames = new Map(modules.filter((m) => !(m.name in lazy)).map((m, k) => [m.name, String(k)]));
  const id = (n: string) => shortNames.get(n) ?? n;
  const entryOf = (n: string) => moduleEntry(id(n), byName.get(n)!.body.replace(/\brequire\("([^"\n]+)"\)/g, (whole, r: string) => (shortNames.has(r) ? `require(${key(id(r))})` : whole)));
  const idsOf = (names: string[]) => Object.fromEntries(names.map((n) => [id(n), n]));
  const files: SplitFile[] = [];
  const placed = new Set(core);
  const chunkMap = Object.entries(lazy).map(([name, base]) => `[${quote(name)}] = ${quote(base)}`).join(", ");
  const runAll = (names: string[]) => names.map((n) => `require(${key(id(n))})`);
  files.push({
    base: coreBases[0],
    modules: parts[0],
    ids: idsOf(parts[0]),
    lua: [
      "local ____modules = {}",
      "local ____moduleCache = {}",
      `local ____chunks = {${chunkMap}}`,
      "local function ____load(chunk)",
      '    local load, err = loadfile(chunk .. ".lc")',
      '    if not load then load, err = loadfile(chunk .. ".lua") end',
      '    if not load then error("cannot load " .. chunk .. ": " .. tostring(err)) end',
      "    return load",
      "end",
      "local function require(file, ...)",
      "    local cached = ____moduleCache[file]",
      "    if cached then return cached.value end",
      "    local module = ____modules[file]",
      "    local chunk = ____chunks[file]",
      "    if module == nil and chunk then",
      "        ____load(chunk)(____modules, require)",
      "        module = ____modules[file]",
      "    end",
      "    if module == nil then error(\"module '\" .. file .. \"' not found\") end",
      "    local value",
      '    if select("#", ...) > 0 then value = module(...) else value = module(file) end',
      // The module's body has run: drop it, or its code would stay resident for as long as require does.
      "    ____modules[file] = nil",
      "    ____moduleCache[file] = { value = value }",
      "    return value",
      "end",
      ...parts[0].map(entryOf),
      ...runAll(parts[0]),
      // Each further core file registers and runs its modules; then its bodies are garbage.
      ...coreBases.slice(1).flatMap((b) => [`____load(${quote(b)})(____modules, require)`, "pcall(collectgarbage)"]),
      `local ____entry = require(${key(id(entry))}, ...)`,
      // start(load) gets this require: only what start keeps (a keyfob that
      // is not locked) holds it after boot, so a locked keyfob's module
      // bodies and export tables become garbage.
      "local ____start = ____entry.start",
      "____entry.start = function() return ____start(require) end",
      "return ____entry",
      "",
    ].join("\n"),
  });
  for (let k = 1; k < coreBases.length; k++) {
    files.push({
      base: coreBases[k],
      modules: parts[k],
      ids: idsOf(parts[k]),
      lua: [
        `-- ${coreBases[k]}: part ${k + 1} of the core, loaded and run at boot by ${coreBases[0]} (tools/split-bundle.ts)`,
        "local ____modules, require = ...",
        ...parts[k].map(entryOf),
        ...runAll(parts[k]),
        "",
      ].join("\n"),
    });
  }
  const byBase = new Map<string, string[]>();
  for (const [name, base] of Object.entries(lazy)) byBase.set(base, [...(byBase.get(base) ?? []), name]);
  for (const [base, roots] of byBase) {
    const own = closure(roots, byName, placed);
    for (const n of own) placed.add(n);
    const names = dependencyOrder(roots, byName, own);
    files.push({
      base,
      modules: names,
      ids: idsOf(names),
      lua: [
        `-- ${base}: modules the core (${coreBases[0]}) loads on demand (tools/split-bundle.ts)`,
        "local ____modules, require = ...",
        ...names.map(entryOf),
        "",
      ].join("\n"),
    });
  }
  // A module nothing requires at run time (a type-only import pulls its file into the program) is dropped.
  return files;
}
