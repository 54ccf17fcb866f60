/**
 * RFC 6030 §5: a Policy element the recipient does not understand makes the
 * key unusable. Understood here: KeyUsage including OTP, and StartDate and
 * ExpiryDate, which the registry enforces (test/registry/validity.test.ts).
 * The whole file is refused when any one package carries something else.
 */
import { describe, expect, it } from "vitest";
import { PSK, edit, expectRefused, pskc, token } from "./helpers.js";

/** Three tokens; `policy` goes into the second one's Key, after Data (its place in KeyType). */
function fileWithPolicy(policy: string): { xml: string; secrets: Buffer[] } {
  const tokens = [token({ serial: "P-1" }), token({ serial: "P-2" }), token({ serial: "P-3" })];
  const xml = pskc.writePskc(tokens, PSK);
  const at = xml.indexOf("</pskc:Key>", xml.indexOf("<pskc:SerialNo>P-2</pskc:SerialNo>"));
  return { xml: `${xml.slice(0, at)}      ${policy}\n    ${xml.slice(at)}`, secrets: tokens.map((t) => t.secret) };
}

describe("Policy", () => {
  it.each([
    ["<pskc:Policy><pskc:KeyUsage>OTP</pskc:KeyUsage></pskc:Policy>"],
    ["<pskc:Policy><pskc:KeyUsage>OTP</pskc:KeyUsage><pskc:KeyUsage>Verify</pskc:KeyUsage></pskc:Policy>"],
    ["<pskc:Policy/>"],
  ])("accepts %s", (policy) => {
    const { xml } = fileWithPolicy(policy);
    expect(pskc.readPskc(xml, PSK).map((t) => t.serial)).toEqual(["P-1", "P-2", "P-3"]);
  });

  it.each([
    ["KeyUsage without OTP", "<pskc:Policy><pskc:KeyUsage>CR</pskc:KeyUsage></pskc:Policy>", /does not permit OTP/],
    ["PINPolicy", '<pskc:Policy><pskc:PINPolicy MinLength="4" MaxLength="4" PINKeyId="pin" PINUsageMode="Local"/></pskc:Policy>', /<PINPolicy>/],
    ["NumberOfTransactions", "<pskc:Policy><pskc:NumberOfTransactions>5</pskc:NumberOfTransactions></pskc:Policy>", /<NumberOfTransactions>/],
    ["a vendor extension", '<pskc:Policy><v:Geofence xmlns:v="urn:example:vendor">CH</v:Geofence></pskc:Policy>', /<v:Geofence> \(line \d+\) in namespace "urn:example:vendor" inside <Policy> is not understood/],
  ])("refuses a Policy with %s, for the whole file", (_n, policy, msg) => {
    const { xml, secrets } = fileWithPolicy(policy);
    const err = expectRefused(() => pskc.readPskc(xml, PSK), "unsupported_policy", secrets);
    expect(err.message).toMatch(msg);
    expect(err.message).toMatch(/KeyPackage\[2\] \(serial "P-2"\)/);
  });

  it("reads StartDate and ExpiryDate as the key's validity, the narrower of Policy's and DeviceInfo's", () => {
    const { xml } = fileWithPolicy(
      "<pskc:Policy><pskc:StartDate>2026-01-01T00:00:00Z</pskc:StartDate><pskc:ExpiryDate>2031-06-30T23:59:59+02:00</pskc:ExpiryDate><pskc:KeyUsage>OTP</pskc:KeyUsage></pskc:Policy>",
    );
    const [a, b] = pskc.readPskc(xml, PSK).slice(0, 2);
    expect([a.notBefore, a.notAfter]).toEqual([undefined, undefined]);
    expect(b.notBefore).toBe(Date.parse("2026-01-01T00:00:00Z"));
    expect(b.notAfter).toBe(Date.parse("2031-06-30T21:59:59Z"));
    const device = edit(xml, /(<pskc:SerialNo>P-2<\/pskc:SerialNo>)/, "$1<pskc:StartDate>2026-03-01T00:00:00Z</pskc:StartDate><pskc:ExpiryDate>2035-01-01T00:00:00Z</pskc:ExpiryDate>");
    const d = pskc.readPskc(device, PSK)[1];
    expect([d.notBefore, d.notAfter]).toEqual([Date.parse("2026-03-01T00:00:00Z"), Date.parse("2031-06-30T21:59:59Z")]);
  });

  it("reads a four-digit year as written (0099 is the year 99, not 1999), and a StartDate before 1970 as valid from 1970", () => {
    const { xml } = fileWithPolicy("<pskc:Policy><pskc:StartDate>0099-06-01T00:00:00Z</pskc:StartDate><pskc:ExpiryDate>1999-01-01T00:00:00Z</pskc:ExpiryDate></pskc:Policy>");
    const t = pskc.readPskc(xml, PSK)[1];
    expect(t.notBefore).toBe(0);
    expect(t.notAfter).toBe(Date.parse("1999-01-01T00:00:00Z"));
    const old = pskc.readPskc(fileWithPolicy("<pskc:Policy><pskc:StartDate>1900-01-01T00:00:00Z</pskc:StartDate></pskc:Policy>").xml, PSK)[1];
    expect(old.notBefore).toBe(0);
  });

  it.each([["275760-09-13T23:59:59Z"], ["10000-01-01T00:00:00Z"]])("refuses an ExpiryDate of %s (past 9999) as malformed, naming the element", (date) => {
    const { xml } = fileWithPolicy(`<pskc:Policy><pskc:ExpiryDate>${date}</pskc:ExpiryDate></pskc:Policy>`);
    expect(expectRefused(() => pskc.readPskc(xml, PSK), "malformed").message).toMatch(/Policy\/ExpiryDate is in the year \d+; dates after 9999-12-31 are not accepted/);
  });

  it.each([
    ["a 30 February", "<pskc:StartDate>2026-02-30T00:00:00Z</pskc:StartDate>", /not an xs:dateTime/],
    ["a date alone", "<pskc:StartDate>2026-02-01</pskc:StartDate>", /not an xs:dateTime/],
    ["hour 25", "<pskc:ExpiryDate>2026-02-01T25:00:00Z</pskc:ExpiryDate>", /not an xs:dateTime/],
    ["an expiry before the start", "<pskc:StartDate>2027-01-01T00:00:00Z</pskc:StartDate><pskc:ExpiryDate>2026-01-01T00:00:00Z</pskc:ExpiryDate>", /could never be used/],
    ["a KeyUsage RFC 6030 does not define", "<pskc:KeyUsage>otp</pskc:KeyUsage>", /KeyUsage "otp" is not one of RFC 6030's/],
  ])("refuses %s as malformed", (_n, inner, msg) => {
    const { xml } = fileWithPolicy(`<pskc:Policy>${inner}</pskc:Policy>`);
    expect(expectRefused(() => pskc.readPskc(xml, PSK), "malformed").message).toMatch(msg);
  });

  it("refuses a Policy with an attribute it does not know", () => {
    const { xml } = fileWithPolicy('<pskc:Policy v:strict="1" xmlns:v="urn:example:vendor"><pskc:KeyUsage>OTP</pskc:KeyUsage></pskc:Policy>');
    expectRefused(() => pskc.readPskc(xml, PSK), "unsupported_policy");
  });

  it("checks the Policy even when the file's MACs are fine and before any seed is returned", () => {
    const { xml } = fileWithPolicy("<pskc:Policy><pskc:KeyUsage>Encrypt</pskc:KeyUsage></pskc:Policy>");
    // Same file without the policy reads: the policy alone is the reason.
    expect(pskc.readPskc(edit(xml, /<pskc:Policy>.*<\/pskc:Policy>/, ""), PSK)).toHaveLength(3);
    expectRefused(() => pskc.readPskc(xml, PSK), "unsupported_policy");
  });
});
