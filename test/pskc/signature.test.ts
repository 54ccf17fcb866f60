/**
 * RFC 6030 §7: the whole KeyContainer signed with XML Signature (issue 11,
 * item 6b). `fobkit export --sign-key K --sign-cert C` signs; xmlsec1
 * (Debian's, a C implementation that shares nothing with ours) verifies the
 * file independently, and RFC 6030's schema (xmllint) accepts it; `fobkit
 * bank import --trust-cert C` takes it, and refuses an unsigned file, one
 * signed by another key, an altered one (the Secret-swap attack the ValueMAC
 * cannot see), and every signature-wrapping shape: nothing is imported.
 * Keys and certificates are made here by openssl, never committed.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignedXml } from "xml-crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { loadSigner, loadTrustedCerts, MAX_ATTRIBUTES, MAX_SIGNED_ATTRIBUTES, SignatureError, verifyPskcSignature } from "../../host/pskc/signature.js";
import { writePskc } from "../../host/pskc/writer.js";
import { ROOT } from "../support/paths.js";
import { fobkit } from "../station/cli-io.js";

const NS_PSKC = "urn:ietf:params:xml:ns:keyprov:pskc";
let dir: string;
let factory: string;
let psk: string;

/** A self-signed RSA certificate and its key, made by openssl for this run. */
function identity(name: string, bits = 2048): { key: string; cert: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  execFileSync("openssl", ["req", "-x509", "-newkey", `rsa:${bits}`, "-nodes", "-keyout", key, "-out", cert, "-subj", `/CN=${name}`, "-days", "2"], { stdio: "ignore" });
  return { key, cert };
}

let factoryId: { key: string; cert: string };
let otherId: { key: string; cert: string };

/** xmlsec1 --verify with only `cert` trusted; the KeyContainer's Id attribute declared, as no DTD does it. */
function xmlsec1(file: string, cert: string): { ok: boolean; out: string } {
  const r = spawnSync("xmlsec1", ["--verify", "--trusted-pem", cert, "--id-attr:Id", `${NS_PSKC}:KeyContainer`, file], { encoding: "utf8" });
  return { ok: r.status === 0, out: r.stdout + r.stderr };
}

const bankEnv = () => ({ FOBKIT_BANK_DB: "sqlite:" + join(dir, "bank.sqlite"), FOBKIT_BANK_KEK_FILE: join(dir, "bank.kek") });
const importFile = (file: string, ...extra: string[]) => fobkit(["bank", "import", file, "--psk-file", psk, "--json", ...extra], bankEnv());
const stock = async (): Promise<number> => JSON.parse((await fobkit(["bank", "tokens", "--counts", "--json"], bankEnv())).stdout).counts.in_stock;

function write(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

async function exportSigned(name: string, signer = factoryId): Promise<string> {
  const out = join(dir, name);
  const r = await fobkit(["export", "--factory", factory, "--batch", "1", "--out", out, "--psk-file", psk, "--sign-key", signer.key, "--sign-cert", signer.cert, "--json", "--force"]);
  expect(r.code, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ tokens: 3, signed: true });
  return out;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-sig-"));
  factoryId = identity("fobkit line 07 signing");
  otherId = identity("someone else");
  factory = join(dir, "line7.sqlite");
  const rec = FactoryRecord.open(factory, { create: true, line: 7 });
  rec.resolveBatch(1, {});
  for (let i = 0; i < 3; i++) {
    const { serial } = rec.allocate({ batch: 1, seed: randomBytes(20) });
    rec.setStage(serial, "lock_sent");
    rec.markGood(serial);
  }
  rec.close();
  psk = write("bank.psk", randomBytes(16).toString("hex") + "\n");
  expect((await fobkit(["bank", "init-kek"], bankEnv())).code).toBe(0);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("signed PSKC files (RFC 6030 §7)", () => {
  it("fobkit export signs the whole KeyContainer: xmlsec1 verifies it, the RFC's schema accepts it, and bank import --trust-cert takes it", async () => {
    const file = await exportSigned("signed.pskcxml");
    const text = readFileSync(file, "utf8");
    expect(text).toMatch(/<ds:Reference URI="#fobkit-line-07-batch-1">/);
    expect(text).toMatch(/<ds:SignatureMethod Algorithm="http:\/\/www.w3.org\/2001\/04\/xmldsig-more#rsa-sha256"\/>/);
    // The Signature is the KeyContainer's last child, where RFC 6030's schema puts it.
    expect(text.trimEnd()).toMatch(/<\/ds:Signature><\/pskc:KeyContainer>$/);
    const independent = xmlsec1(file, factoryId.cert);
    expect(independent.ok, independent.out).toBe(true);
    expect(independent.out).toMatch(/SignedInfo References \(ok\/all\): 1\/1/);
    expect(xmlsec1(file, otherId.cert).ok).toBe(false);
    // Without the Signature the file is valid under RFC 6030's schema: the signing changed nothing else.
    const schema = spawnSync("xmllint", ["--noout", "--nonet", "--schema", join(ROOT, "test/fixtures/pskc/schema/pskc-schema.xsd"),
      write("unsigned-view.pskcxml", text.replace(/<ds:Signature[\s\S]*<\/ds:Signature>/, ""))], { encoding: "utf8" });
    expect(schema.status, schema.stderr).toBe(0);

    // The configured trust store ($FOBKIT_BANK_TRUST_CERTS) demands a signature as --trust-cert does.
    const unsignedView = join(dir, "unsigned-view.pskcxml");
    const store = await fobkit(["bank", "import", unsignedView, "--psk-file", psk, "--json"], { ...bankEnv(), FOBKIT_BANK_TRUST_CERTS: factoryId.cert });
    expect(store.code).toBe(2);
    expect(store.stderr).toMatch(/the file is not signed/);
    const imp = await importFile(file, "--trust-cert", otherId.cert, "--trust-cert", factoryId.cert);
    expect(imp.code, imp.stderr).toBe(0);
    expect(JSON.parse(imp.stdout)).toMatchObject({ imported: 3, signedBy: "CN=fobkit line 07 signing" });
    expect(await stock()).toBe(3);
  });

  it("bank import --trust-cert refuses an unsigned file, one signed by another key, and an altered one (xmlsec1 agrees); nothing is imported", async () => {
    // A fresh bank for this test: the first test's import holds these serials.
    rmSync(join(dir, "bank.sqlite"), { force: true });
    const unsigned = join(dir, "unsigned.pskcxml");
    expect((await fobkit(["export", "--factory", factory, "--batch", "1", "--out", unsigned, "--psk-file", psk, "--force"])).code).toBe(0);
    const u = await importFile(unsigned, "--trust-cert", factoryId.cert);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/unsigned.pskcxml: the file is not signed .*nothing was imported/);

    const byOther = await exportSigned("other.pskcxml", otherId);
    const o = await importFile(byOther, "--trust-cert", factoryId.cert);
    expect(o.code).toBe(2);
    expect(o.stderr).toMatch(/no trusted certificate verifies the signature/);

    // The attack the ValueMAC cannot see: two KeyPackages' Secret blocks swapped, each MAC still matching its ciphertext.
    const signed = readFileSync(await exportSigned("good.pskcxml"), "utf8");
    const secrets = [...signed.matchAll(/<pskc:Secret>[\s\S]*?<\/pskc:Secret>/g)].map((m) => m[0]);
    expect(secrets).toHaveLength(3);
    const swapped = write("swapped.pskcxml", signed.replace(secrets[0], "\u0000").replace(secrets[1], secrets[0]).replace("\u0000", secrets[1]));
    expect(xmlsec1(swapped, factoryId.cert).ok).toBe(false);
    const s = await importFile(swapped, "--trust-cert", factoryId.cert);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/altered after it was signed/);
    // Without a signature check that file imports, seeds on the wrong serials: what the signature is for.
    const serialEdit = write("serial.pskcxml", signed.replace(/(<pskc:SerialNo>FK07\d{10})\d\d/, "$199"));
    expect((await importFile(serialEdit, "--trust-cert", factoryId.cert)).code).toBe(2);
    // A comment slipped into the DigestValue (CVE-2025-29775's shape) does not revive an altered file.
    const commented = write("comment.pskcxml", readFileSync(swapped, "utf8").replace(/<ds:DigestValue>(.{4})/, "<ds:DigestValue>$1<!-- -->"));
    expect((await importFile(commented, "--trust-cert", factoryId.cert)).code).toBe(2);

    // A signed file without --trust-cert would go unchecked: refused with the hint.
    const nc = await importFile(join(dir, "good.pskcxml"));
    expect(nc.code).toBe(2);
    expect(nc.stderr).toMatch(/is signed \(XML Signature\); give --trust-cert/);
    expect(await stock()).toBe(0);
    const audit = JSON.parse((await fobkit(["bank", "audit", "--json"], bankEnv())).stdout);
    expect(audit.records.filter((r: { action: string }) => r.action === "import").map((r: { outcome: string }) => r.outcome))
      .toEqual(expect.arrayContaining(["signature_unsigned", "signature_signed_untrusted", "signature_bad_signature"]));
  });

  it("refuses signature-wrapping shapes before it trusts a byte", async () => {
    const trusted = loadTrustedCerts([factoryId.cert]);
    const signed = readFileSync(await exportSigned("wrap.pskcxml"), "utf8");
    const body = signed.replace(/^<\?xml[^>]*>\s*/, "");
    const open = /^<pskc:KeyContainer[^>]*>/.exec(body)![0];
    const signature = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(body)![0];
    const evilPackage = /<pskc:KeyPackage>[\s\S]*?<\/pskc:KeyPackage>/.exec(body)![0].replace(/FK07\d{12}/, "EVIL-1");
    const refusal = (xml: string): SignatureError => {
      try {
        verifyPskcSignature(Buffer.from(xml), trusted);
      } catch (e) {
        if (e instanceof SignatureError) return e;
        throw e;
      }
      throw new Error("accepted");
    };
    // The untouched file verifies, and so does the same signature as RFC 6030's schema names it (pskc:Signature); each shape below is refused.
    expect(verifyPskcSignature(Buffer.from(signed), trusted).signer.subject).toBe("CN=fobkit line 07 signing");
    const schemaForm = signed.replace(/<ds:Signature xmlns:ds="([^"]+)">/, '<pskc:Signature xmlns:ds="$1">').replace("</ds:Signature>", "</pskc:Signature>");
    expect(verifyPskcSignature(Buffer.from(schemaForm), trusted).xml.toString()).toBe(verifyPskcSignature(Buffer.from(signed), trusted).xml.toString());
    expect(refusal(schemaForm.replace("</pskc:KeyContainer>", signature + "</pskc:KeyContainer>")).message).toMatch(/2 Signature elements/);
    const newRoot = (id: string, inner: string) => open.replace(/Id="[^"]*"/, `Id="${id}"`) + evilPackage + inner + "</pskc:KeyContainer>";
    // 1. The signed container moved inside a new root that carries other keys.
    expect(refusal(newRoot("evil", `<pskc:Extensions>${body}</pskc:Extensions>`)).message).toMatch(/not a child of the root KeyContainer/);
    // 2. The Signature lifted to the new root, still pointing at the original container inside it.
    const inner = body.replace(signature, "");
    expect(refusal(newRoot("evil", `<pskc:Extensions>${inner}</pskc:Extensions>${signature}`)).message).toMatch(/points at '#fobkit-line-07-batch-1', not at the root KeyContainer/);
    // 3. ... and with the new root given the signed container's Id, so that the URI names both.
    expect(refusal(newRoot("fobkit-line-07-batch-1", `<pskc:Extensions>${inner}</pskc:Extensions>${signature}`)).message).toMatch(/2 elements carry the Id 'fobkit-line-07-batch-1'/);
    // 4. Two signatures (one of them valid).
    expect(refusal(body.replace("</pskc:KeyContainer>", signature + "</pskc:KeyContainer>")).message).toMatch(/2 Signature elements/);
    // 5. A DOCTYPE, which could declare ID attributes or entities.
    expect(refusal(`<!DOCTYPE x [<!ATTLIST pskc:KeyPackage Id ID #IMPLIED>]>\n${body}`).message).toMatch(/DOCTYPE is not allowed/);
    // 6. An element far past any PSKC element's attributes (the quadratic-parsing lever) is refused by the linear scan first.
    const many = Array.from({ length: MAX_ATTRIBUTES + 1 }, (_, i) => `a${i}="1"`).join(" ");
    expect(refusal(body.replace("<pskc:KeyPackage>", `<pskc:KeyPackage ${many}>`)).message).toMatch(/more than 32 attributes/);
    // 7. Malformed XML that xmldom would repair is refused, not repaired.
    expect(refusal(body.replace("</pskc:DeviceInfo>", "</pskc:DeviceInfo></pskc:Oops>")).message).toMatch(/not well-formed/);
  });

  // Issue 11 review: xml-crypto digests the referenced document before it checks SignatureValue, so a hostile file
  // carrying a Signature copied from a real export could hold the import for minutes (URI="": an XPath over every
  // element, quadratic) or exhaust the heap (millions of attributes), once per trusted certificate.
  it("refuses a huge file with a copied Signature without digesting it: URI=\"\", too many attributes, an untrusted signer", async () => {
    const trusted = loadTrustedCerts([factoryId.cert]);
    const signed = readFileSync(await exportSigned("copied.pskcxml"), "utf8");
    const signature = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(signed)![0];
    const hostile = (n: number, sig: string, attrs = "") => {
      const parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<pskc:KeyContainer xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0" Id="fobkit-line-07-batch-1">'];
      for (let i = 0; i < n; i++) parts.push(`<x${attrs}/>`);
      parts.push(sig, "</pskc:KeyContainer>");
      return Buffer.from(parts.join(""));
    };
    const refusal = (xml: Buffer, certs = trusted): SignatureError => {
      try {
        verifyPskcSignature(xml, certs);
      } catch (e) {
        if (e instanceof SignatureError) return e;
        throw e;
      }
      throw new Error("accepted");
    };
    // URI="" (fobkit never writes it): refused by shape, before xml-crypto's whole-document XPath (some 40 s here before).
    const empty = refusal(hostile(30_000, signature.replace(/URI="#[^"]*"/, 'URI=""')));
    expect(empty.code).toBe("signature_shape");
    expect(empty.message).toMatch(/Reference URI is "" .*only "#" \+ the KeyContainer's Id/);
    // Past the file's attribute budget: refused by the linear scan, before any DOM.
    const attrs = " " + Array.from({ length: 20 }, (_, i) => `a${i}=""`).join(" ");
    const wide = refusal(hostile(Math.ceil(MAX_SIGNED_ATTRIBUTES / 20) + 1, signature, attrs));
    expect(wide.message).toMatch(new RegExp(`more than ${MAX_SIGNED_ATTRIBUTES} attributes in the file`));
    // The genuine SignedInfo, signed by a key the bank does not trust, over content it does not sign: the SignatureValue is
    // checked first, so the answer is "not a trusted signer" under every certificate, not "altered" after digesting it.
    const others = loadTrustedCerts([otherId.cert, otherId.cert, otherId.cert]);
    const untrusted = refusal(hostile(40_000, signature), others);
    expect(untrusted.code).toBe("signed_untrusted");
    expect(untrusted.message).toMatch(/no trusted certificate verifies the signature/);
    // Under the trusted key, the same copy fails only its digest, and a genuine file still verifies.
    expect(refusal(hostile(2_000, signature)).message).toMatch(/altered after it was signed/);
    expect(verifyPskcSignature(Buffer.from(signed), trusted).signer.subject).toBe("CN=fobkit line 07 signing");
    expect(xmlsec1(join(dir, "copied.pskcxml"), factoryId.cert).ok).toBe(true);
  }, 60_000);

  it("takes the key only from the trusted certificate, never from KeyInfo, and only RSA with SHA-256/512", async () => {
    const trusted = loadTrustedCerts([factoryId.cert]);
    const plain = writePskc([{ serial: "FK070001000001", manufacturer: "fobkit", keyId: "k1", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: randomBytes(20) }],
      { kind: "psk", key: randomBytes(16) }, { id: "c1" });
    // Signed by someone else, their own certificate in KeyInfo (CVE-2024-32962's shape): refused.
    const attacker = loadSigner(otherId.key, otherId.cert);
    const bySelf = writePskc([{ serial: "FK070001000001", manufacturer: "fobkit", keyId: "k1", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: randomBytes(20) }],
      { kind: "psk", key: randomBytes(16) }, { id: "c1", signer: attacker });
    expect(bySelf).toContain("<ds:X509Certificate>");
    expect(() => verifyPskcSignature(Buffer.from(bySelf), trusted)).toThrow(/no trusted certificate verifies/);
    // RSA-SHA1 by the trusted key itself: refused for its algorithm.
    const sha1 = new SignedXml({ privateKey: readFileSync(factoryId.key), signatureAlgorithm: "http://www.w3.org/2000/09/xmldsig#rsa-sha1", canonicalizationAlgorithm: "http://www.w3.org/2001/10/xml-exc-c14n#" });
    sha1.addReference({ xpath: "/*", transforms: ["http://www.w3.org/2000/09/xmldsig#enveloped-signature", "http://www.w3.org/2001/10/xml-exc-c14n#"], digestAlgorithm: "http://www.w3.org/2000/09/xmldsig#sha1" });
    sha1.computeSignature(plain, { prefix: "ds", location: { reference: "/*", action: "append" } });
    expect(() => verifyPskcSignature(Buffer.from(sha1.getSignedXml()), trusted)).toThrow(/rsa-sha1 is not accepted .*SHA-1 and HMAC are refused/);
    // Signing keys are checked too: a key that is not the certificate's, and a short RSA key.
    expect(() => loadSigner(otherId.key, factoryId.cert)).toThrow(/is not the key of --sign-cert/);
    const weak = identity("weak", 1024);
    expect(() => loadSigner(weak.key, weak.cert)).toThrow(/RSA key of 1024 bits; at least 2048/);
    const r = await fobkit(["export", "--factory", factory, "--batch", "1", "--out", join(dir, "x.pskcxml"), "--psk-file", psk, "--sign-key", factoryId.key]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--sign-key and --sign-cert go together/);
    const t = await importFile(join(dir, "good.pskcxml"), "--trust-cert", factoryId.key);
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/holds no PEM certificate/);
  });
});
