/**
 * The OTP vector suite against the three builds of firmware/otp: the tsc
 * output in Node, and the Lua image on fengari (32-bit integers, the
 * device's width), wasmoon (Lua 5.4, 64-bit) and Debian's lua5.3 (64-bit).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { callLua, resolveRefs, type LuaVmKind } from "../../support/lua-vm.js";
import { LIB_IMAGE, nodeBuild } from "../../support/paths.js";
import { createOtpTests, type OtpCall, type OtpImpl, type OtpOutcome } from "./otp-suite.js";

const TIMEOUT = 120_000;

function nodeImpl(): OtpImpl {
  let mod: Record<string, unknown> | undefined;
  return {
    name: "node (tsc build)",
    intBits: 53,
    async run(calls: OtpCall[]): Promise<OtpOutcome[]> {
      mod ??= await nodeBuild("firmware/otp/index.js");
      const root = { otp: mod };
      const raw: unknown[] = [];
      return calls.map((c) => {
        let f: unknown = root;
        for (const part of c.fn.split(".")) f = (f as Record<string, unknown>)?.[part];
        if (typeof f !== "function") {
          raw.push(undefined);
          return { ok: false, error: "no function " + c.fn };
        }
        try {
          // A JSON round trip gives the same shapes the Lua side reports.
          const value = f(...resolveRefs(structuredClone(c.args), raw));
          raw.push(value);
          return { ok: true, value: value === undefined ? null : JSON.parse(JSON.stringify(value)) };
        } catch (e) {
          raw.push(undefined);
          return { ok: false, error: String(e) };
        }
      });
    },
  };
}

function luaImpl(vm: LuaVmKind): OtpImpl {
  return {
    name: `lua ${vm}`,
    intBits: vm === "fengari" || vm === "lua32" ? 32 : 64,
    run: (calls) => callLua(vm, LIB_IMAGE, calls),
  };
}

for (const impl of [nodeImpl(), luaImpl("fengari"), luaImpl("wasmoon"), luaImpl("lua5.3"), luaImpl("lua32")]) {
  describe(impl.name, { timeout: TIMEOUT }, () => createOtpTests(() => impl));
}

describe("the OTP part of the Lua image", () => {
  // Each module of the bundle is `["firmware.otp.x"]=function(...) ... end,` (minified).
  const image = readFileSync(LIB_IMAGE, "latin1");
  const modules = [...image.matchAll(/\["((?:firmware\.otp|core)\.[\w.-]+)"\]=function\(\.\.\.\)([\s\S]*?)\nend,/g)];

  it("holds the whole OTP core and the shared core below it", () => {
    expect(modules.map((m) => m[1]).sort()).toEqual([
      ...["algorithms", "bytes", "status", "time"].map((n) => "core." + n),
      ...["hash", "hmac", "hotp", "index", "sha1", "sha256", "totp"].map((n) => "firmware.otp." + n),
    ]);
  });

  it("uses no TSTL lualib helper, no float literal and no integer literal >= 2^31", () => {
    for (const [, name, body] of modules) {
      // Drop comments and string literals so only code is searched.
      const code = body.replace(/--.*$/gm, "").replace(/"(?:[^"\\]|\\.)*"/g, '""');
      expect(code, name).not.toMatch(/__TS__|lualib_bundle/);
      expect(code, name).not.toMatch(/(?<![\w.])\d+\.\d|\d[eE][+-]?\d|0[xX][\da-fA-F]*\./);
      for (const lit of code.match(/(?<![\w.])\d+(?![\w.])/g) ?? []) {
        expect(Number(lit), `${name}: literal ${lit}`).toBeLessThan(2 ** 31);
      }
    }
  });
});
