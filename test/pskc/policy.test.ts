/**
 * RFC 6030 §5: a Policy element the recipient does not understand makes the
 * key unusable. Understood here: KeyUsage including OTP. The whole file is
 * refused when any one package carries something else.
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
    ["StartDate", "<pskc:Policy><pskc:StartDate>2026-01-01T00:00:00Z</pskc:StartDate></pskc:Policy>", /<StartDate> is not understood/],
    ["ExpiryDate", "<pskc:Policy><pskc:ExpiryDate>2030-01-01T00:00:00Z</pskc:ExpiryDate><pskc:KeyUsage>OTP</pskc:KeyUsage></pskc:Policy>", /<ExpiryDate>/],
    ["PINPolicy", '<pskc:Policy><pskc:PINPolicy MinLength="4" MaxLength="4" PINKeyId="pin" PINUsageMode="Local"/></pskc:Policy>', /<PINPolicy>/],
    ["NumberOfTransactions", "<pskc:Policy><pskc:NumberOfTransactions>5</pskc:NumberOfTransactions></pskc:Policy>", /<NumberOfTransactions>/],
    ["a vendor extension", '<pskc:Policy><v:Geofence xmlns:v="urn:example:vendor">CH</v:Geofence></pskc:Policy>', /<Geofence>/],
  ])("refuses a Policy with %s, for the whole file", (_n, policy, msg) => {
    const { xml, secrets } = fileWithPolicy(policy);
    const err = expectRefused(() => pskc.readPskc(xml, PSK), "unsupported_policy", secrets);
    expect(err.message).toMatch(msg);
    expect(err.message).toMatch(/KeyPackage\[2\] \(serial "P-2"\)/);
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
