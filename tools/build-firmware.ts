/**
 * `make firmware`: subset check -> TSTL bundle -> Lua post-check -> image.
 *
 *   node build/node/tools/build-firmware.js [--root DIR] [--out-dir DIR]
 *
 * --root is the project root holding tsconfig.lua.json, firmware/ and
 * protocol/ (default: the current directory). --out-dir overrides the
 * config's outDir so parallel builds can use a private tree. The image is
 * written only after every check passed; a failed build also removes the
 * previous image, so nothing downstream runs a stale one. The image is
 * minified (tools/subset/minify-lua.ts): it is what the board stores and
 * parses, and what the flasher sends at 115200 baud.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import tstl from "typescript-to-lua";
import { checkProgram, checkSubset, subsetFiles } from "./subset/check-subset.js";
import { checkLuaOutput } from "./subset/check-lua-output.js";
import { minifyLua } from "./subset/minify-lua.js";
import { splitBundle } from "./split-bundle.js";
import { inlineConstants } from "./subset/inline-constants.js";
import { localizeExports } from "./subset/localize-exports.js";
import { shakeExports } from "./subset/shake-exports.js";
import { LUA_NAMES, mangleFields, wordsOf } from "./subset/mangle-fields.js";
import { dropInt32Masks } from "./subset/int32-masks.js";
import { readFileSync } from "node:fs";
import { CORE_FILES, IMAGE_FILES, LAZY_FILES } from "../host/flash/image-files.js";
import { formatViolation } from "./subset/rules.js";

const USAGE = "usage: build-firmware [--root DIR] [--out-dir DIR]";

class BuildError extends Error {}

/** Beside the image: { file: { id: module } }, the modules of each file under the ids they go by there. */
export const MODULE_MAP = "fobkit-modules.json";

interface Args {
  root: string;
  outDir?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { root: process.cwd() };
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    const v = argv[k + 1];
    if ((a === "--root" || a === "--out-dir") && v === undefined) throw new BuildError(`${a} needs a value\n${USAGE}`);
    if (a === "--root") args.root = resolve(argv[++k]);
    else if (a === "--out-dir") args.outDir = resolve(argv[++k]);
    else throw new BuildError(`unknown argument ${a}\n${USAGE}`);
  }
  return args;
}

/** `file:line:col: error TS1234: message`, paths relative to the current directory. */
function formatDiagnostic(d: ts.Diagnostic): string {
  const category = ts.DiagnosticCategory[d.category].toLowerCase();
  const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
  if (d.file === undefined || d.start === undefined) return `${category} TS${d.code}: ${text}`;
  const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
  return `${relative(process.cwd(), d.file.fileName)}:${line + 1}:${character + 1}: ${category} TS${d.code}: ${text}`;
}

function build(args: Args): string {
  const configPath = join(args.root, "tsconfig.lua.json");
  if (!existsSync(configPath)) throw new BuildError(`${configPath} not found (is --root the project root?)`);

  // One program serves the subset checker and TSTL: type-checking the tree
  // twice would double the build time.
  const parsed = tstl.parseConfigFileWithSystem(configPath, args.outDir === undefined ? {} : { outDir: args.outDir });
  if (parsed.errors.length > 0) throw new BuildError(parsed.errors.map(formatDiagnostic).join("\n"));
  const program = ts.createProgram(parsed.fileNames, parsed.options);

  const files = subsetFiles(args.root).map((f) => relative(process.cwd(), f));
  if (files.length === 0) throw new BuildError(`no .ts files under ${args.root}/core, firmware or protocol`);
  // A subset file the config leaves out (none today) still gets checked, in a program of its own.
  const inProgram = files.filter((f) => program.getSourceFile(resolve(f)) !== undefined);
  const outside = files.filter((f) => program.getSourceFile(resolve(f)) === undefined);
  const violations = [...checkProgram(program, inProgram), ...(outside.length > 0 ? checkSubset(outside, { root: args.root, configPath }) : [])];
  if (violations.length > 0) {
    const list = violations.map(formatViolation).join("\n");
    throw new BuildError(`${list}\n${violations.length} subset violation(s); the rules and their reasons are in firmware/SUBSET.md`);
  }

  // Each bundle is TSTL's bundle of its own program. TSTL bundles every
  // source file of a program, not only those its entry imports, so the
  // device's image is built from a program rooted at its entry (plus the
  // declaration files): a file the keyfob never requires is not in it.
  const declarations = parsed.fileNames.filter((f) => f.endsWith(".d.ts"));
  // Field names the image keeps (tools/subset/mangle-fields.ts): Lua's, every word of the
  // declaration files (NodeMCU's API), and init.lua's `start`.
  const keepFields = [...LUA_NAMES, ...declarations.flatMap((f) => wordsOf(readFileSync(f, "utf8"))), "start"];
  const lines: string[] = [];
  for (const b of bundlesFor(args)) {
    const options = { ...parsed.options, luaBundle: b.file, luaBundleEntry: b.entry } as ts.CompilerOptions;
    const p = b.whole ? ts.createProgram(parsed.fileNames, options) : ts.createProgram([resolve(args.root, b.entry), ...declarations], options);
    lines.push(emitBundle(p, resolve(b.outDir, b.file), b.whole ? undefined : LAZY_FILES, keepFields));
  }
  return lines.join("\n");
}

interface Bundle {
  file: string;
  entry: string;
  outDir: string;
  /** true: every file of the config (a library for tests); false: what the entry imports. */
  whole: boolean;
}

/**
 * What `make firmware` writes, all in the config's outDir:
 * - tstl.luaBundle (fobkit.lua), entry tstl.luaBundleEntry: the image the
 *   keyfob runs, only the modules its entry imports;
 * - fobkit-lib.lua, entry firmware/lib-image.ts: every module, for the
 *   tests that run the OTP core and the protocol on Lua VMs. Never installed;
 *   built only where the root has that entry (a test's fixture tree may not).
 */
function bundlesFor(args: Args): Bundle[] {
  const configPath = join(args.root, "tsconfig.lua.json");
  const parsed = tstl.parseConfigFileWithSystem(configPath, args.outDir === undefined ? {} : { outDir: args.outDir });
  const { outDir, luaBundle, luaBundleEntry } = parsed.options;
  if (!outDir || !luaBundle || !luaBundleEntry) throw new BuildError(`${configPath}: outDir, tstl.luaBundle and tstl.luaBundleEntry must be set`);
  // The image last: its line is the one scripts read (the last line of stdout).
  const image: Bundle = { file: luaBundle, entry: luaBundleEntry, outDir, whole: false };
  return existsSync(join(args.root, LIB_ENTRY)) ? [{ file: LIB_BUNDLE, entry: LIB_ENTRY, outDir, whole: true }, image] : [image];
}

export const LIB_BUNDLE = "fobkit-lib.lua";
const LIB_ENTRY = "firmware/lib-image.ts";

function emitBundle(program: ts.Program, imagePath: string, lazy?: Record<string, string>, keepFields: readonly string[] = []): string {
  const emitted = new Map<string, string>();
  const preEmit = ts.getPreEmitDiagnostics(program);
  const emit = new tstl.Transpiler().emit({
    program,
    writeFile: (fileName, data) => {
      emitted.set(resolve(fileName), data);
    },
  });
  // TSTL's warnings are fatal too: each marks a place where JS and Lua
  // disagree (`if (n)` with n = 0 is false in JS, true in Lua).
  const diagnostics = ts.sortAndDeduplicateDiagnostics([...preEmit, ...emit.diagnostics]);
  const problems = diagnostics.filter(
    (d) => d.category === ts.DiagnosticCategory.Error || d.category === ts.DiagnosticCategory.Warning,
  );
  if (problems.length > 0) {
    throw new BuildError(`${problems.map(formatDiagnostic).join("\n")}\nTSTL failed with ${problems.length} error(s)/warning(s)`);
  }

  const lua = emitted.get(imagePath);
  if (lua === undefined) {
    const names = [...emitted.keys()].map((f) => relative(process.cwd(), f)).join(", ") || "nothing";
    throw new BuildError(`expected the bundle ${imagePath}, TSTL emitted ${names}`);
  }
  const shownPath = relative(process.cwd(), imagePath);
  // Post-check TSTL's output (its line:col are readable), then minify: the
  // board stores, uploads and parses every byte. minifyLua re-lexes its
  // output and requires the same tokens, so what ships passes the same check.
  const luaViolations = checkLuaOutput(lua, shownPath);
  if (luaViolations.length > 0) {
    throw new BuildError(`${luaViolations.map(formatViolation).join("\n")}\n${luaViolations.length} violation(s) in the emitted Lua; image not written`);
  }

  // A tree without the lazy modules (a test's fixture project) is one file, as TSTL bundled it.
  const split = lazy !== undefined && Object.keys(lazy).some((m) => lua.includes(`\n["${m}"] = function(`));
  const files = !split
    ? [{ path: imagePath, lua }]
    : splitBundle(dropInt32Masks(mangleFields(localizeExports(shakeExports(inlineConstants(lua).lua).lua).lua, keepFields).lua).lua, [basename(imagePath, ".lua"), ...CORE_FILES.slice(1).map((f) => basename(f, ".lua"))], lazy!).map((f) => ({ path: join(dirname(imagePath), `${f.base}.lua`), lua: f.lua, ids: f.ids }));
  if (split) {
    // Which module each short id in the files is (tools/split-bundle.ts): for readers and the image tests; never installed.
    const map = Object.fromEntries(files.map((f) => [basename(f.path), (f as { ids?: Record<string, string> }).ids ?? {}]));
    writeFileSync(join(dirname(imagePath), MODULE_MAP), JSON.stringify(map, null, 2) + "\n");
  }
  const out: string[] = [];
  for (const f of files) {
    // The split files are the bundler's text around TSTL's module bodies: check them again.
    const again = split ? checkLuaOutput(f.lua, relative(process.cwd(), f.path)) : [];
    if (again.length > 0) throw new BuildError(`${again.map(formatViolation).join("\n")}\n${again.length} violation(s) in the split image; image not written`);
    // The image's files boot as stripped bytecode: no line structure either. The test library keeps its lines.
    const image = minifyLua(f.lua, { oneLine: split }).lua;
    mkdirSync(dirname(f.path), { recursive: true });
    writeFileSync(f.path, image);
    const modules = (image.match(/\[(?:"[^"\n]+"|\d+)\]=function\(/g) ?? []).length;
    out.push(`${relative(process.cwd(), f.path)}: ${Buffer.byteLength(image)} bytes (${modules} modules; ${Buffer.byteLength(f.lua)} before minifying)`);
  }
  // The core last: its line is the one scripts read (the last line of stdout).
  return out.reverse().join("\n");
}

/** The bundle path TSTL writes: outDir (or --out-dir) joined with tstl.luaBundle. */
function imagePathFor(args: Args): string | undefined {
  const configPath = join(args.root, "tsconfig.lua.json");
  if (!existsSync(configPath)) return undefined;
  const parsed = tstl.parseConfigFileWithSystem(configPath, args.outDir === undefined ? {} : { outDir: args.outDir });
  const { outDir, luaBundle } = parsed.options;
  return outDir && luaBundle ? resolve(outDir, luaBundle) : undefined;
}

let args: Args | undefined;
try {
  args = parseArgs(process.argv.slice(2));
  console.log(build(args));
} catch (e) {
  const stale = args && imagePathFor(args);
  if (stale && existsSync(stale)) rmSync(stale);
  for (const other of stale ? [LIB_BUNDLE, ...IMAGE_FILES.slice(1)] : []) {
    const f = join(dirname(stale as string), other);
    if (existsSync(f)) rmSync(f);
  }
  const message = e instanceof BuildError ? e.message : (e as Error).stack ?? String(e);
  console.error(message);
  console.error(`build-firmware: FAILED${stale ? ` (no image at ${relative(process.cwd(), stale)})` : ""}`);
  process.exitCode = 1;
}
