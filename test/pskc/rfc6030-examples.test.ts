/**
 * RFC 6030's own encrypted examples, decrypted exactly: Figure 6 (§6.1.1,
 * pre-shared AES-128 key 12345678901234567890123456789012 hex) and Figure 7
 * (§6.2, PBKDF2 from "qwerty"). Both are HOTP keys; this library imports
 * TOTP only, so the untouched files are refused by algorithm, and a copy
 * with Key@Algorithm changed to TOTP must decrypt to the RFC's secret under
 * the RFC's ValueMAC. The MAC covers only IV||ciphertext, so that change
 * leaves every encrypted byte and MAC as the RFC printed them.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FIXTURES, RFC_PSK, edit, expectRefused, pskc, type PskcProtection } from "./helpers.js";

const RFC_SECRET = Buffer.from("12345678901234567890", "ascii");

const FIGURES: [string, string, PskcProtection, PskcProtection][] = [
  ["Figure 6 (§6.1.1, pre-shared key)", "rfc6030-figure6.pskcxml", { kind: "psk", key: RFC_PSK }, { kind: "psk", key: Buffer.alloc(16, 0x12) }],
  ["Figure 7 (§6.2, PBKDF2 password)", "rfc6030-figure7.pskcxml", { kind: "password", password: "qwerty" }, { kind: "password", password: "qwertz" }],
];

describe.each(FIGURES)("RFC 6030 %s", (_name, file, right, wrong) => {
  const rfc = readFileSync(join(FIXTURES, file), "utf8");
  const asTotp = edit(rfc, "urn:ietf:params:xml:ns:keyprov:pskc:hotp", "urn:ietf:params:xml:ns:keyprov:pskc:totp");

  it("as printed: refused because it is an HOTP key, not for its crypto", () => {
    const err = expectRefused(() => pskc.readPskc(rfc, right), "unsupported_algorithm");
    expect(err.message).toMatch(/pskc:hotp/);
  });

  it("decrypts to the RFC's secret with the RFC's key, checking the RFC's ValueMAC", () => {
    const [t] = pskc.readPskc(asTotp, right);
    expect(t.secret.equals(RFC_SECRET)).toBe(true);
    expect(t.serial).toBe("987654321");
    expect(t.digits).toBe(8);
  });

  it("refuses a wrong key or password, and the RFC's ValueMAC with one bit changed", () => {
    expectRefused(() => pskc.readPskc(asTotp, wrong), "mac_mismatch", [RFC_SECRET]);
    const mac = /<(?:pskc:)?ValueMAC>([^<]*)</.exec(asTotp)![1].trim();
    const bytes = Buffer.from(mac, "base64");
    bytes[19] ^= 0x80;
    expectRefused(() => pskc.readPskc(asTotp.replace(mac, bytes.toString("base64")), right), "mac_mismatch", [RFC_SECRET]);
  });
});
