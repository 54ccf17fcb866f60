/**
 * CLI of the subset checker.
 *
 *   node build/node/tools/subset/cli.js [--root DIR] [--config FILE] [--lua FILE]... [FILE.ts...]
 *
 * Without .ts files it checks every subset file under <root>/firmware and
 * <root>/protocol. --lua post-checks an emitted Lua file. Violations go to
 * stdout as `file:line:col: rule-id: message`; exit 1 if there is any, 2 on
 * bad usage.
 */
import { readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import { checkSubset, subsetFiles } from "./check-subset.js";
import { checkLuaOutput } from "./check-lua-output.js";
import { formatViolation, type Violation } from "./rules.js";

const USAGE = "usage: subset [--root DIR] [--config FILE] [--lua FILE]... [FILE.ts...]";

function main(argv: string[]): number {
  let root = process.cwd();
  let configPath: string | undefined;
  const luaFiles: string[] = [];
  const tsFiles: string[] = [];
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    const value = (): string => {
      const v = argv[++k];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === "--root") root = resolve(value());
    else if (a === "--config") configPath = resolve(value());
    else if (a === "--lua") luaFiles.push(value());
    else if (a === "-h" || a === "--help") {
      console.log(USAGE);
      return 0;
    } else if (a.startsWith("-")) throw new UsageError(`unknown option ${a}`);
    else tsFiles.push(a);
  }
  const violations: Violation[] = [];
  let checked = 0;
  if (tsFiles.length > 0 || luaFiles.length === 0) {
    const files = tsFiles.length > 0 ? tsFiles : subsetFiles(root).map((f) => relative(process.cwd(), f));
    violations.push(...checkSubset(files, { root, configPath }));
    checked += files.length;
  }
  for (const f of luaFiles) {
    violations.push(...checkLuaOutput(readFileSync(f, "utf8"), f));
    checked++;
  }
  for (const v of violations) console.log(formatViolation(v));
  console.error(
    violations.length === 0
      ? `subset: ${checked} files checked, no violations`
      : `subset: ${violations.length} violation(s) in ${checked} files checked`,
  );
  return violations.length === 0 ? 0 : 1;
}

class UsageError extends Error {}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  console.error(`subset: ${(e as Error).message}`);
  if (e instanceof UsageError) console.error(USAGE);
  process.exitCode = 2;
}
