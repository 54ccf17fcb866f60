/**
 * Shared pieces of the PSKC tests: the built library, sample tokens, the
 * independent tools (xmllint, Debian's python3-pskc) and a refusal check
 * that also proves no secret leaked into the error.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expect } from "vitest";
import { ROOT, nodeBuild } from "../support/paths.js";

type Lib = typeof import("../../host/pskc/index.js");
export type PskcToken = import("../../host/pskc/index.js").PskcToken;
export type PskcProtection = import("../../host/pskc/index.js").PskcProtection;

export const pskc: Lib = await nodeBuild<Lib>("host/pskc/index.js");

export const FIXTURES = resolve(ROOT, "test/fixtures/pskc");
export const SCHEMA = join(FIXTURES, "schema/pskc-schema.xsd");

/** Debian's python3-pskc lives under the system interpreter, not the pyenv shim. */
export const SYSTEM_PYTHON = "/usr/bin/python3";

export const RFC_PSK = Buffer.from("12345678901234567890123456789012", "hex");

export function tmp(prefix = "pskc-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

let serialNo = 0;
/** A token with a fresh random seed; fields overridable. */
export function token(over: Partial<PskcToken> = {}): PskcToken {
  serialNo++;
  const serial = over.serial ?? `FK${String(100000 + serialNo)}`;
  return {
    serial,
    manufacturer: "fobkit",
    model: "FK-1",
    issuer: "Example Bank",
    keyId: `key-${serial}`,
    algorithm: "SHA1",
    digits: 8,
    period: 60,
    t0: 0,
    secret: randomBytes(20),
    ...over,
  };
}

/** Fast PBKDF2 for tests that are not about the iteration count. */
export const PASSWORD: PskcProtection = { kind: "password", password: "correct horse battery staple", iterations: 1000 };
export const PSK: PskcProtection = { kind: "psk", key: RFC_PSK };

/** Every textual form a seed could leak in. */
export function secretForms(secrets: Buffer[]): string[] {
  return secrets.flatMap((s) => [s.toString("hex"), s.toString("hex").toUpperCase(), s.toString("base64"), s.toString("latin1")]);
}

/**
 * `fn` must throw a PskcError with `code`, and neither its message nor
 * its detail may contain any of `secrets` in any encoding.
 */
export function expectRefused(fn: () => unknown, code: string, secrets: Buffer[] = []): InstanceType<Lib["PskcError"]> {
  let caught: unknown;
  let result: unknown;
  try {
    result = fn();
  } catch (e) {
    caught = e;
  }
  expect(result, "a refused file must return nothing").toBeUndefined();
  expect(caught).toBeInstanceOf(pskc.PskcError);
  const err = caught as InstanceType<Lib["PskcError"]>;
  expect(err.code, err.message).toBe(code);
  for (const form of secretForms(secrets)) {
    if (form.length >= 8) {
      expect(err.message).not.toContain(form);
      expect(err.detail).not.toContain(form);
    }
  }
  return err;
}

export function xmllint(file: string, schema = SCHEMA): { ok: boolean; out: string } {
  // --nonet: the schema set is local; nothing may be fetched.
  const r = spawnSync("xmllint", ["--nonet", "--noout", "--schema", schema, file], { encoding: "utf8" });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

export function writeTmp(name: string, content: string | Buffer): string {
  const path = join(tmp(), name);
  writeFileSync(path, content);
  return path;
}

/** Run a Python snippet with the system interpreter; `input` arrives as JSON on stdin, the snippet prints JSON. */
export function python(script: string, input: unknown): any {
  const r = spawnSync(SYSTEM_PYTHON, ["-c", script], { input: JSON.stringify(input), encoding: "utf8" });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Replace the first match of `re` in the file text (the test fails if none). */
export function edit(xml: string, re: RegExp | string, replacement: string): string {
  const out = xml.replace(re, replacement);
  expect(out, `pattern ${String(re)} must match`).not.toBe(xml);
  return out;
}
