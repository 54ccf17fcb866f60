/**
 * Our files against the RFC 6030 §11 schema (with the xmldsig and xenc
 * schemas it imports, local copies, xmllint --nonet).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FIXTURES, PASSWORD, PSK, SCHEMA, edit, pskc, tmp, token, writeTmp, xmllint } from "./helpers.js";

/**
 * The §11 schema with the one content model its own prose contradicts
 * fixed: AlgorithmParametersType is an xs:choice of ONE child, so Suite and
 * ResponseFormat (or OCRA's ChallengeFormat and ResponseFormat) cannot both
 * appear. Everything else is byte-for-byte the RFC's.
 */
function suiteTolerantSchema(): string {
  const dir = tmp("pskc-schema-");
  for (const f of ["xmldsig-core-schema.xsd", "xenc-schema.xsd"]) {
    writeFileSync(join(dir, f), readFileSync(join(FIXTURES, "schema", f)));
  }
  const rfc = readFileSync(SCHEMA, "utf8");
  const fixed = edit(
    rfc,
    /(<xs:complexType name="AlgorithmParametersType">\s*)<xs:choice>/,
    '$1<xs:choice maxOccurs="unbounded">',
  );
  const path = join(dir, "pskc-schema-suite.xsd");
  writeFileSync(path, fixed);
  return path;
}

describe("RFC 6030 schema validity (xmllint)", () => {
  it("the schema set itself loads offline and accepts the RFC's Figures 6 and 7", () => {
    for (const f of ["rfc6030-figure6.pskcxml", "rfc6030-figure7.pskcxml"]) {
      const r = xmllint(join(FIXTURES, f));
      expect(r.ok, r.out).toBe(true);
    }
  });

  it("and rejects a file it should (so a pass means something)", () => {
    const xml = pskc.writePskc([token()], PSK);
    for (const bad of [
      edit(xml, ' Version="1.0"', ""), // Version is required
      edit(xml, 'Encoding="DECIMAL"', 'Encoding="DECIMALS"'),
      edit(xml, /<pskc:KeyPackage>[\s\S]*<\/pskc:KeyPackage>\n/, ""), // at least one KeyPackage
      edit(xml, "<pskc:PlainValue>60</pskc:PlainValue>", "<pskc:PlainValue>sixty</pskc:PlainValue>"),
    ]) {
      const r = xmllint(writeTmp("bad.pskcxml", bad));
      expect(r.ok, bad).toBe(false);
    }
  });

  it.each([
    ["pre-shared key", PSK],
    ["PBKDF2 password", PASSWORD],
  ] as const)("a SHA-1 file with a %s validates against the RFC's schema as published", (_n, protection) => {
    const xml = pskc.writePskc([token({ cryptoModuleId: "hw-1" }), token({ timeDrift: -1, t0: 1_000_000 }), token({ model: undefined, issuer: undefined })], protection, {
      id: "batch-1",
    });
    const r = xmllint(writeTmp("sha1.pskcxml", xml));
    expect(r.ok, r.out).toBe(true);
  });

  it("a SHA-256/512 file is valid but for Suite beside ResponseFormat, which the RFC's xs:choice forbids", () => {
    const xml = pskc.writePskc([token({ algorithm: "SHA256" }), token({ algorithm: "SHA512" }), token()], PSK);
    const file = writeTmp("sha256.pskcxml", xml);
    const literal = xmllint(file);
    expect(literal.ok).toBe(false);
    // The only complaints are ResponseFormat after Suite, once per SHA-2 key.
    const errors = literal.out.split("\n").filter((l) => l.includes("validity error"));
    expect(errors).toHaveLength(2);
    for (const e of errors) expect(e).toMatch(/ResponseFormat': This element is not expected/);
    const fixed = xmllint(file, suiteTolerantSchema());
    expect(fixed.ok, fixed.out).toBe(true);
  });
});
