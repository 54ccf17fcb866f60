import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { PASSWORD, PSK, expectRefused, pskc, secretForms, token, type PskcProtection, type PskcToken } from "./helpers.js";

function sameTokens(got: PskcToken[], want: PskcToken[]): void {
  expect(got).toHaveLength(want.length);
  got.forEach((g, i) => {
    const w = want[i];
    expect(g.secret.equals(w.secret), `secret of ${w.serial} byte-exact`).toBe(true);
    expect({ ...g, secret: undefined }).toEqual({ ...w, secret: undefined });
  });
}

const MODES: [string, PskcProtection][] = [
  ["pre-shared key (§6.1)", PSK],
  ["PBKDF2 password (§6.2)", PASSWORD],
];

describe.each(MODES)("round trip with a %s", (_name, protection) => {
  it("gives back every field and byte-exact seeds of several lengths and all three hashes", () => {
    const tokens = [
      token({ algorithm: "SHA1", secret: randomBytes(20), cryptoModuleId: "hw-0a1b2c3d4e5f" }),
      token({ algorithm: "SHA256", secret: randomBytes(32), digits: 6, period: 30, timeDrift: -3 }),
      token({ algorithm: "SHA512", secret: randomBytes(64), digits: 10, t0: 1_700_000_000, timeDrift: 7 }),
      token({ secret: randomBytes(16), model: undefined, issuer: undefined }),
      // Seeds whose padding is a whole extra block, and one with a zero byte run.
      token({ secret: Buffer.concat([Buffer.alloc(16, 0), randomBytes(16)]) }),
    ];
    sameTokens(pskc.readPskc(pskc.writePskc(tokens, protection), protection), tokens);
  });

  it("takes a Buffer as well as a string, and survives CRLF line ends and a BOM", () => {
    const tokens = [token(), token()];
    const xml = pskc.writePskc(tokens, protection);
    sameTokens(pskc.readPskc(Buffer.from(xml, "utf8"), protection), tokens);
    sameTokens(pskc.readPskc(`\ufeff${xml.replace(/\n/g, "\r\n")}`, protection), tokens);
  });

  it("keeps text that needs escaping", () => {
    const tokens = [token({ serial: "A&B <1>", manufacturer: 'M "quoted" & co', keyId: "id<&>\"'", issuer: "Bank & Trust" })];
    sameTokens(pskc.readPskc(pskc.writePskc(tokens, protection), protection), tokens);
  });

  it("never writes a seed in the clear and encrypts each one under a fresh IV", () => {
    const seed = randomBytes(20);
    const tokens = [token({ secret: seed }), token({ secret: Buffer.from(seed) })];
    const xml = pskc.writePskc(tokens, protection);
    for (const form of secretForms([seed])) expect(xml).not.toContain(form);
    const cvs = [...xml.matchAll(/<xenc:CipherValue>([^<]*)</g)].map((m) => m[1]);
    expect(cvs).toHaveLength(3); // MACKey + two seeds
    expect(new Set(cvs).size).toBe(3);
  });

  it("refuses the wrong key or password as a MAC mismatch, and says nothing about the seeds", () => {
    const tokens = [token(), token()];
    const xml = pskc.writePskc(tokens, protection);
    const wrong: PskcProtection =
      protection.kind === "psk" ? { kind: "psk", key: randomBytes(16) } : { kind: "password", password: "Correct horse battery staple" };
    expectRefused(() => pskc.readPskc(xml, wrong), "mac_mismatch", tokens.map((t) => t.secret));
  });

  it("refuses the other kind of protection by name", () => {
    const xml = pskc.writePskc([token()], protection);
    const other: PskcProtection = protection.kind === "psk" ? PASSWORD : PSK;
    expectRefused(() => pskc.readPskc(xml, other), "wrong_key_kind");
  });
});

describe("writePskc", () => {
  it("writes PBKDF2 with the default 1,300,000 iterations and a 16-byte salt, and reads it back", () => {
    const tokens = [token()];
    const protection: PskcProtection = { kind: "password", password: "pässwörd ünïcode" };
    const xml = pskc.writePskc(tokens, protection);
    expect(xml).toContain("<IterationCount>1300000</IterationCount>");
    const salt = /<Specified>([^<]*)</.exec(xml)![1];
    expect(Buffer.from(salt, "base64")).toHaveLength(16);
    sameTokens(pskc.readPskc(xml, protection), tokens);
  });

  it("uses a fresh salt and MAC key per file", () => {
    const a = pskc.writePskc([token()], PASSWORD);
    const b = pskc.writePskc([token()], PASSWORD);
    expect(/<Specified>([^<]*)</.exec(a)![1]).not.toBe(/<Specified>([^<]*)</.exec(b)![1]);
  });

  it("sets KeyContainer@Id when asked and refuses one that is not an xs:ID", () => {
    expect(pskc.writePskc([token()], PSK, { id: "batch_42" })).toContain('Version="1.0" Id="batch_42"');
    expect(() => pskc.writePskc([token()], PSK, { id: "42 batch" })).toThrow(RangeError);
  });

  it("refuses bad input with a message naming the field and never the seed", () => {
    const seed = randomBytes(20);
    const bad: [Partial<PskcToken>, RegExp][] = [
      [{ digits: 5 }, /digits must be in 6\.\.10/],
      [{ digits: 8.5 }, /digits must be an integer/],
      [{ period: 0 }, /period/],
      [{ t0: -1 }, /t0/],
      [{ t0: 2 ** 31 }, /t0/],
      [{ timeDrift: 2 ** 31 }, /timeDrift/],
      [{ serial: "" }, /serial must not be empty/],
      [{ serial: "A\u0001" }, /serial contains a character/],
      [{ serial: " FK1" }, /serial must not start or end with whitespace/],
      [{ manufacturer: "fobkit\n" }, /manufacturer must not start or end with whitespace/],
      [{ algorithm: "MD5" as never }, /algorithm/],
      [{ secret: randomBytes(15) }, /secret must be 16\.\.128 bytes, got 15/],
      [{ secret: "3132" as never }, /secret must be a Buffer/],
    ];
    for (const [over, msg] of bad) {
      let err: Error | undefined;
      try {
        pskc.writePskc([token({ secret: seed, ...over })], PSK);
      } catch (e) {
        err = e as Error;
      }
      expect(err, JSON.stringify(Object.keys(over))).toBeDefined();
      expect(err!.message).toMatch(msg);
      for (const form of secretForms([seed])) expect(err!.message).not.toContain(form);
    }
    expect(() => pskc.writePskc([], PSK)).toThrow(/non-empty/);
    const t = token();
    expect(() => pskc.writePskc([t, { ...t }], PSK)).toThrow(/appears twice/);
    expect(() => pskc.writePskc([token()], { kind: "psk", key: randomBytes(32) })).toThrow(/16 bytes \(AES-128\), got 32/);
    expect(() => pskc.writePskc([token()], { kind: "password", password: "" })).toThrow(/non-empty/);
    expect(() => pskc.writePskc([token()], { kind: "password", password: "x", iterations: 999 })).toThrow(/iterations/);
  });

  it("costs well under 1.5 KB per token (figure printed)", () => {
    const one = pskc.writePskc([token()], PSK).length;
    const hundred = pskc.writePskc(Array.from({ length: 100 }, () => token()), PSK).length;
    const perToken = (hundred - one) / 99;
    const pw = pskc.writePskc([token()], PASSWORD).length;
    console.log(`PSKC size: ${perToken.toFixed(0)} bytes per SHA-1 token, PSK container overhead ${one - perToken} bytes, PBKDF2 container ${pw - perToken} bytes`);
    expect(perToken).toBeLessThan(1500);
  });

  it("writes and reads a 1000-token batch without superlinear cost (figure printed; the bound is loose for a loaded 2-core machine)", () => {
    const tokens = Array.from({ length: 1000 }, () => token());
    let t0 = performance.now();
    const xml = pskc.writePskc(tokens, PSK);
    const writeMs = performance.now() - t0;
    t0 = performance.now();
    const back = pskc.readPskc(xml, PSK);
    const readMs = performance.now() - t0;
    console.log(`PSKC 1000 tokens (PSK): ${(xml.length / 1024).toFixed(0)} KiB, write ${writeMs.toFixed(0)} ms, read ${readMs.toFixed(0)} ms`);
    expect(back.every((t, i) => t.secret.equals(tokens[i].secret))).toBe(true);
    expect(writeMs).toBeLessThan(5000);
    expect(readMs).toBeLessThan(5000);
  });

  it("leaves the caller's key and seeds untouched (it wipes only its own copies)", () => {
    const key = randomBytes(16);
    const keyCopy = Buffer.from(key);
    const t = token();
    const seedCopy = Buffer.from(t.secret);
    const xml = pskc.writePskc([t], { kind: "psk", key });
    expect(key.equals(keyCopy)).toBe(true);
    expect(t.secret.equals(seedCopy)).toBe(true);
    expect(pskc.readPskc(xml, { kind: "psk", key })[0].secret.equals(seedCopy)).toBe(true);
  });
});
