/**
 * Every element of a KeyContainer is understood, or the file is refused
 * whole (issue 11, item 2); typed values are read as strictly as XML Schema
 * types them (item 7); what the schema allows but fobkit cannot use is
 * refused, or with skipUnsupported left out and named (item 9).
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { PSK, edit, expectRefused, pskc, token } from "./helpers.js";

const A = token({ serial: "S-1", keyId: "key-S-1" });
const B = token({ serial: "S-2", keyId: "key-S-2" });
const TWO = pskc.writePskc([A, B], PSK);
const SECRETS = [A.secret, B.secret];
const read = (xml: string, opts?: Parameters<typeof pskc.readPskc>[2]) => pskc.readPskc(xml, PSK, opts);
/** The second KeyPackage, as written. */
const SECOND = /<pskc:KeyPackage>(?:(?!<pskc:KeyPackage>)[\s\S])*?S-2[\s\S]*?<\/pskc:KeyPackage>/;

describe("all or nothing: an element not RFC 6030's where it stands refuses the file, named with its line", () => {
  it("a misspelt <pskc:Keypackage> beside a good one", () => {
    const xml = TWO.replace(SECOND, (kp) => kp.replaceAll("pskc:KeyPackage>", "pskc:Keypackage>"));
    const err = expectRefused(() => read(xml), "malformed", SECRETS);
    expect(err.message).toMatch(/<pskc:Keypackage> \(line \d+\) is not an RFC 6030 element in <KeyContainer> \(did you mean <KeyPackage>\?\); the file is refused whole/);
  });

  it("a KeyPackage in the pre-RFC draft namespace beside a good one", () => {
    const xml = TWO.replace(SECOND, (kp) =>
      kp.replace("<pskc:KeyPackage>", '<d:KeyPackage xmlns:d="urn:ietf:params:xml:ns:keyprov:pskc:1.0">').replace("</pskc:KeyPackage>", "</d:KeyPackage>"),
    );
    const err = expectRefused(() => read(xml), "malformed", SECRETS);
    expect(err.message).toMatch(/<d:KeyPackage> \(line \d+\) in namespace "urn:ietf:params:xml:ns:keyprov:pskc:1.0" is not allowed in <KeyContainer> \(.*pre-RFC draft's namespace/);
  });

  it.each([
    ["an unknown element in Key", /(<pskc:Issuer>)/, "<pskc:Colour>red</pskc:Colour>$1", /<pskc:Colour> \(line \d+\) is not an RFC 6030 element in <Key>/],
    ["an RFC 6030 element in the wrong place", /(<pskc:Issuer>)/, "<pskc:SerialNo>9</pskc:SerialNo>$1", /<pskc:SerialNo> \(line \d+\) is not allowed in <Key>/],
    ["a wrongly cased element", /(<\/?)pskc:Issuer>/g, "$1pskc:issuer>", /did you mean <Issuer>/],
    ["a foreign element in DeviceInfo", /(<pskc:Model>)/, '<v:Colour xmlns:v="urn:example:v">red</v:Colour>$1', /<v:Colour> .* is not allowed in <DeviceInfo>/],
    ["an unknown attribute on Key", "<pskc:Key ", '<pskc:Key Counter="5" ', /attribute Counter is not allowed on <pskc:Key>/],
    ["text inside Key", /(<pskc:Issuer>)/, "stray text$1", /text inside <Key> \(line \d+\), which holds only elements \(not shown/],
    ["two Secrets", /(<pskc:Secret>[\s\S]*?<\/pskc:Secret>)/, "$1$1", /more than one <Secret> in <Data>/],
    ["two DeviceInfos", /(<pskc:DeviceInfo>[\s\S]*?<\/pskc:DeviceInfo>)/, "$1$1", /more than one <DeviceInfo>/],
    ["a Secret with both values", /(<pskc:Secret>)/, "$1<pskc:PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</pskc:PlainValue>", /both PlainValue and EncryptedValue/],
    ["a ds:KeyInfo in an EncryptedValue", /(<pskc:Secret>\s*<pskc:EncryptedValue>)/, "$1<ds:KeyInfo><ds:KeyName>other</ds:KeyName></ds:KeyInfo>", /<ds:KeyInfo> .* is not supported/],
  ])("%s", (_n, re, replacement, msg) => {
    const xml = TWO.replace(SECOND, (kp) => edit(kp, re, replacement));
    const err = expectRefused(() => read(xml), /KeyInfo/.test(String(msg)) ? "unsupported_algorithm" : "malformed", SECRETS);
    expect(err.message).toMatch(msg);
    expect(err.message).toMatch(/at KeyPackage\[2\]/);
  });

  it("Extensions, foreign elements and KeyReference, which the schema allows and fobkit does not understand, as unsupported_element", () => {
    const cases = [
      edit(TWO, "</pskc:KeyContainer>", '<pskc:Extensions><v:Batch xmlns:v="urn:example:v">7</v:Batch></pskc:Extensions></pskc:KeyContainer>'),
      TWO.replace(SECOND, (kp) => edit(kp, "</pskc:KeyPackage>", '<pskc:Extensions><v:X xmlns:v="urn:example:v"/></pskc:Extensions></pskc:KeyPackage>')),
      TWO.replace(SECOND, (kp) => edit(kp, "</pskc:Data>", '<v:Extra xmlns:v="urn:example:v">1</v:Extra></pskc:Data>')),
      TWO.replace(SECOND, (kp) => edit(kp, /(<pskc:Data>)/, "<pskc:KeyReference>hsm-slot-4</pskc:KeyReference>$1")),
      TWO.replace(SECOND, (kp) => edit(kp, "<pskc:Key ", '<pskc:Key xmlns:v="urn:example:v" v:flag="1" ')),
    ];
    for (const xml of cases) expectRefused(() => read(xml), "unsupported_element", SECRETS);
    // The container's own extension cannot be skipped: it is about the whole file.
    expectRefused(() => read(cases[0], { skipUnsupported: true }), "unsupported_element", SECRETS);
    for (const xml of cases.slice(1)) {
      const r = pskc.readPskcReport(xml, PSK, { skipUnsupported: true });
      expect(r.tokens.map((t) => t.serial)).toEqual(["S-1"]);
      expect(r.skipped).toEqual([expect.objectContaining({ package: 2, serial: "S-2", keyId: "key-S-2", code: "unsupported_element" })]);
    }
  });

  it("still takes what RFC 6030 allows: xsi attributes, IssueNo, UserId, FriendlyName, a Counter, a KeyUsage list, a Signature", () => {
    let xml = edit(TWO, "<pskc:KeyContainer ", '<pskc:KeyContainer xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:ietf:params:xml:ns:keyprov:pskc pskc-schema.xsd" ');
    xml = xml.replace(SECOND, (kp) =>
      edit(
        edit(edit(kp, "</pskc:DeviceInfo>", "<pskc:IssueNo>2</pskc:IssueNo><pskc:UserId>branch-7</pskc:UserId></pskc:DeviceInfo>"), /(<pskc:Data>)/, "<pskc:FriendlyName>Fob 2</pskc:FriendlyName>$1"),
        /(<pskc:Time>)/,
        "<pskc:Counter><pskc:PlainValue>0</pskc:PlainValue></pskc:Counter>$1",
      ),
    );
    xml = edit(xml, "</pskc:KeyContainer>", '<ds:Signature Id="sig"/></pskc:KeyContainer>');
    expect(read(xml).map((t) => t.serial)).toEqual(["S-1", "S-2"]);
  });
});

describe("typed values as strictly as XML Schema types them (item 7)", () => {
  const withRf = (attrs: string) => edit(TWO, 'Encoding="DECIMAL"', `Encoding="DECIMAL" ${attrs}`);

  it.each(["TRUE", "True", "yes", "", "2"])('CheckDigits="%s" is not an xs:boolean: malformed, not taken as false', (v) => {
    const err = expectRefused(() => read(withRf(`CheckDigits="${v}"`)), "malformed", SECRETS);
    expect(err.message).toMatch(/ResponseFormat@CheckDigits is .*, not an xs:boolean \(true, false, 1 or 0\)/);
  });

  it.each(["false", "0", " false "])('CheckDigits="%s" is false: accepted', (v) => {
    expect(read(withRf(`CheckDigits="${v}"`))).toHaveLength(2);
  });

  it.each([
    ["an Encoding outside ValueFormatType", edit(TWO, 'Encoding="DECIMAL"', 'Encoding="decimal"'), /Encoding "decimal" is not one of DECIMAL, HEXADECIMAL/],
    ["a negative Length", edit(TWO, 'Length="8"', 'Length="-8"'), /out of the xs:unsignedInt range/],
    ["a Length with a decimal point", edit(TWO, 'Length="8"', 'Length="8.0"'), /not an integer/],
    ["a Counter that is not an xs:long", edit(TWO, /(<pskc:Time>)/, "<pskc:Counter><pskc:PlainValue>9223372036854775808</pskc:PlainValue></pskc:Counter>$1"), /xs:long/],
  ])("%s: malformed", (_n, xml, msg) => {
    expect(expectRefused(() => read(xml), "malformed", SECRETS).message).toMatch(msg);
  });

  it("an xs:int with leading zeros or a sign is an integer like any other", () => {
    const xml = edit(TWO, "<pskc:PlainValue>60</pskc:PlainValue>", "<pskc:PlainValue>+000000000060</pskc:PlainValue>");
    expect(read(xml)[0].period).toBe(60);
  });
});

/** A KeyPackage of another kind, as vendors write them; `extra` goes inside Key after Data. */
function otherPackage(serial: string, algorithm: string, params: string, secret = randomBytes(20), extra = ""): string {
  return `<pskc:KeyPackage><pskc:DeviceInfo><pskc:Manufacturer>V</pskc:Manufacturer><pskc:SerialNo>${serial}</pskc:SerialNo></pskc:DeviceInfo>
<pskc:Key Id="${serial}" Algorithm="${algorithm}"><pskc:AlgorithmParameters>${params}</pskc:AlgorithmParameters>
<pskc:Data><pskc:Secret><pskc:PlainValue>${secret.toString("base64")}</pskc:PlainValue></pskc:Secret></pskc:Data>${extra}</pskc:Key></pskc:KeyPackage>\n`;
}

describe("skipUnsupported: the usable keys of a mixed file, the others named", () => {
  const mixed = edit(
    TWO,
    "</pskc:KeyContainer>",
    otherPackage("H-1", "urn:ietf:params:xml:ns:keyprov:pskc:hotp", '<pskc:ResponseFormat Length="6" Encoding="DECIMAL"/>') +
      otherPackage("O-1", "urn:ietf:params:xml:ns:keyprov:ocra:1.0:OCRA-1:HOTP-SHA1-6:QN08", '<pskc:ChallengeFormat Encoding="DECIMAL" Min="8" Max="8"/>') +
      otherPackage("V-1", "http://vendor.example/otp#event-time", '<pskc:ResponseFormat Length="6" Encoding="DECIMAL"/>') +
      otherPackage("P-1", "urn:ietf:params:xml:ns:keyprov:pskc:totp", '<pskc:ResponseFormat Length="6" Encoding="DECIMAL"/>', randomBytes(20), '<pskc:Policy><pskc:PINPolicy MinLength="4"/></pskc:Policy>') +
      "</pskc:KeyContainer>",
  );
  const opts = { skipUnsupported: true, allowPlaintextSecrets: true };

  it("without it the whole file is refused", () => {
    expectRefused(() => read(mixed, { allowPlaintextSecrets: true }), "unsupported_algorithm", SECRETS);
  });

  it("with it, the TOTP keys are read and each other package is named with why", () => {
    const r = pskc.readPskcReport(mixed, PSK, opts);
    expect(r.tokens.map((t) => t.serial)).toEqual(["S-1", "S-2"]);
    expect(r.skipped.map((s) => [s.package, s.serial, s.code])).toEqual([
      [3, "H-1", "unsupported_algorithm"],
      [4, "O-1", "unsupported_algorithm"],
      [5, "V-1", "unsupported_algorithm"],
      [6, "P-1", "unsupported_policy"],
    ]);
    expect(r.skipped[0].reason).toMatch(/Key@Algorithm "urn:ietf:params:xml:ns:keyprov:pskc:hotp"/);
    expect(r.skipped[3].reason).toMatch(/<PINPolicy> is not understood/);
    expect(r.plaintext).toBe(false);
  });

  it("still refuses the whole file for a skipped package that is malformed or fails its MAC", () => {
    const malformed = edit(mixed, '<pskc:ResponseFormat Length="6" Encoding="DECIMAL"/>', '<pskc:ResponseFormat Length="6" Encoding="DECIMAL" CheckDigits="TRUE"/>');
    expectRefused(() => read(malformed, opts), "malformed", SECRETS);
    const misspelt = edit(mixed, "<pskc:Manufacturer>V</pskc:Manufacturer>", "<pskc:Manufactuer>V</pskc:Manufactuer>");
    expectRefused(() => read(misspelt, opts), "malformed", SECRETS);
    // An encrypted HOTP package whose ValueMAC does not match: the tamper shows though the key is not used.
    const hotp = pskc.writePskc([token({ serial: "H-9" })], PSK).replace("pskc:totp", "pskc:hotp");
    const hotpPackage = /<pskc:KeyPackage>[\s\S]*<\/pskc:KeyPackage>/.exec(hotp)![0];
    const withMacKey = (pkg: string) => edit(TWO, "</pskc:KeyContainer>", `${pkg}</pskc:KeyContainer>`);
    // Same PSK, but the package's MAC was made with that file's own MAC key: a mismatch here.
    expectRefused(() => read(withMacKey(hotpPackage), opts), "mac_mismatch", SECRETS);
  });

  it("refuses a file in which nothing is usable", () => {
    const none = pskc.writePskc([token({ serial: "H-2" })], PSK).replace("pskc:totp", "pskc:hotp");
    const err = expectRefused(() => read(none, opts), "unsupported_algorithm");
    expect(err.message).toMatch(/none of the file's 1 KeyPackage\(s\) holds a key fobkit can use/);
  });
});

describe("the serial", () => {
  const noDevice = TWO.replace(/<pskc:DeviceInfo>[\s\S]*?<\/pskc:DeviceInfo>\s*/g, "");

  it("comes from Key@Id when asked (serialFrom key-id), and from nowhere else", () => {
    expect(read(noDevice, { serialFrom: "key-id" }).map((t) => t.serial)).toEqual(["key-S-1", "key-S-2"]);
    expectRefused(() => read(noDevice), "missing_serial", SECRETS);
  });

  it("is refused when DeviceInfo/SerialNo and Key@Id say different things and Key@Id was asked for", () => {
    const err = expectRefused(() => read(TWO, { serialFrom: "key-id" }), "malformed", SECRETS);
    expect(err.message).toMatch(/SerialNo "S-1" and Key@Id "key-S-1" differ/);
  });
});

describe("a plaintext file needs no key", () => {
  it("reads with no protection at all when plaintext is allowed, and an encrypted file without a key is missing_key", () => {
    const seed = randomBytes(20);
    const plain = `<pskc:KeyContainer xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0">${otherPackage("T-1", "urn:ietf:params:xml:ns:keyprov:pskc:totp", '<pskc:ResponseFormat Length="6" Encoding="DECIMAL"/>', seed)}</pskc:KeyContainer>`;
    const r = pskc.readPskcReport(plain, undefined, { allowPlaintextSecrets: true });
    expect(r.tokens[0].secret.equals(seed)).toBe(true);
    expect(r.plaintext).toBe(true);
    expectRefused(() => pskc.readPskc(plain, undefined), "plaintext_secret", [seed]);
    expectRefused(() => pskc.readPskc(TWO, undefined, { allowPlaintextSecrets: true }), "missing_key", SECRETS);
  });
});
