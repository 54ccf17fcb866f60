/**
 * Every byte of every encrypted value and MAC, flipped one at a time, must
 * be refused: the MAC is checked over IV||ciphertext before anything is
 * decrypted (RFC 6030 §6.1.1), and the MAC key itself only decrypts under
 * the right key.
 */
import { randomInt } from "node:crypto";
import { describe, expect, it } from "vitest";
import { PASSWORD, PSK, expectRefused, pskc, token, type PskcProtection } from "./helpers.js";

/** The base64 payloads of the file, in document order, with where they sit. */
function payloads(xml: string, tag: string): { start: number; end: number; bytes: Buffer }[] {
  const re = new RegExp(`<${tag}>([^<]*)</${tag}>`, "g");
  return [...xml.matchAll(re)].map((m) => {
    const start = m.index! + tag.length + 2;
    return { start, end: start + m[1].length, bytes: Buffer.from(m[1], "base64") };
  });
}

function replaceAt(xml: string, p: { start: number; end: number }, bytes: Buffer): string {
  return xml.slice(0, p.start) + bytes.toString("base64") + xml.slice(p.end);
}

describe.each([
  ["pre-shared key", PSK],
  ["password", PASSWORD],
] as [string, PskcProtection][])("tampering with a %s file", (_n, protection) => {
  const tokens = [token(), token({ algorithm: "SHA256", secret: Buffer.alloc(32, 0xa5) }), token()];
  const xml = pskc.writePskc(tokens, protection);
  const secrets = tokens.map((t) => t.secret);
  const cipherValues = payloads(xml, "xenc:CipherValue"); // [MACKey, seed1, seed2, seed3]
  const valueMacs = payloads(xml, "pskc:ValueMAC");

  it("reads untouched", () => {
    expect(pskc.readPskc(xml, protection).map((t) => t.secret.toString("hex"))).toEqual(secrets.map((s) => s.toString("hex")));
  });

  it("refuses a flip in every byte of every seed's IV||ciphertext (whole file, nothing returned)", () => {
    let cases = 0;
    for (const cv of cipherValues.slice(1)) {
      for (let i = 0; i < cv.bytes.length; i++) {
        const b = Buffer.from(cv.bytes);
        b[i] ^= 1 << randomInt(8);
        expectRefused(() => pskc.readPskc(replaceAt(xml, cv, b), protection), "mac_mismatch", secrets);
        cases++;
      }
    }
    // IV + the seed padded to whole blocks (PKCS #5 adds 1..16 bytes): 48 + 64 + 48.
    expect(cases).toBe(tokens.reduce((n, t) => n + 16 + (Math.floor(t.secret.length / 16) + 1) * 16, 0));
    expect(cases).toBe(160);
  });

  it("refuses a flip in every byte of every ValueMAC", () => {
    let cases = 0;
    for (const vm of valueMacs) {
      for (let i = 0; i < vm.bytes.length; i++) {
        const b = Buffer.from(vm.bytes);
        b[i] ^= 1 << randomInt(8);
        expectRefused(() => pskc.readPskc(replaceAt(xml, vm, b), protection), "mac_mismatch", secrets);
        cases++;
      }
    }
    expect(cases).toBe(3 * 20);
  });

  it("refuses a flip in every byte of the encrypted MAC key", () => {
    const mk = cipherValues[0];
    expect(mk.bytes).toHaveLength(48); // IV + 20-byte key padded to 32
    for (let i = 0; i < mk.bytes.length; i++) {
      const b = Buffer.from(mk.bytes);
      b[i] ^= 1 << randomInt(8);
      expectRefused(() => pskc.readPskc(replaceAt(xml, mk, b), protection), "mac_mismatch", secrets);
    }
  });

  it("refuses a ValueMAC cut short or lengthened, and one swapped in from another token", () => {
    const vm = valueMacs[1];
    expectRefused(() => pskc.readPskc(replaceAt(xml, vm, vm.bytes.subarray(0, 19)), protection), "mac_mismatch");
    expectRefused(() => pskc.readPskc(replaceAt(xml, vm, Buffer.concat([vm.bytes, Buffer.from([0])])), protection), "mac_mismatch");
    expectRefused(() => pskc.readPskc(replaceAt(xml, vm, valueMacs[0].bytes), protection), "mac_mismatch");
  });

  it("refuses a changed base64 character anywhere in a CipherValue or ValueMAC", () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let cases = 0;
    for (const p of [...cipherValues, ...valueMacs]) {
      for (let i = p.start; i < p.end; i++) {
        if (xml[i] === "=") continue;
        let c = xml[i];
        while (c === xml[i]) c = alphabet[randomInt(64)];
        const bad = xml.slice(0, i) + c + xml.slice(i + 1);
        // Flips in the final character's unused bits make non-canonical
        // base64 (refused as malformed); all others fail the MAC.
        let err: unknown;
        try {
          pskc.readPskc(bad, protection);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(pskc.PskcError);
        expect(["mac_mismatch", "malformed"]).toContain((err as { code: string }).code);
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(4 * 60 + 3 * 24);
  });

  it("refuses a seed's ciphertext moved to another token (the MAC binds ciphertext, so swapping both is the limit)", () => {
    // Swapping the ciphertext alone breaks its MAC.
    const swapped = replaceAt(xml, cipherValues[1], cipherValues[2].bytes);
    expectRefused(() => pskc.readPskc(swapped, protection), "mac_mismatch");
  });

  it("refuses a ciphertext cut to a partial block as malformed", () => {
    const cv = cipherValues[1];
    expectRefused(() => pskc.readPskc(replaceAt(xml, cv, cv.bytes.subarray(0, 40)), protection), "malformed");
    expectRefused(() => pskc.readPskc(replaceAt(xml, cv, cv.bytes.subarray(0, 16)), protection), "malformed");
  });
});
