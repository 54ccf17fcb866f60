/**
 * Interoperability with an independent implementation: Debian's
 * python3-pskc (python-pskc 1.2, Arthur de Jong) reads what we write, and we
 * read what it writes, in both protection modes of RFC 6030 §6.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FIXTURES, PASSWORD, expectRefused, pskc, python, tmp, token, writeTmp, type PskcProtection, type PskcToken } from "./helpers.js";

const READ = `
import binascii, json, sys
from pskc import PSKC
a = json.load(sys.stdin)
p = PSKC(a["path"])
if a["kind"] == "psk":
    p.encryption.key = binascii.unhexlify(a["key"])
else:
    p.encryption.derive_key(a["password"])
keys = []
for k in p.keys:
    keys.append(dict(serial=k.serial, cryptoModuleId=k.crypto_module, manufacturer=k.manufacturer, model=k.model, issuer=k.issuer,
        keyId=k.id, algorithm=k.algorithm, suite=k.algorithm_suite, digits=k.response_length,
        encoding=k.response_encoding, period=k.time_interval, t0=k.time_offset, timeDrift=k.time_drift,
        secret=binascii.hexlify(k.secret).decode(), macOk=k.check()))
print(json.dumps(dict(mac=p.mac.algorithm, enc=p.encryption.algorithm,
    macKey=binascii.hexlify(p.mac.key).decode(), keys=keys)))
`;

const WRITE = `
import binascii, json, sys
from pskc import PSKC
a = json.load(sys.stdin)
p = PSKC()
for t in a["tokens"]:
    k = p.add_key(id=t["keyId"], serial=t["serial"], manufacturer=t["manufacturer"], model=t.get("model"),
        issuer=t.get("issuer"), secret=binascii.unhexlify(t["secret"]),
        algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp", algorithm_suite=t.get("suite"),
        response_length=t["digits"], response_encoding="DECIMAL",
        time_offset=t["t0"], time_interval=t["period"], time_drift=t.get("timeDrift"))
    k.device.crypto_module = t.get("cryptoModuleId")
if a["kind"] == "psk":
    p.encryption.setup_preshared_key(key=binascii.unhexlify(a["key"]), key_name="bank-2026", fields=a.get("fields"))
else:
    p.encryption.setup_pbkdf2(a["password"], iterations=a["iterations"], fields=a.get("fields"))
p.write(a["path"])
print(json.dumps(True))
`;

function protectionArgs(p: PskcProtection): object {
  return p.kind === "psk" ? { kind: "psk", key: p.key.toString("hex") } : { kind: "password", password: p.password, iterations: p.iterations };
}

const SUITE: Record<string, string | null> = { SHA1: null, SHA256: "HMAC-SHA256", SHA512: "HMAC-SHA512" };

const MODES: [string, PskcProtection][] = [
  ["pre-shared key", { kind: "psk", key: randomBytes(16) }],
  ["PBKDF2 password", PASSWORD],
];

describe.each(MODES)("python-pskc interop, %s", (_n, protection) => {
  const tokens: PskcToken[] = [
    token({ algorithm: "SHA1", cryptoModuleId: "hw-00112233" }),
    token({ algorithm: "SHA256", secret: randomBytes(32), digits: 6, period: 30, timeDrift: -4 }),
    token({ algorithm: "SHA512", secret: randomBytes(64), t0: 1_234_567_890, model: undefined, issuer: undefined }),
  ];

  it("python-pskc reads our file: same serials, seeds, hash, digits, step, T0, drift, and every ValueMAC checks", () => {
    const path = writeTmp("ours.pskcxml", pskc.writePskc(tokens, protection));
    const got = python(READ, { path, ...protectionArgs(protection) });
    expect(got.mac).toBe("http://www.w3.org/2000/09/xmldsig#hmac-sha1");
    expect(got.enc).toBe("http://www.w3.org/2001/04/xmlenc#aes128-cbc");
    expect(got.macKey).toMatch(/^[0-9a-f]{40}$/);
    expect(got.keys).toEqual(
      tokens.map((t) => ({
        serial: t.serial,
        cryptoModuleId: t.cryptoModuleId ?? null,
        manufacturer: t.manufacturer,
        model: t.model ?? null,
        issuer: t.issuer ?? null,
        keyId: t.keyId,
        algorithm: "urn:ietf:params:xml:ns:keyprov:pskc:totp",
        suite: SUITE[t.algorithm],
        digits: t.digits,
        encoding: "DECIMAL",
        period: t.period,
        t0: t.t0,
        timeDrift: t.timeDrift ?? null,
        secret: t.secret.toString("hex"),
        macOk: true,
      })),
    );
  });

  it("we read python-pskc's file to the same tokens", () => {
    const path = join(tmp(), "theirs.pskcxml");
    python(WRITE, {
      path,
      ...protectionArgs(protection),
      tokens: tokens.map((t) => ({ ...t, secret: t.secret.toString("hex"), suite: SUITE[t.algorithm] })),
    });
    const xml = readFileSync(path, "utf8");
    // It really is python-pskc's dialect, not ours.
    if (protection.kind === "password") expect(xml).toContain("xenc11:PBKDF2-params");
    else expect(xml).toContain("<ds:KeyName>bank-2026</ds:KeyName>");
    const got = pskc.readPskc(xml, protection);
    expect(got.map((t) => ({ ...t, secret: t.secret.toString("hex") }))).toEqual(tokens.map((t) => ({ ...t, secret: t.secret.toString("hex") })));
    // And its MACs are checked by us, not skipped: a flipped ValueMAC is refused.
    const tampered = xml.replace(/(<pskc:ValueMAC>)(.)/, (_m, tag: string, c: string) => tag + (c === "A" ? "B" : "A"));
    expect(tampered).not.toBe(xml);
    expectRefused(() => pskc.readPskc(tampered, protection), "mac_mismatch");
  });
});

describe("python-pskc's optional encryption of integers", () => {
  it("we read encrypted Time, TimeInterval and TimeDrift, each checked against its own ValueMAC", () => {
    const protection: PskcProtection = { kind: "psk", key: randomBytes(16) };
    // python-pskc cannot encrypt a negative integer, so the drift here is positive.
    const tokens = [token({ t0: 1_600_000_000, period: 60, timeDrift: 3 }), token({ period: 30, timeDrift: 0 })];
    const path = join(tmp(), "ints.pskcxml");
    python(WRITE, {
      path,
      ...protectionArgs(protection),
      fields: ["secret", "time_offset", "time_interval", "time_drift"],
      tokens: tokens.map((t) => ({ ...t, secret: t.secret.toString("hex"), suite: null })),
    });
    const xml = readFileSync(path, "utf8");
    expect(xml).toMatch(/<pskc:TimeInterval>\s*<pskc:EncryptedValue>/);
    expect(xml).not.toMatch(/<pskc:TimeInterval>\s*<pskc:PlainValue>/);
    const got = pskc.readPskc(xml, protection);
    expect(got.map((t) => [t.t0, t.period, t.timeDrift])).toEqual([
      [1_600_000_000, 60, 3],
      [0, 30, 0],
    ]);
    const macs = [...xml.matchAll(/<pskc:ValueMAC>([^<]*)</g)];
    expect(macs.length).toBe(8);
    const second = macs[2]; // token 1: Secret, Time, TimeInterval, ...
    const bad = Buffer.from(second[1], "base64");
    bad[0] ^= 1;
    const tampered = xml.slice(0, second.index! + 15) + bad.toString("base64") + xml.slice(second.index! + 15 + second[1].length);
    expectRefused(() => pskc.readPskc(tampered, protection), "mac_mismatch");
  });
});

describe("python-pskc and the RFC's figures", () => {
  it("python-pskc reads our fixtures of Figures 6 and 7 to the RFC's stated MAC keys and secret", () => {
    const fig6 = python(READ, { path: join(FIXTURES, "rfc6030-figure6.pskcxml"), kind: "psk", key: "12345678901234567890123456789012" });
    expect(fig6.macKey).toBe("1122334455667788990011223344556677889900");
    expect(Buffer.from(fig6.keys[0].secret, "hex").toString()).toBe("12345678901234567890");
    const fig7 = python(READ, { path: join(FIXTURES, "rfc6030-figure7.pskcxml"), kind: "password", password: "qwerty" });
    expect(Buffer.from(fig7.keys[0].secret, "hex").toString()).toBe("12345678901234567890");
    expect(fig7.keys[0].macOk).toBe(true);
  });
});

it("the reference implementation is Debian's python3-pskc under the system interpreter", () => {
  const where = python("import json, pskc; print(json.dumps([pskc.__version__, pskc.__file__]))", null);
  expect(where[0]).toMatch(/^\d+\.\d+/);
  expect(where[1]).toMatch(/^\/usr\/lib\/python3\/dist-packages\/pskc\//);
});
