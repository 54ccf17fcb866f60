/**
 * What the reader refuses (malformed files, unsupported algorithms, missing
 * MACs, plaintext seeds) and what it tolerates (harmless omissions real
 * vendor files have). Files are made by our writer and then edited, so each
 * case differs from a good file in exactly one way.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { PASSWORD, PSK, edit, expectRefused, pskc, token, type PskcToken } from "./helpers.js";

const T = token({ serial: "R-1", keyId: "key-R-1" });
const GOOD = pskc.writePskc([T], PSK);
const GOOD_PW = pskc.writePskc([T], PASSWORD);
const SECRETS = [T.secret];
const read = (xml: string | Buffer, opts?: Parameters<typeof pskc.readPskc>[2]) => pskc.readPskc(xml, PSK, opts);
const SECRET_BLOCK = /<pskc:Secret>[\s\S]*<\/pskc:Secret>\n/;
const SEED_ENC_METHOD = /(<pskc:EncryptedValue>\s*<xenc:EncryptionMethod Algorithm=")[^"]*/;

describe("the reader refuses", () => {
  it.each([
    ["an empty input", ""],
    ["text that is not XML", "serial,secret\n1,3132\n"],
    ["JSON", '{"KeyContainer": {}}'],
    ["an unclosed root", '<pskc:KeyContainer xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0">'],
    ["a truncated file", GOOD.slice(0, GOOD.length / 2)],
    ["mismatched tags", edit(GOOD, "</pskc:DeviceInfo>", "</pskc:Devicelnfo>")],
    ["a duplicate attribute", edit(GOOD, 'Version="1.0"', 'Version="1.0" Version="1.0"')],
    ["an undeclared prefix", edit(GOOD, /\s+xmlns:xenc="[^"]*"/, "")],
    ["an unquoted attribute", edit(GOOD, 'Length="8"', "Length=8")],
    ["a second root", `${GOOD}<pskc:KeyContainer/>`],
    ["text after the root", `${GOOD}trailing`],
    ["a control character", edit(GOOD, "fobkit", "fob\u0007kit")],
    ["a non-UTF-8 encoding declaration", edit(GOOD, 'encoding="UTF-8"', 'encoding="ISO-8859-1"')],
    ["a bad character reference", edit(GOOD, "fobkit", "fob&#0;kit")],
    ["a bare ampersand", edit(GOOD, "fobkit", "fob & kit")],
    ["another root element", '<KeyContainerX xmlns="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0"/>'],
    ["the pre-RFC draft namespace", GOOD.replaceAll("urn:ietf:params:xml:ns:keyprov:pskc\"", 'urn:ietf:params:xml:ns:keyprov:pskc:1.0"')],
    ["no namespace", '<KeyContainer Version="1.0"><KeyPackage/></KeyContainer>'],
    ["Version 2.0", edit(GOOD, 'Version="1.0"', 'Version="2.0"')],
    ["no Version", edit(GOOD, 'Version="1.0"', "")],
    ["no KeyPackage", edit(GOOD, /<pskc:KeyPackage>[\s\S]*<\/pskc:KeyPackage>\n/, "")],
    ["two Keys in one KeyPackage", edit(GOOD, /(<pskc:Key [\s\S]*<\/pskc:Key>\n)/, "$1$1")],
    ["a Key without Data", edit(GOOD, /<pskc:Data>[\s\S]*<\/pskc:Data>\n/, "")],
    ["a Data without Secret", edit(GOOD, SECRET_BLOCK, "")],
    ["a Secret without a value", edit(GOOD, /<pskc:EncryptedValue>[\s\S]*<\/pskc:EncryptedValue>\n/, "")],
    ["a non-numeric Length", edit(GOOD, 'Length="8"', 'Length="eight"')],
    ["an EncryptedValue without EncryptionMethod", edit(GOOD, /<pskc:EncryptedValue>\s*<xenc:EncryptionMethod [^>]*>/, "<pskc:EncryptedValue>")],
    ["bad base64 in a CipherValue", edit(GOOD, /(<pskc:EncryptedValue>[\s\S]*?<xenc:CipherValue>)[^<]*/, "$1!!notbase64!!")],
    ["bad base64 in a ValueMAC", edit(GOOD, /<pskc:ValueMAC>[^<]*/, "<pskc:ValueMAC>AAA")],
    ["a non-integer TimeInterval", edit(GOOD, "<pskc:PlainValue>60</pskc:PlainValue>", "<pskc:PlainValue>1.5</pskc:PlainValue>")],
    ["a TimeInterval of 0", edit(GOOD, "<pskc:PlainValue>60</pskc:PlainValue>", "<pskc:PlainValue>0</pskc:PlainValue>")],
    ["a TimeInterval beyond xs:int", edit(GOOD, "<pskc:PlainValue>60</pskc:PlainValue>", "<pskc:PlainValue>9999999999</pskc:PlainValue>")],
    ["a negative Time", edit(GOOD, "<pskc:PlainValue>0</pskc:PlainValue>", "<pskc:PlainValue>-5</pskc:PlainValue>")],
  ])("%s as malformed", (_n, xml) => {
    expectRefused(() => read(xml), "malformed", SECRETS);
  });

  it.each([
    ["a KeyPackage without DeviceInfo", edit(GOOD, /<pskc:DeviceInfo>[\s\S]*<\/pskc:DeviceInfo>\n/, "")],
    ["a DeviceInfo without SerialNo", edit(GOOD, /<pskc:SerialNo>.*<\/pskc:SerialNo>/, "")],
    ["an empty SerialNo", edit(GOOD, /<pskc:SerialNo>.*<\/pskc:SerialNo>/, "<pskc:SerialNo>  </pskc:SerialNo>")],
  ])("%s as missing_serial, saying the serial can come from Key@Id", (_n, xml) => {
    const err = expectRefused(() => read(xml), "missing_serial", SECRETS);
    expect(err.message).toMatch(/no DeviceInfo\/SerialNo/);
    expect(err.message).toMatch(/Key@Id \("key-R-1" here\).*--serial-from key-id/);
  });

  it("UTF-16 and broken UTF-8 as malformed", () => {
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(GOOD, "utf16le")]);
    expectRefused(() => read(utf16), "malformed");
    const broken = Buffer.from(GOOD, "utf8");
    broken[broken.indexOf("fobkit")] = 0xc3; // a lead byte without its continuation
    expectRefused(() => read(broken), "malformed");
  });

  it.each([
    ["an HOTP key (RFC 6030 Figure 6's kind)", edit(GOOD, "pskc:totp", "pskc:hotp")],
    ["a Key without Algorithm", edit(GOOD, / Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp"/, "")],
    ["an unknown Suite", edit(GOOD, "<pskc:ResponseFormat", "<pskc:Suite>HMAC-MD5</pskc:Suite><pskc:ResponseFormat")],
    ["4-digit codes", edit(GOOD, 'Length="8"', 'Length="4"')],
    ["HEXADECIMAL codes", edit(GOOD, 'Encoding="DECIMAL"', 'Encoding="HEXADECIMAL"')],
    ["check digits", edit(GOOD, 'Encoding="DECIMAL"', 'Encoding="DECIMAL" CheckDigits="true"')],
    ["check digits as 1", edit(GOOD, 'Encoding="DECIMAL"', 'Encoding="DECIMAL" CheckDigits=" 1 "')],
    ["no ResponseFormat (the digits are unknown)", edit(GOOD, /<pskc:AlgorithmParameters>[\s\S]*<\/pskc:AlgorithmParameters>\n/, "")],
    ["AES key wrap instead of CBC", edit(GOOD, SEED_ENC_METHOD, "$1http://www.w3.org/2001/04/xmlenc#kw-aes128")],
    ["Triple-DES", edit(GOOD, SEED_ENC_METHOD, "$1http://www.w3.org/2001/04/xmlenc#tripledes-cbc")],
    ["an unknown MAC", edit(GOOD, "http://www.w3.org/2000/09/xmldsig#hmac-sha1", "http://www.w3.org/2001/04/xmldsig-more#hmac-md5")],
    ["a MACKeyReference", edit(GOOD, /<pskc:MACKey>[\s\S]*<\/pskc:MACKey>/, "<pskc:MACKeyReference>ref-1</pskc:MACKeyReference>")],
    ["a CipherReference", edit(GOOD, /(<pskc:EncryptedValue>[\s\S]*?<xenc:CipherData>\s*)<xenc:CipherValue>[^<]*<\/xenc:CipherValue>/, '$1<xenc:CipherReference URI="http://example.invalid/x"/>')],
    ["asymmetric key transport", edit(GOOD, /<ds:KeyName>.*<\/ds:KeyName>/, "<ds:X509Data><ds:X509Certificate>AAAA</ds:X509Certificate></ds:X509Data>")],
  ])("%s as unsupported_algorithm", (_n, xml) => {
    expectRefused(() => read(xml), "unsupported_algorithm", SECRETS);
  });

  it("an unknown key derivation or PRF as unsupported_algorithm", () => {
    const kdf = edit(GOOD_PW, "pkcs-5v2-0#pbkdf2", "pkcs-5v2-0#scrypt");
    expectRefused(() => pskc.readPskc(kdf, PASSWORD), "unsupported_algorithm");
    const prf = edit(GOOD_PW, "<PRF/>", '<PRF Algorithm="http://www.w3.org/2001/04/xmldsig-more#hmac-md5"/>');
    expectRefused(() => pskc.readPskc(prf, PASSWORD), "unsupported_algorithm");
  });

  it("an encrypted seed without ValueMAC, and encrypted values without MACMethod, as mac_missing (§6.1.1)", () => {
    expectRefused(() => read(edit(GOOD, /<pskc:ValueMAC>.*<\/pskc:ValueMAC>\n/, "")), "mac_missing", SECRETS);
    expectRefused(() => read(edit(GOOD, /<pskc:MACMethod [\s\S]*<\/pskc:MACMethod>\n/, "")), "mac_missing", SECRETS);
    expectRefused(() => read(edit(GOOD, /<pskc:MACKey>[\s\S]*<\/pskc:MACKey>/, "")), "mac_missing", SECRETS);
  });

  it("a seed in plain text unless asked for, and a seed below 128 bits even then", () => {
    const seed = randomBytes(20);
    const plain = edit(GOOD, SECRET_BLOCK, `<pskc:Secret><pskc:PlainValue>${seed.toString("base64")}</pskc:PlainValue></pskc:Secret>\n`);
    const err = expectRefused(() => read(plain), "plaintext_secret", [seed]);
    expect(err.message).toMatch(/seeds must travel encrypted/);
    expect(read(plain, { allowPlaintextSecrets: true })[0].secret.equals(seed)).toBe(true);
    const short = edit(GOOD, SECRET_BLOCK, `<pskc:Secret><pskc:PlainValue>${randomBytes(10).toString("base64")}</pskc:PlainValue></pskc:Secret>\n`);
    expectRefused(() => read(short, { allowPlaintextSecrets: true }), "malformed");
  });

  it("the same serial twice, naming both packages", () => {
    const a = token({ serial: "DUP" });
    const b = token({ serial: "OTHER" });
    const xml = edit(pskc.writePskc([a, token(), b], PSK), "<pskc:SerialNo>OTHER</pskc:SerialNo>", "<pskc:SerialNo>DUP</pskc:SerialNo>");
    const err = expectRefused(() => read(xml), "duplicate_serial", [a.secret, b.secret]);
    expect(err.message).toMatch(/also in KeyPackage\[1\] \(at KeyPackage\[3\]\)/);
  });

  it("a key of the wrong length for the file's cipher, and empty protection", () => {
    const aes256 = GOOD.replaceAll("xmlenc#aes128-cbc", "xmlenc#aes256-cbc");
    expectRefused(() => read(aes256), "wrong_key_kind");
    expectRefused(() => pskc.readPskc(GOOD, { kind: "psk", key: Buffer.alloc(0) }), "missing_key");
    expectRefused(() => pskc.readPskc(GOOD_PW, { kind: "password", password: "" }), "missing_key");
  });
  it("text inside a Secret as malformed, without quoting any of it (it may be the seed itself)", () => {
    const b32 = (b: Buffer) => {
      let bits = "";
      for (const x of b) bits += x.toString(2).padStart(8, "0");
      return (bits.match(/.{1,5}/g) ?? []).map((c) => "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[parseInt(c.padEnd(5, "0"), 2)]).join("");
    };
    const seed = T.secret;
    const forms = [seed.toString("base64"), seed.toString("hex"), seed.toString("hex").toUpperCase(), b32(seed), seed.toString("latin1")];
    for (const text of forms.slice(0, 4)) {
      const err = expectRefused(() => read(edit(GOOD, "<pskc:Secret>", `<pskc:Secret>${text}`)), "malformed", [seed]);
      expect(err.message).toMatch(/text inside <Secret> \(line \d+\)/);
      for (const form of forms) {
        for (let i = 0; i + 6 <= form.length; i++) {
          expect(err.message).not.toContain(form.slice(i, i + 6));
          expect(String(err.detail ?? "")).not.toContain(form.slice(i, i + 6));
        }
      }
    }
  });
});

describe("the reader tolerates what vendor files do", () => {
  const back = (xml: string): PskcToken => read(xml)[0];

  it("a missing Key@Id (the serial stands in) and a missing Encoding (DECIMAL)", () => {
    expect(back(edit(GOOD, ' Id="key-R-1"', "")).keyId).toBe("R-1");
    expect(back(edit(GOOD, ' Encoding="DECIMAL"', "")).digits).toBe(8);
  });

  it("no Time (T0 = 0) and no TimeInterval (RFC 6238's 30 s)", () => {
    const xml = edit(GOOD, /<pskc:Time>[\s\S]*?<\/pskc:TimeInterval>\n/, "");
    const t = back(xml);
    expect([t.t0, t.period]).toEqual([0, 30]);
  });

  it.each([
    ["<pskc:Suite>HMAC-SHA256</pskc:Suite>", "SHA256"],
    ["<pskc:Suite>SHA256</pskc:Suite>", "SHA256"],
    ["<pskc:Suite>hmac-sha-512</pskc:Suite>", "SHA512"],
    ["<pskc:Suite> HMAC-SHA1 </pskc:Suite>", "SHA1"],
    ['<pskc:Suite hashalgo="sha256"/>', "SHA256"],
  ])("Suite %s", (suite, algorithm) => {
    expect(back(edit(GOOD, "<pskc:ResponseFormat", `${suite}<pskc:ResponseFormat`)).algorithm).toBe(algorithm);
  });

  it("no EncryptionKey, or an empty one, with a pre-shared key", () => {
    expect(back(edit(GOOD, /<pskc:EncryptionKey>[\s\S]*<\/pskc:EncryptionKey>\n/, "")).secret.equals(T.secret)).toBe(true);
    expect(back(edit(GOOD, /<pskc:EncryptionKey>[\s\S]*<\/pskc:EncryptionKey>/, "<pskc:EncryptionKey/>")).secret.equals(T.secret)).toBe(true);
  });

  it("PBKDF2-params in the XML Encryption 1.1 namespace with qualified children, and an explicit HMAC-SHA1 PRF", () => {
    const xenc11 = GOOD_PW.replace(/<pkcs5:PBKDF2-params>[\s\S]*<\/pkcs5:PBKDF2-params>/, (block) =>
      block
        .replace(/pkcs5:PBKDF2-params/g, "xenc11:PBKDF2-params")
        .replace(/<(\/?)(Salt|Specified|IterationCount|KeyLength)>/g, "<$1xenc11:$2>")
        .replace("<PRF/>", '<xenc11:PRF Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1"/>'),
    );
    expect(xenc11).toContain("<xenc11:IterationCount>1000</xenc11:IterationCount>");
    expect(pskc.readPskc(xenc11, PASSWORD)[0].secret.equals(T.secret)).toBe(true);
  });

  it("whitespace in base64 and around text, comments, processing instructions, CDATA, a default namespace, an ignored Signature", () => {
    let xml = GOOD.replace(/<xenc:CipherValue>([^<]*)</g, (_m, b64: string) => `<xenc:CipherValue>\n  ${b64.replace(/(.{16})/g, "$1\n  ")}\n<`);
    xml = edit(xml, "<pskc:SerialNo>R-1</pskc:SerialNo>", "<pskc:SerialNo>\n  <![CDATA[R-1]]>  <!-- printed on the fob -->\n</pskc:SerialNo><?vendor hint?>");
    xml = edit(xml, "</pskc:KeyContainer>", '<ds:Signature Id="s"/></pskc:KeyContainer>');
    const t = back(xml);
    expect(t.serial).toBe("R-1");
    expect(t.secret.equals(T.secret)).toBe(true);
    const defaultNs = GOOD.replace(/(<\/?)pskc:/g, "$1").replace("xmlns:pskc=", "xmlns=");
    expect(back(defaultNs).secret.equals(T.secret)).toBe(true);
  });

  it("vendor serials exactly as they are (no check digit, any characters)", () => {
    const odd = ["0001", "XXXX0000001F", "SN 42/7-ä", "987654321"];
    const tokens = odd.map((serial) => token({ serial }));
    expect(read(pskc.writePskc(tokens, PSK)).map((t) => t.serial)).toEqual(odd);
  });
});
