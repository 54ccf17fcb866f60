/**
 * The subset checker (tools/subset) and the firmware build (tools/build-firmware).
 * Fixtures: test/fixtures/subset/<rule-id>.ts, each expected violation marked
 * on its line with `// expect: <rule-id>...`.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ALL_RULES,
  checkLuaOutput,
  checkSubset,
  formatViolation,
  LUA_RULES,
  SOURCE_RULES,
  subsetFiles,
  tokenizeLua,
  type Violation,
} from "../../tools/subset/index.js";
import { callLua, LUA_VMS } from "../support/lua-vm.js";
import { BUILD, NODE_BUILD, ROOT } from "../support/paths.js";

const FIXTURES = join(ROOT, "test", "fixtures", "subset");
const CONFIG = join(ROOT, "tsconfig.lua.json");
const fixtureFiles = readdirSync(FIXTURES)
  .filter((f) => f.endsWith(".ts"))
  .sort()
  .map((f) => join(FIXTURES, f));

/** `line:rule` for every `// expect:` annotation, one entry per expected violation. */
function expectedOf(file: string): string[] {
  const out: string[] = [];
  readFileSync(file, "utf8")
    .split("\n")
    .forEach((text, k) => {
      const m = /\/\/ expect: (.*)$/.exec(text);
      if (m) for (const rule of m[1].trim().split(/\s+/)) out.push(`${k + 1}:${rule}`);
    });
  return out.sort();
}

const keyed = (vs: Violation[]): string[] => vs.map((v) => `${v.line}:${v.rule}`).sort();

describe("subset checker on fixtures", { timeout: 120_000 }, () => {
  let byFile: Map<string, Violation[]>;

  beforeAll(() => {
    const all = checkSubset(fixtureFiles, { configPath: CONFIG });
    byFile = new Map(fixtureFiles.map((f) => [f, all.filter((v) => v.file === f)]));
    // Nothing may be reported for a file the checker was not given.
    expect(all.filter((v) => !byFile.has(v.file))).toEqual([]);
  }, 120_000);

  it.each(fixtureFiles.map((f) => [relative(FIXTURES, f), f]))("%s: reports exactly the annotated lines", (_name, file) => {
    expect(keyed(byFile.get(file)!)).toEqual(expectedOf(file));
  });

  it("has a fixture named after every source rule that fires that rule", () => {
    for (const rule of Object.keys(SOURCE_RULES)) {
      const file = join(FIXTURES, `${rule}.ts`);
      expect(existsSync(file), `fixture for ${rule}`).toBe(true);
      expect(byFile.get(file)!.some((v) => v.rule === rule), `${rule} fires in its fixture`).toBe(true);
    }
  });

  it("accepts the clean look-alikes", () => {
    const clean = join(FIXTURES, "clean.ts");
    expect(byFile.get(clean)).toEqual([]);
    // The look-alikes are real code, not an empty file.
    expect(readFileSync(clean, "utf8")).toMatch(/shr\(w, 24\)/);
  });

  it("points at the offending token and formats file:line:col: rule: message", () => {
    const file = join(FIXTURES, "float-division.ts");
    const [first] = byFile.get(file)!;
    const lineText = readFileSync(file, "utf8").split("\n")[first.line - 1];
    expect(lineText[first.col - 1]).toBe("/");
    expect(formatViolation(first)).toBe(`${file}:2:13: float-division: ${SOURCE_RULES["float-division"]}`);
  });

  it("keeps the caller's spelling of paths", () => {
    const rel = relative(process.cwd(), join(FIXTURES, "in.ts"));
    const [v] = checkSubset([rel], { configPath: CONFIG });
    expect(v.file).toBe(rel);
    expect(v.rule).toBe("in");
  });

  it("fails loudly on a missing file or config instead of passing", () => {
    expect(() => checkSubset([join(FIXTURES, "no-such.ts")], { configPath: CONFIG })).toThrow(/does not exist/);
    expect(() => checkSubset(fixtureFiles, { configPath: join(FIXTURES, "none.json") })).toThrow(/does not exist/);
    expect(() => checkSubset([join(FIXTURES, "README.md")], { configPath: CONFIG })).toThrow(/not a \.ts file/);
    expect(() => checkSubset([join(ROOT, "core", "intrinsics.ts")], { configPath: CONFIG })).toThrow(/never transpiled/);
  });
});

describe("SUBSET.md", () => {
  it("documents every rule id", () => {
    const doc = readFileSync(join(ROOT, "firmware", "SUBSET.md"), "utf8");
    for (const rule of Object.keys(ALL_RULES)) expect(doc, rule).toContain(`\`${rule}\``);
  });
});

describe("Lua post-check", () => {
  const rules = (lua: string): string[] => checkLuaOutput(lua, "x.lua").map((v) => `${v.line}:${v.col}:${v.rule}`);

  it("reports float literals in every Lua spelling", () => {
    expect(rules("local a = 1.5\nlocal b = 1e3\nlocal c = .5\nlocal d = 0x1p4\nlocal e = 3.\nlocal f = 0xA.8")).toEqual([
      "1:11:lua-float-literal",
      "2:11:lua-float-literal",
      "3:11:lua-float-literal",
      "4:11:lua-float-literal",
      "5:11:lua-float-literal",
      "6:11:lua-float-literal",
    ]);
  });

  it("reports integer literals >= 2^31, decimal or hex, and accepts 2^31 - 1", () => {
    expect(rules("x = 4294967295\ny = -2147483648\nz = 0x80000000\nw = 2147483647 + 0x7FFFFFFF")).toEqual([
      "1:5:lua-big-literal",
      "2:6:lua-big-literal",
      "3:5:lua-big-literal",
    ]);
  });

  it("reports lualib helpers and the lualib require", () => {
    const lua = 'local ____lualib = require("lualib_bundle")\nlocal __TS__ArrayPush = ____lualib.__TS__ArrayPush\nlocal l2 = require "lualib_bundle"';
    expect(rules(lua)).toEqual([
      "1:28:lua-lualib-require",
      "2:7:lua-lualib-helper",
      "2:36:lua-lualib-helper",
      "3:20:lua-lualib-require",
    ]);
  });

  it("reports float operators but not floor division or concatenation", () => {
    expect(rules("a = b / c\nd = e ^ 2\nf = g // h\ni = j .. 1 .. k")).toEqual(["1:7:lua-float-operator", "2:7:lua-float-operator"]);
  });

  it("ignores the same text inside strings and comments", () => {
    const bad = '1.5 4294967295 __TS__Spread require("lualib_bundle") a/b 2^3';
    const lua = [
      `local s1 = "${bad.replace(/"/g, '\\"')}"`,
      `local s2 = '${bad}'`,
      `local s3 = [[${bad}]]`,
      `local s4 = [==[ ]] ${bad} ]==]`,
      `-- ${bad}`,
      `--[[ ${bad}`,
      `${bad} ]]`,
      `--[=[ ]] ${bad} ]=]`,
      `local s5 = "\\"${bad.replace(/"/g, "")}"`,
      "local n = 7",
    ].join("\n");
    expect(rules(lua)).toEqual([]);
    // The lexer really did see the code around the strings.
    expect(tokenizeLua(lua).filter((t) => t.kind === "number").map((t) => t.text)).toEqual(["7"]);
  });

  it("requires lualib only when the string is require's argument", () => {
    expect(rules('local name = "lualib_bundle"')).toEqual([]);
  });

  it("reports text that is not Lua instead of passing it", () => {
    expect(rules('x = "unterminated')).toEqual(["1:5:lua-syntax"]);
    expect(rules("x = [[ never closed")).toEqual(["1:5:lua-syntax"]);
    expect(rules("x = 1abc")).toEqual(["1:5:lua-syntax"]);
  });

  it("documents one reason per Lua rule", () => {
    for (const rule of Object.keys(LUA_RULES)) expect(LUA_RULES[rule as keyof typeof LUA_RULES].length).toBeGreaterThan(10);
  });
});

describe("the real firmware/ and protocol/ tree", { timeout: 120_000 }, () => {
  it("has files to check, and none violates the subset", () => {
    const files = subsetFiles(ROOT);
    expect(files.length).toBeGreaterThan(0);
    expect(files.some((f) => f.endsWith(join("core", "intrinsics.ts")))).toBe(false);
    const violations = checkSubset(files, { root: ROOT });
    expect(violations.map(formatViolation)).toEqual([]);
  });
});

// Each case starts node, loads typescript and type-checks a tree: seconds of
// CPU each, far more on a loaded machine.
describe("build-firmware", { timeout: 240_000 }, () => {
  const script = join(NODE_BUILD, "tools", "build-firmware.js");
  const cli = join(NODE_BUILD, "tools", "subset", "cli.js");
  let tmp: string;

  /** A minimal project: the real config, plugin and intrinsics, plus the given sources. */
  function project(name: string, sources: Record<string, string>): string {
    const root = join(tmp, name);
    for (const rel of ["tsconfig.lua.json", join("tools", "tstl-int32-plugin.cjs"), join("core", "intrinsics.ts")]) {
      mkdirSync(dirname(join(root, rel)), { recursive: true });
      copyFileSync(join(ROOT, rel), join(root, rel));
    }
    // Types (lua-types) and the plugin's requires resolve from the real node_modules.
    symlinkSync(join(ROOT, "node_modules"), join(root, "node_modules"));
    for (const [rel, text] of Object.entries(sources)) {
      mkdirSync(dirname(join(root, rel)), { recursive: true });
      writeFileSync(join(root, rel), text);
    }
    return root;
  }

  const run = (file: string, args: string[]) => spawnSync(process.execPath, [file, ...args], { cwd: ROOT, encoding: "utf8" });

  beforeAll(() => {
    expect(existsSync(script), `${script} missing: build the Node tree first (npx tsc -p tsconfig.node.json)`).toBe(true);
    mkdirSync(BUILD, { recursive: true });
    tmp = mkdtempSync(join(BUILD, "subset-test-"));
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const GOOD = {
    "firmware/image.ts": 'import { shr } from "../core/intrinsics.js";\nexport function top(x: number): number {\n  return shr(x, 24) & 255;\n}\n',
  };

  it("builds a clean tree and prints the image size and module count; the image runs on 32- and 64-bit Lua", async () => {
    const root = project("good", GOOD);
    const out = join(root, "out");
    const r = run(script, ["--root", root, "--out-dir", out]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const image = join(out, "fobkit.lua");
    const size = readFileSync(image).length;
    expect(r.stdout.trim()).toMatch(new RegExp(`^${relative(ROOT, image).replace(/[./]/g, "\\$&")}: ${size} bytes \\(1 modules; \\d+ before minifying\\)$`));
    expect(checkLuaOutput(readFileSync(image, "utf8"), image)).toEqual([]);
    // shr inlined by the plugin: the top byte of a word with bit 31 set.
    for (const vm of LUA_VMS) {
      const results = await callLua(vm, image, [{ fn: "top", args: [-2023406815] }, { fn: "top", args: [0x12345678] }]);
      expect(results, vm).toEqual([
        { ok: true, value: 0x87 },
        { ok: true, value: 0x12 },
      ]);
    }
  });

  it("exits 1 listing file:line:col: rule on a subset violation, and leaves no image", () => {
    const root = project("bad", {
      "firmware/image.ts": "export function half(x: number): number {\n  return x / 2;\n}\n",
    });
    const out = join(root, "out");
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, "fobkit.lua"), "-- stale image from an earlier build\n");
    const r = run(script, ["--root", root, "--out-dir", out]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`${relative(ROOT, join(root, "firmware", "image.ts"))}:2:12: float-division:`);
    expect(r.stderr).toMatch(/1 subset violation\(s\)/);
    expect(existsSync(join(out, "fobkit.lua"))).toBe(false);
  });

  it("exits 1 with TSTL's diagnostics as file:line on a tree that does not compile", () => {
    const root = project("type-error", {
      "firmware/image.ts": 'export const n: number = "not a number";\n',
    });
    const r = run(script, ["--root", root, "--out-dir", join(root, "out")]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${relative(ROOT, join(root, "firmware", "image.ts")).replace(/[.]/g, "\\.")}:1:14: error TS2322:`));
    expect(r.stderr).toMatch(/TSTL failed with 1 error/);
  });

  it("treats TSTL's warnings as fatal: `if (n)` differs between JS and Lua for n = 0", () => {
    const root = project("truthy", {
      "firmware/image.ts": "export function nonzero(n: number): number {\n  if (n) return 1;\n  return 0;\n}\n",
    });
    const r = run(script, ["--root", root, "--out-dir", join(root, "out")]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${relative(ROOT, join(root, "firmware", "image.ts"))}:2:7: warning TS`);
    expect(r.stderr).toMatch(/Only false and nil evaluate to 'false' in Lua/);
  });

  it("exits 1 when the emitted Lua fails the post-check, though the source passed", () => {
    const root = project("lua-post", GOOD);
    const configPath = join(root, "tsconfig.lua.json");
    const config = JSON.parse(readFileSync(configPath, "utf8"));
    config.tstl.luaPlugins.push({ name: join(FIXTURES, "float-injecting-plugin.cjs") });
    writeFileSync(configPath, JSON.stringify(config));
    const out = join(root, "out");
    const r = run(script, ["--root", root, "--out-dir", out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${relative(ROOT, join(out, "fobkit.lua"))}:1:18: lua-float-literal: 0.5`);
    expect(r.stderr).toMatch(/1 violation\(s\) in the emitted Lua; image not written/);
    expect(existsSync(join(out, "fobkit.lua"))).toBe(false);
  });

  it("rejects unknown arguments and a root without tsconfig.lua.json", () => {
    const a = run(script, ["--frobnicate"]);
    expect(a.status).toBe(1);
    expect(a.stderr).toMatch(/unknown argument --frobnicate/);
    const b = run(script, ["--root", tmp]);
    expect(b.status).toBe(1);
    expect(b.stderr).toMatch(/tsconfig\.lua\.json not found/);
  });

  it("builds the real tree into a private directory", () => {
    const out = join(tmp, "real");
    const r = run(script, ["--out-dir", out]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/fobkit\.lua: \d+ bytes \(\d+ modules; \d+ before minifying\)\n$/);
  });

  it("CLI: lists violations of given files with exit 1, exit 0 on clean code and on a clean image", () => {
    const bad = run(cli, [relative(ROOT, join(FIXTURES, "delete.ts"))]);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe(`${relative(ROOT, join(FIXTURES, "delete.ts"))}:2:3: delete: ${SOURCE_RULES.delete}\n`);
    const good = run(cli, [relative(ROOT, join(FIXTURES, "clean.ts"))]);
    expect(good.status).toBe(0);
    expect(good.stderr).toMatch(/1 files checked, no violations/);
    const luaFile = join(tmp, "bad.lua");
    writeFileSync(luaFile, "return 0.5\n");
    const lua = run(cli, ["--lua", luaFile]);
    expect(lua.status).toBe(1);
    expect(lua.stdout).toBe(`${luaFile}:1:8: lua-float-literal: 0.5: ${LUA_RULES["lua-float-literal"]}\n`);
  });
});
