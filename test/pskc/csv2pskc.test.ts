/**
 * Files written by python-pskc (Debian's pskc-utils csv2pskc and
 * python3-pskc), with each optional field left out in turn (issue 11,
 * item 8): what RFC 6030's schema allows is read; what fobkit cannot do
 * without (a serial, TOTP, the number of digits) is refused by name.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectRefused, pskc, python, tmp, writeTmp } from "./helpers.js";

const KEY = randomBytes(16);
const SEED = randomBytes(20);
const FULL: Record<string, string> = {
  serial: "CSV-0001",
  id: "key-CSV-0001",
  secret: SEED.toString("hex"),
  manufacturer: "Vendor Inc",
  model: "V-200",
  issuer: "Example Bank",
  algorithm: "urn:ietf:params:xml:ns:keyprov:pskc:totp",
  response_length: "8",
  time_offset: "1600000000",
  time_interval: "60",
  time_drift: "2",
};

/** csv2pskc's file for these columns, seeds encrypted with KEY (or in plain text). */
function csv2pskc(columns: Record<string, string>, encrypt = true): string {
  const dir = tmp("csv2pskc-");
  const names = Object.keys(columns);
  const csv = writeTmp("keys.csv", `${names.join(",")}\n${names.map((n) => columns[n]).join(",")}\n`);
  const out = join(dir, "out.pskcxml");
  const r = spawnSync("csv2pskc", [...(encrypt ? ["-s", KEY.toString("hex")] : []), "-o", out, csv], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return readFileSync(out, "utf8");
}

const without = (field: string) => Object.fromEntries(Object.entries(FULL).filter(([k]) => k !== field));
const read = (xml: string, opts = {}) => pskc.readPskc(xml, { kind: "psk", key: KEY }, opts);

describe("csv2pskc (pskc-utils) files", () => {
  it("with every column: every field read", () => {
    const [t] = read(csv2pskc(FULL));
    expect({ ...t, secret: t.secret.toString("hex") }).toEqual({
      serial: "CSV-0001",
      keyId: "key-CSV-0001",
      manufacturer: "Vendor Inc",
      model: "V-200",
      issuer: "Example Bank",
      algorithm: "SHA1",
      digits: 8,
      t0: 1_600_000_000,
      period: 60,
      timeDrift: 2,
      secret: SEED.toString("hex"),
    });
  });

  it.each([
    ["manufacturer", (t: any) => expect(t.manufacturer).toBe("")],
    ["model", (t: any) => expect(t.model).toBeUndefined()],
    ["id", (t: any) => expect(t.keyId).toBe("CSV-0001")],
    ["issuer", (t: any) => expect(t.issuer).toBeUndefined()],
    ["time_offset", (t: any) => expect(t.t0).toBe(0)],
    ["time_interval", (t: any) => expect(t.period).toBe(30)],
    ["time_drift", (t: any) => expect(t.timeDrift).toBeUndefined()],
  ])("without %s: read, the field defaulted", (field, check) => {
    const xml = csv2pskc(without(field));
    const [t] = read(xml);
    expect(t.secret.equals(SEED)).toBe(true);
    check(t);
  });

  it("without serial: refused as missing_serial with the hint, read with serialFrom key-id", () => {
    const xml = csv2pskc(without("serial"));
    expect(xml).not.toContain("SerialNo");
    expect(expectRefused(() => read(xml), "missing_serial", [SEED]).message).toMatch(/--serial-from key-id/);
    expect(read(xml, { serialFrom: "key-id" })[0].serial).toBe("key-CSV-0001");
  });

  it.each([
    ["algorithm", /Key has no Algorithm, so it cannot be told to be TOTP/],
    ["response_length", /no AlgorithmParameters\/ResponseFormat@Length: how many digits/],
  ])("without %s: refused as unsupported_algorithm, saying what is missing", (field, msg) => {
    const xml = csv2pskc(without(field));
    expect(expectRefused(() => read(xml), "unsupported_algorithm", [SEED]).message).toMatch(msg);
  });

  it("in plain text (no -s): read only when plaintext is allowed, and then with no key at all", () => {
    const xml = csv2pskc(FULL, false);
    expect(xml).toContain("<pskc:PlainValue>");
    expectRefused(() => read(xml), "plaintext_secret", [SEED]);
    const r = pskc.readPskcReport(xml, undefined, { allowPlaintextSecrets: true });
    expect([r.plaintext, r.tokens[0].serial, r.tokens[0].secret.equals(SEED)]).toEqual([true, "CSV-0001", true]);
  });
});

/** python-pskc's API, leaving out what csv2pskc cannot: a DeviceInfo with only the serial, no Key@Id, no Encoding. */
const WRITE_SPARSE = `
import binascii, json, sys
from pskc import PSKC
a = json.load(sys.stdin)
p = PSKC()
k = p.add_key(secret=binascii.unhexlify(a["secret"]), **a["fields"])
p.encryption.setup_preshared_key(key=binascii.unhexlify(a["key"]))
p.write(a["path"])
print(json.dumps(True))
`;

describe("python3-pskc files with optional attributes left out", () => {
  it.each([
    ["no Key@Id and no ResponseFormat@Encoding", { serial: "PY-1", algorithm: "urn:ietf:params:xml:ns:keyprov:pskc:totp", response_length: 6 }],
    ["only a serial in DeviceInfo, HMAC-SHA256 suite", { serial: "PY-2", algorithm: "urn:ietf:params:xml:ns:keyprov:pskc:totp", algorithm_suite: "HMAC-SHA256", response_length: 8, time_interval: 60 }],
  ])("%s", (_n, fields) => {
    const path = join(tmp("py-pskc-"), "sparse.pskcxml");
    python(WRITE_SPARSE, { path, key: KEY.toString("hex"), secret: SEED.toString("hex"), fields });
    const xml = readFileSync(path, "utf8");
    expect(xml).not.toContain("Manufacturer");
    expect(xml).not.toMatch(/<pskc:Key [^>]*Id=/);
    const [t] = read(xml);
    expect(t.serial).toBe(fields.serial);
    expect(t.keyId).toBe(fields.serial);
    expect(t.manufacturer).toBe("");
    expect(t.digits).toBe(fields.response_length);
    expect(t.secret.equals(SEED)).toBe(true);
  });
});
