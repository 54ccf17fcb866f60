// TSTL plugin: inline the integer intrinsics of core/intrinsics.ts.
//
// The TS subset has no right shift and no integer division (TSTL emits `>>>`
// with a constant that is a float on 32-bit-integer Lua, and `/` is float
// division). Source code calls shr()/idiv()/i32() instead; in the Node build
// those are ordinary functions, here each call becomes one Lua expression that
// is correct on 32-bit AND 64-bit integer Lua, and the import disappears.
"use strict";
const ts = require("typescript");
const lua = require("typescript-to-lua");
const path = require("path");

const INTRINSICS = path.join("core", "intrinsics.ts");

function isIntrinsicsModule(fileName) {
  return path.normalize(fileName).endsWith(INTRINSICS);
}

function intrinsicName(node, context) {
  if (!ts.isIdentifier(node.expression)) return undefined;
  const symbol = context.checker.getSymbolAtLocation(node.expression);
  if (!symbol) return undefined;
  const target = symbol.flags & ts.SymbolFlags.Alias ? context.checker.getAliasedSymbol(symbol) : symbol;
  const decl = target.declarations && target.declarations[0];
  if (!decl || !isIntrinsicsModule(decl.getSourceFile().fileName)) return undefined;
  return target.name;
}

function literalInt(node) {
  return ts.isNumericLiteral(node) ? Number(node.text) : undefined;
}

function fail(context, node, message) {
  context.diagnostics.push({
    category: ts.DiagnosticCategory.Error,
    code: 90001,
    file: node.getSourceFile(),
    start: node.getStart(),
    length: node.getWidth(),
    messageText: message,
    source: "fobkit-int32",
  });
}

const num = (v) => lua.createNumericLiteral(v);
const bin = (l, r, op) => lua.createParenthesizedExpression(lua.createBinaryExpression(l, r, op));
const K = lua.SyntaxKind;

const plugin = {
  // The Node implementations must never reach the image.
  afterPrint(program, options, emitHost, result) {
    for (let i = result.length - 1; i >= 0; i--) {
      if (isIntrinsicsModule(result[i].fileName)) result.splice(i, 1);
    }
  },
  // Sources import with Node ESM's ".js" suffix (the Node build needs it);
  // point TSTL at the .ts file the suffix stands for.
  moduleResolution(moduleIdentifier) {
    if (/^\.\.?\//.test(moduleIdentifier) && moduleIdentifier.endsWith(".js")) {
      return moduleIdentifier.slice(0, -3);
    }
    return undefined;
  },
  visitors: {
    [ts.SyntaxKind.CallExpression]: (node, context) => {
      const name = intrinsicName(node, context);
      if (name === undefined) return context.superTransformExpression(node);
      const args = node.arguments.map((a) => context.transformExpression(a));
      switch (name) {
        case "shr": {
          // (x >> n) & (2^(32-n) - 1): on 32-bit Lua `>>` is already logical and
          // the mask is a no-op; on 64-bit Lua the mask drops the bits above 31.
          const n = literalInt(node.arguments[1]);
          if (n === undefined || !Number.isInteger(n) || n < 1 || n > 31) {
            fail(context, node, "shr(x, n): n must be an integer literal 1..31");
            return num(0);
          }
          return bin(bin(args[0], args[1], K.BitwiseRightShiftOperator), num(2 ** (32 - n) - 1), K.BitwiseAndOperator);
        }
        case "idiv":
          return bin(args[0], args[1], K.FloorDivisionOperator);
        case "i32": {
          // (x & 0x7fffffff) | -(((x >> 31) & 1) << 31): sign-extend bit 31.
          // The argument is evaluated twice, so it must be side-effect free.
          if (!ts.isIdentifier(node.arguments[0])) {
            fail(context, node, "i32(x): x must be a plain variable (it is evaluated twice)");
            return num(0);
          }
          const low = bin(args[0], num(2147483647), K.BitwiseAndOperator);
          const bit = bin(bin(lua.cloneIdentifier(args[0]), num(31), K.BitwiseRightShiftOperator), num(1), K.BitwiseAndOperator);
          const sign = lua.createUnaryExpression(bin(bit, num(31), K.BitwiseLeftShiftOperator), K.NegationOperator);
          return bin(low, sign, K.BitwiseOrOperator);
        }
        default:
          fail(context, node, `unknown intrinsic ${name}`);
          return num(0);
      }
    },
    [ts.SyntaxKind.ImportDeclaration]: (node, context) => {
      const spec = node.moduleSpecifier;
      if (ts.isStringLiteral(spec) && /(^|\/)intrinsics(\.js)?$/.test(spec.text)) {
        const resolved = ts.resolveModuleName(spec.text, node.getSourceFile().fileName, context.options, ts.sys);
        const file = resolved.resolvedModule && resolved.resolvedModule.resolvedFileName;
        if (file && isIntrinsicsModule(file)) return undefined;
      }
      return context.superTransformStatements(node);
    },
  },
};

module.exports = plugin;
