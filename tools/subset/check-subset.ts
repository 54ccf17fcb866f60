/**
 * The firmware subset checker: walks the TypeScript AST of core/, firmware/ and
 * protocol/ with the type checker of the Lua build's compiler options and
 * reports every construct the target (NodeMCU Lua 5.3: 32-bit integers,
 * float32, no lualib) cannot run. firmware/SUBSET.md gives each rule's reason.
 */
import ts from "typescript";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, normalize, resolve, sep } from "node:path";
import { SOURCE_RULES, type SourceRuleId, type Violation } from "./rules.js";

export interface CheckOptions {
  /** tsconfig whose compiler options build the program. Default: <root>/tsconfig.lua.json. */
  configPath?: string;
  /** Project root, used to find the default config. Default: process.cwd(). */
  root?: string;
}

/** The directories the Lua image is built from. */
export const SUBSET_DIRS = ["core", "firmware", "protocol"] as const;

// The Node-side bodies of the intrinsics; the TSTL plugin replaces every call,
// so this file never reaches the image and may use what the subset forbids.
const INTRINSICS = join("core", "intrinsics.ts");

const TWO_POW_31 = 2 ** 31;

// Globals that must be flagged even when unresolved (lib: ES2022 declares no
// `console`, yet a call to it would still compile to a nil-call on the device).
const FORBIDDEN_GLOBALS = new Set([
  "Object", "JSON", "Array", "String", "Number", "Boolean", "BigInt", "Map", "Set", "WeakMap",
  "WeakSet", "WeakRef", "Promise", "Symbol", "Date", "RegExp", "Error", "Reflect", "Proxy",
  "parseInt", "parseFloat", "isNaN", "isFinite", "NaN", "Infinity", "console", "globalThis",
  "eval", "Function", "Intl", "ArrayBuffer", "DataView", "Uint8Array", "Int32Array",
  "setTimeout", "setInterval", "queueMicrotask", "structuredClone", "TextEncoder", "TextDecoder",
]);

/** Every .ts file under core/, firmware/ and protocol/ the checker must see (absolute paths, sorted). */
export function subsetFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name.endsWith(".ts") && !name.endsWith(".d.ts") && !isIntrinsicsFile(full)) out.push(full);
    }
  };
  for (const d of SUBSET_DIRS) {
    const dir = join(root, d);
    if (existsSync(dir)) walk(dir);
  }
  return out;
}

function isIntrinsicsFile(fileName: string): boolean {
  return normalize(fileName).endsWith(sep + INTRINSICS) || normalize(fileName) === INTRINSICS;
}

/** Compiler options of the Lua build, so types resolve exactly as TSTL sees them. */
export function readLuaCompilerOptions(configPath: string): ts.CompilerOptions {
  if (!existsSync(configPath)) throw new Error(`subset checker: config ${configPath} does not exist`);
  const read = ts.readConfigFile(configPath, ts.sys.readFile);
  if (read.error) throw new Error(`subset checker: ${configPath}: ${flatten(read.error.messageText)}`);
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, dirname(configPath), undefined, configPath);
  const fatal = parsed.errors.filter((e) => e.category === ts.DiagnosticCategory.Error && e.code !== 18003);
  if (fatal.length > 0) throw new Error(`subset checker: ${configPath}: ${flatten(fatal[0].messageText)}`);
  return { ...parsed.options, noEmit: true };
}

function flatten(m: string | ts.DiagnosticMessageChain): string {
  return ts.flattenDiagnosticMessageText(m, "\n");
}

/**
 * Check the given .ts files. Paths in the result are spelled as given.
 * A missing file, a non-.ts file or the intrinsics module is the caller's
 * error: checking it would either fail spuriously or silently pass.
 */
export function checkSubset(files: readonly string[], options: CheckOptions = {}): Violation[] {
  const root = resolve(options.root ?? process.cwd());
  const configPath = resolve(options.configPath ?? join(root, "tsconfig.lua.json"));
  const compilerOptions = readLuaCompilerOptions(configPath);
  const spelled = new Map<string, string>();
  for (const f of files) {
    if (!existsSync(f)) throw new Error(`subset checker: ${f} does not exist`);
    if (!f.endsWith(".ts")) throw new Error(`subset checker: ${f} is not a .ts file`);
    if (isIntrinsicsFile(resolve(f))) throw new Error(`subset checker: ${f} is the Node side of the intrinsics and is never transpiled`);
    spelled.set(resolve(f), f);
  }
  const program = ts.createProgram([...spelled.keys()], compilerOptions);
  return checkProgram(program, files);
}

/**
 * Check the given files of an existing program (the build shares TSTL's
 * program this way instead of type-checking twice). Every file must be one
 * of the program's source files.
 */
export function checkProgram(program: ts.Program, files: readonly string[]): Violation[] {
  const checker = program.getTypeChecker();
  const out: Violation[] = [];
  for (const f of files) {
    const sf = program.getSourceFile(resolve(f));
    if (sf === undefined) throw new Error(`subset checker: ${f} is not part of the program`);
    if (!sf.isDeclarationFile) new FileChecker(program, checker, sf, f, out).run();
  }
  return out.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col);
}

class FileChecker {
  constructor(
    private readonly program: ts.Program,
    private readonly checker: ts.TypeChecker,
    private readonly sf: ts.SourceFile,
    private readonly fileName: string,
    private readonly out: Violation[],
  ) {}

  run(): void {
    this.visit(this.sf, false);
  }

  private report(node: ts.Node, rule: SourceRuleId, detail?: string): void {
    const { line, character } = this.sf.getLineAndCharacterOfPosition(node.getStart(this.sf));
    const message = detail === undefined ? SOURCE_RULES[rule] : `${detail}: ${SOURCE_RULES[rule]}`;
    this.out.push({ file: this.fileName, line: line + 1, col: character + 1, rule, message });
  }

  private visit(node: ts.Node, inFunction: boolean): void {
    // Types, ambient declarations and imports emit no Lua.
    if (ts.isTypeNode(node) || ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node)) return;
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) return;
    if (isAmbient(node)) return;

    this.checkNode(node, inFunction);

    const nested = inFunction || isFunctionBoundary(node);
    ts.forEachChild(node, (child) => this.visit(child, nested));
  }

  private checkNode(node: ts.Node, inFunction: boolean): void {
    switch (node.kind) {
      case ts.SyntaxKind.BinaryExpression:
        return this.checkBinary(node as ts.BinaryExpression);
      case ts.SyntaxKind.NumericLiteral:
        return this.checkNumber(node as ts.NumericLiteral);
      case ts.SyntaxKind.BigIntLiteral:
        return this.report(node, "big-literal", `BigInt literal ${node.getText(this.sf)}`);
      case ts.SyntaxKind.Identifier:
        return this.checkIdentifier(node as ts.Identifier);
      case ts.SyntaxKind.PropertyAccessExpression:
        return this.checkMember(node as ts.PropertyAccessExpression);
      case ts.SyntaxKind.ElementAccessExpression:
        return this.checkElementAccess(node as ts.ElementAccessExpression);
      case ts.SyntaxKind.CallExpression:
        return this.checkCall(node as ts.CallExpression);
      case ts.SyntaxKind.NullKeyword:
        return this.report(node, "null");
      case ts.SyntaxKind.ClassDeclaration:
      case ts.SyntaxKind.ClassExpression:
        return this.report(node, "class");
      case ts.SyntaxKind.GetAccessor:
      case ts.SyntaxKind.SetAccessor:
        return this.report(node, "accessor");
      case ts.SyntaxKind.TryStatement:
        return this.report(node, "try-catch");
      case ts.SyntaxKind.ThrowStatement:
        return this.report(node, "throw");
      case ts.SyntaxKind.AwaitExpression:
        return this.report(node, "async", "await");
      case ts.SyntaxKind.LabeledStatement:
        return this.report(node, "label");
      case ts.SyntaxKind.ForInStatement:
        return this.report(node, "for-in");
      case ts.SyntaxKind.ForOfStatement:
        return this.checkForOf(node as ts.ForOfStatement);
      case ts.SyntaxKind.DeleteExpression:
        return this.report(node, "delete");
      case ts.SyntaxKind.TypeOfExpression:
        if (!isTypeTest(node as ts.TypeOfExpression)) this.report(node, "typeof");
        return;
      case ts.SyntaxKind.TemplateExpression:
      case ts.SyntaxKind.NoSubstitutionTemplateLiteral:
        // A tagged template is reported once, at the tag's template.
        return this.report(node, "template-literal");
      case ts.SyntaxKind.SpreadElement:
      case ts.SyntaxKind.SpreadAssignment:
        return this.report(node, isInAssignmentPattern(node) ? "destructuring-rest" : "spread");
      case ts.SyntaxKind.BindingElement:
        if ((node as ts.BindingElement).dotDotDotToken) this.report(node, "destructuring-rest");
        return;
      case ts.SyntaxKind.PrefixUnaryExpression:
        return this.checkUnaryPlus(node as ts.PrefixUnaryExpression);
      case ts.SyntaxKind.VariableDeclarationList:
        if ((node.flags & ts.NodeFlags.BlockScoped) === 0) this.report(node, "var");
        return;
      case ts.SyntaxKind.NewExpression:
        return this.checkNew(node as ts.NewExpression);
      case ts.SyntaxKind.EnumMember:
        return this.checkEnumMember(node as ts.EnumMember);
      case ts.SyntaxKind.FunctionDeclaration:
      case ts.SyntaxKind.FunctionExpression:
      case ts.SyntaxKind.ArrowFunction:
      case ts.SyntaxKind.MethodDeclaration:
        return this.checkFunction(node as ts.FunctionLikeDeclaration, inFunction);
      default:
        return;
    }
  }

  private checkBinary(node: ts.BinaryExpression): void {
    const op = node.operatorToken;
    switch (op.kind) {
      case ts.SyntaxKind.SlashToken:
      case ts.SyntaxKind.SlashEqualsToken:
        return this.report(op, "float-division");
      case ts.SyntaxKind.AsteriskAsteriskToken:
      case ts.SyntaxKind.AsteriskAsteriskEqualsToken:
        return this.report(op, "exponent");
      case ts.SyntaxKind.GreaterThanGreaterThanToken:
      case ts.SyntaxKind.GreaterThanGreaterThanGreaterThanToken:
      case ts.SyntaxKind.GreaterThanGreaterThanEqualsToken:
      case ts.SyntaxKind.GreaterThanGreaterThanGreaterThanEqualsToken:
        return this.report(op, "right-shift");
      case ts.SyntaxKind.EqualsEqualsToken:
      case ts.SyntaxKind.ExclamationEqualsToken:
        return this.report(op, "loose-equality");
      case ts.SyntaxKind.InstanceOfKeyword:
        return this.report(op, "instanceof");
      case ts.SyntaxKind.InKeyword:
        return this.report(op, "in");
      default:
        return;
    }
  }

  private checkNumber(node: ts.NumericLiteral): void {
    const text = node.getText(this.sf);
    const radixPrefixed = /^0[xXbBoO]/.test(text);
    if (!radixPrefixed && /[.eE]/.test(text)) {
      return this.report(node, "float-literal", `literal ${text}`);
    }
    // node.text is the literal's value in decimal, separators removed.
    if (Number(node.text) >= TWO_POW_31) {
      this.report(node, "big-literal", `literal ${text}`);
    }
  }

  private checkIdentifier(node: ts.Identifier): void {
    if (!isValueReference(node)) return;
    const name = node.text;
    if (name === "Math" || name === "math") {
      if (this.isUserDeclared(node) || isAllowedLuaMath(node)) return;
      const p = node.parent;
      const shown = ts.isPropertyAccessExpression(p) && p.expression === node ? `${name}.${p.name.text}` : name;
      this.report(node, "math", shown);
      return;
    }
    if (this.isLibGlobal(node)) this.report(node, "es-global", name);
    else this.checkIntrinsicReference(node);
  }

  /** A JS standard-library global: declared at top level of a default lib file, or a known one left unresolved. */
  private isLibGlobal(node: ts.Identifier): boolean {
    const symbol = this.resolvedSymbol(node);
    if (symbol === undefined || !symbol.declarations || symbol.declarations.length === 0) {
      return symbol === undefined && FORBIDDEN_GLOBALS.has(node.text);
    }
    return symbol.declarations.every((d) => this.program.isSourceFileDefaultLibrary(d.getSourceFile()) && isTopLevel(d));
  }

  /** Declared in the project's own sources (not a library's .d.ts, not unresolved). */
  private isUserDeclared(node: ts.Identifier): boolean {
    const symbol = this.resolvedSymbol(node);
    const decls = symbol?.declarations ?? [];
    return decls.length > 0 && decls.every((d) => {
      const f = d.getSourceFile();
      return !f.isDeclarationFile && !this.program.isSourceFileFromExternalLibrary(f);
    });
  }

  private resolvedSymbol(node: ts.Node): ts.Symbol | undefined {
    const symbol = this.checker.getSymbolAtLocation(node);
    if (symbol && (symbol.flags & ts.SymbolFlags.Alias) !== 0) return this.checker.getAliasedSymbol(symbol);
    return symbol;
  }

  private isLibDeclared(symbol: ts.Symbol | undefined): boolean {
    const decls = symbol?.declarations ?? [];
    return decls.length > 0 && decls.every((d) => this.program.isSourceFileDefaultLibrary(d.getSourceFile()));
  }

  private checkMember(node: ts.PropertyAccessExpression): void {
    // `Math.floor`, `JSON.parse`: the global itself is the violation.
    if (ts.isIdentifier(node.expression) && (this.isLibGlobal(node.expression) || /^[Mm]ath$/.test(node.expression.text))) {
      return;
    }
    const intrinsic = this.intrinsicName(node.name);
    if (intrinsic !== undefined) {
      // Even `I.shr(x, 3)` is fatal: the plugin matches only a bare name.
      this.reportIntrinsicValue(node, intrinsic);
      return;
    }
    const property = this.checker.getSymbolAtLocation(node.name);
    if (!this.isLibDeclared(property)) return;
    const name = node.name.text;
    const objectType = this.checker.getNonNullableType(this.checker.getTypeAtLocation(node.expression));
    if (this.every(objectType, (t) => this.checker.isArrayType(t) || this.checker.isTupleType(t))) {
      if (name === "length") {
        if (isAssignmentTarget(node)) this.report(node.name, "array-method", "assigning arr.length");
        return;
      }
      if (name === "push" && isCallee(node)) {
        const call = node.parent as ts.CallExpression;
        if (call.arguments.length === 1 && !ts.isSpreadElement(call.arguments[0])) return;
        return this.report(node.name, "array-method", "push with other than one argument");
      }
      return this.report(node.name, "array-method", `arr.${name}`);
    }
    if (this.every(objectType, (t) => (t.flags & ts.TypeFlags.StringLike) !== 0)) {
      if (name === "length" && !isAssignmentTarget(node)) return;
      return this.report(node.name, "string-method", `str.${name}`);
    }
    this.report(node.name, "lib-method", name);
  }

  private checkElementAccess(node: ts.ElementAccessExpression): void {
    const objectType = this.checker.getNonNullableType(this.checker.getTypeAtLocation(node.expression));
    if (this.every(objectType, (t) => (t.flags & ts.TypeFlags.StringLike) !== 0)) {
      this.report(node.argumentExpression, "string-method", "string indexing");
    }
  }

  private every(type: ts.Type, pred: (t: ts.Type) => boolean): boolean {
    return type.isUnion() ? type.types.every(pred) : pred(type);
  }

  // On a number TSTL drops the `+`; on anything else it converts via lualib.
  private checkUnaryPlus(node: ts.PrefixUnaryExpression): void {
    if (node.operator !== ts.SyntaxKind.PlusToken) return;
    const t = this.checker.getTypeAtLocation(node.operand);
    if (!this.every(t, (x) => (x.flags & ts.TypeFlags.NumberLike) !== 0)) this.report(node, "unary-plus");
  }

  // Only the language extensions' LuaTable/LuaMap/LuaSet become `{}`; any
  // other constructor goes through lualib's __TS__New. Lib globals
  // (`new Map()`) are already reported as es-global.
  private checkNew(node: ts.NewExpression): void {
    if (ts.isIdentifier(node.expression) && this.isLibGlobal(node.expression)) return;
    const decls = this.resolvedSymbol(node.expression)?.declarations ?? [];
    const extension = decls.length > 0 && decls.every((d) => /[\\/]@typescript-to-lua[\\/]language-extensions[\\/]/.test(d.getSourceFile().fileName));
    if (!extension) this.report(node, "new", `new ${node.expression.getText(this.sf)}`);
  }

  // TS folds enum initializers and TSTL prints the folded value:
  // `HIGH = 1 << 31` becomes the literal -2147483648, a float on 32-bit Lua.
  private checkEnumMember(node: ts.EnumMember): void {
    const value = this.checker.getConstantValue(node);
    if (typeof value !== "number") return;
    if (!Number.isInteger(value) || value <= -TWO_POW_31 || value >= TWO_POW_31) {
      this.report(node, "enum-value", `${node.name.getText(this.sf)} = ${value}`);
    }
  }

  private checkForOf(node: ts.ForOfStatement): void {
    if (node.awaitModifier) this.report(node.awaitModifier, "async", "for await");
    const t = this.checker.getTypeAtLocation(node.expression);
    // Language-extension iterables (pairs(), LuaTable) carry a __tstlIterable
    // brand and become a plain Lua generic for.
    const luaIterable = t.getProperty("__tstlIterable") !== undefined;
    if (!luaIterable && !this.every(t, (x) => this.checker.isArrayType(x) || this.checker.isTupleType(x))) {
      this.report(node.expression, "for-of", `for...of over ${this.checker.typeToString(t)}`);
    }
  }

  private checkFunction(node: ts.FunctionLikeDeclaration, inFunction: boolean): void {
    if (node.asteriskToken) this.report(node, "generator");
    const asyncMod = ts.getModifiers(node)?.find((m) => m.kind === ts.SyntaxKind.AsyncKeyword);
    if (asyncMod) this.report(asyncMod, "async");
    if (inFunction) this.report(node, "closure", kindName(node));
  }

  private checkCall(node: ts.CallExpression): void {
    if (!ts.isIdentifier(node.expression)) return;
    const name = this.intrinsicName(node.expression);
    if (name === "shr") {
      const n = node.arguments[1];
      // The plugin reads the literal's value (node.text), so 0x1f is as good as 31.
      const count = n !== undefined && ts.isNumericLiteral(n) ? Number(n.text) : NaN;
      const ok = Number.isInteger(count) && count >= 1 && count <= 31;
      if (!ok || node.arguments.length !== 2) this.report(n ?? node, "shr-count", n ? `shr(x, ${n.getText(this.sf)})` : "shr without a count");
    } else if (name === "i32") {
      const x = node.arguments[0];
      if (x === undefined || !ts.isIdentifier(x) || node.arguments.length !== 1) this.report(x ?? node, "i32-arg", x ? `i32(${x.getText(this.sf)})` : "i32()");
    }
  }

  /** The intrinsic a callee refers to (shr/idiv/i32 of core/intrinsics.ts), if any. */
  private intrinsicName(node: ts.Node): string | undefined {
    if (!ts.isIdentifier(node) && !ts.isPropertyAccessExpression(node)) return undefined;
    const target = ts.isPropertyAccessExpression(node) ? node.name : node;
    const symbol = this.resolvedSymbol(target);
    const decl = symbol?.declarations?.[0];
    if (!decl || !isIntrinsicsFile(decl.getSourceFile().fileName)) return undefined;
    return symbol!.name;
  }

  // The plugin inlines only direct calls `shr(...)`; a namespace call
  // `I.shr(...)` or a passed-around reference would call a module the
  // image does not contain.
  private checkIntrinsicReference(node: ts.Identifier): void {
    const name = this.intrinsicName(node);
    if (name === undefined || ts.isPropertyAccessExpression(node.parent)) return;
    if (!isCallee(node)) this.reportIntrinsicValue(node, name);
  }

  private reportIntrinsicValue(node: ts.Node, name: string): void {
    this.report(node, "intrinsic-call", `${name} used other than as a direct call ${name}(...)`);
  }
}

function kindName(node: ts.Node): string {
  switch (node.kind) {
    case ts.SyntaxKind.FunctionDeclaration:
      return "nested function declaration";
    case ts.SyntaxKind.FunctionExpression:
      return "function expression inside a function";
    case ts.SyntaxKind.ArrowFunction:
      return "arrow function inside a function";
    default:
      return "method inside a function";
  }
}

function isFunctionBoundary(node: ts.Node): boolean {
  return ts.isFunctionLike(node) && !ts.isTypeNode(node);
}

function isCallee(node: ts.Node): boolean {
  return ts.isCallExpression(node.parent) && node.parent.expression === node;
}

function isAssignmentTarget(node: ts.Node): boolean {
  const p = node.parent;
  if (ts.isBinaryExpression(p)) {
    const k = p.operatorToken.kind;
    return p.left === node && k >= ts.SyntaxKind.FirstAssignment && k <= ts.SyntaxKind.LastAssignment;
  }
  if (ts.isPrefixUnaryExpression(p) || ts.isPostfixUnaryExpression(p)) {
    return p.operator === ts.SyntaxKind.PlusPlusToken || p.operator === ts.SyntaxKind.MinusMinusToken;
  }
  return false;
}

/** `[a, ...rest] = xs` / `({ a, ...rest } = o)`: the spread is a rest element. */
function isInAssignmentPattern(node: ts.Node): boolean {
  let cur: ts.Node = node.parent;
  let child: ts.Node = node;
  while (ts.isArrayLiteralExpression(cur) || ts.isObjectLiteralExpression(cur) || ts.isPropertyAssignment(cur)) {
    child = cur;
    cur = cur.parent;
  }
  if (ts.isParenthesizedExpression(cur)) {
    child = cur;
    cur = cur.parent;
  }
  const isTarget = ts.isBinaryExpression(cur) && cur.operatorToken.kind === ts.SyntaxKind.EqualsToken && cur.left === child;
  const isForTarget = (ts.isForOfStatement(cur) || ts.isForInStatement(cur)) && cur.initializer === child;
  return isTarget || isForTarget;
}

/** Identifiers that refer to a value, not ones that name a declaration, property or label. */
function isValueReference(node: ts.Identifier): boolean {
  const p = node.parent as ts.Node & { name?: ts.Node; propertyName?: ts.Node; label?: ts.Node };
  if (ts.isShorthandPropertyAssignment(p)) return true;
  if (p.name === node || p.propertyName === node || p.label === node) return false;
  if (ts.isQualifiedName(p)) return false;
  return true;
}

/** `declare ...`: a statement that only tells the type checker about the runtime. */
function isAmbient(node: ts.Node): boolean {
  return ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.DeclareKeyword);
}

// TSTL turns `typeof x === "number"` into `type(x) == "number"` (no lualib);
// these are the names whose Lua type() answer matches JS for subset values.
const TYPE_TEST_NAMES = new Set(["number", "string", "boolean", "undefined", "function", "object"]);

/** `typeof x === "number"` (or !==, either side): a type test, not a typeof value. */
function isTypeTest(node: ts.TypeOfExpression): boolean {
  const p = node.parent;
  if (!ts.isBinaryExpression(p)) return false;
  const k = p.operatorToken.kind;
  if (k !== ts.SyntaxKind.EqualsEqualsEqualsToken && k !== ts.SyntaxKind.ExclamationEqualsEqualsToken) return false;
  const other = p.left === node ? p.right : p.left;
  return ts.isStringLiteral(other) && TYPE_TEST_NAMES.has(other.text);
}

// math.type(x) answers "integer"/"float"/nil identically on every Lua 5.3
// VM and is how board code validates arguments from the runtime.
const LUA_MATH_ALLOWED = new Set(["type"]);

function isAllowedLuaMath(node: ts.Identifier): boolean {
  const p = node.parent;
  return node.text === "math" && ts.isPropertyAccessExpression(p) && p.expression === node && LUA_MATH_ALLOWED.has(p.name.text);
}

function isTopLevel(decl: ts.Node): boolean {
  for (let n = decl.parent; n !== undefined; n = n.parent) {
    if (ts.isSourceFile(n)) return true;
    if (ts.isInterfaceDeclaration(n) || ts.isTypeLiteralNode(n) || ts.isClassLike(n) || ts.isModuleBlock(n)) return false;
  }
  return false;
}
