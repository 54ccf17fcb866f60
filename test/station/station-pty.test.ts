/**
 * `fobkit station` on two real PTYs with emulated keyfobs swapped in as each
 * finishes (the operator's hands): 20 keyfobs in a row, then the export of
 * the batch, which must decrypt to exactly the seeds the keyfobs hold (their
 * displayed codes prove it), and nowhere else may a seed appear in clear.
 */
import { readdirSync, readFileSync, rmSync, mkdtempSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { ROOT } from "../support/paths.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Emulator } from "../../hil/emulator.js";
import { referenceTotp } from "../../host/station/reference-totp.js";
import { readPskc, PskcError } from "../../host/pskc/index.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { parseSerial } from "../../host/serial/serial-number.js";
import { IMAGE } from "../support/paths.js";
import { attachKeyfob, type EmulatedKeyfob } from "./emulated-keyfob.js";
import { CliRun, fobkit } from "./cli-io.js";
import { base32 } from "../support/seed-forms.js";

const TOKENS = 20;
let dir: string;
let factory: string;
const allOutput: string[] = [];
/** serial -> the keyfob's state directory (its flash). */
const stateOf = new Map<string, string>();
let stationCode = -1;
let stationRun: CliRun;


beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-station-"));
  factory = join(dir, "line.sqlite");
  const ports = [join(dir, "ttyA"), join(dir, "ttyB")];
  const current = new Map<string, EmulatedKeyfob>();
  let attached = 0;
  const plug = async (port: string) => {
    if (attached >= TOKENS) return;
    attached++;
    current.set(port, await attachKeyfob(port));
  };
  for (const p of ports) await plug(p);
  stationRun = new CliRun();
  const swaps: Promise<void>[] = [];
  stationRun.onLine((line) => {
    const r = JSON.parse(line);
    const fob = current.get(r.port)!;
    if (r.status === "good") stateOf.set(r.serial, fob.stateDir);
    current.delete(r.port);
    // The operator takes the keyfob out and puts the next one in.
    swaps.push(fob.unplug().then(() => plug(r.port)));
  });
  stationCode = await stationRun.run(["station", "--factory", factory, "--line", "1", "--ports", ports.join(","), "--count", String(TOKENS), "--json", "--poll-ms", "50", "--operator", "ana"]);
  await Promise.all(swaps);
  for (const f of current.values()) await f.unplug();
  allOutput.push(stationRun.out.stdout, stationRun.out.stderr);
}, 300_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("fobkit station", () => {
  it(`provisions ${TOKENS} keyfobs in a row on two ports and stops at --count`, () => {
    expect(stationCode).toBe(0);
    const results = stationRun.out.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(results.filter((r) => r.status === "good")).toHaveLength(TOKENS);
    expect(results.every((r) => r.status === "good")).toBe(true);
    const seqs = results.map((r) => parseSerial(r.serial).sequence).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: TOKENS }, (_, i) => i + 1));
    expect(new Set(results.map((r) => r.port)).size).toBe(2);
    const rec = FactoryRecord.open(factory);
    expect(rec.counts(1)).toEqual({ pending: 0, good: TOKENS, failed: 0 });
    rec.close();
    // Not a TTY: plain progress lines with the running count, no escape codes.
    expect(stationRun.out.stderr).toMatch(new RegExp(`GOOD FK\\d{14} in [\\d.]+ s - remove keyfob  \\[good ${TOKENS}, failed 0\\]`));
    expect(stationRun.out.stderr).not.toMatch(/\x1b\[/);
    expect(stationRun.out.stderr).toMatch(new RegExp(`station stopped: ${TOKENS} good, 0 failed`));
  });

  it("exports the batch to PSKC that decrypts to exactly the keyfobs' seeds; a wrong key or a changed byte is refused", async () => {
    const psk = randomBytes(16);
    writeFileSync(join(dir, "bank.psk"), psk.toString("hex") + "\n");
    const out = join(dir, "batch1.pskcxml");
    const r = await fobkit(["export", "--factory", factory, "--batch", "1", "--out", out, "--psk-file", join(dir, "bank.psk"), "--json"]);
    allOutput.push(r.stdout, r.stderr);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ batch: 1, tokens: TOKENS });
    const xml = readFileSync(out, "utf8");
    const tokens = readPskc(xml, { kind: "psk", key: psk });
    expect(tokens.map((t) => t.serial).sort()).toEqual([...stateOf.keys()].sort());
    // Each exported seed is the one in the keyfob: its button shows the code the seed gives.
    for (const t of tokens.slice(0, 4)) {
      const emu = new Emulator({ stateDir: stateOf.get(t.serial)!, countInstructions: false });
      emu.boot();
      emu.advance(1);
      emu.press();
      const shown = emu.display.trim();
      const expected = referenceTotp(t.secret, emu.rtcTime(), t.period, t.digits, "SHA1");
      emu.close();
      expect(expected).toBe(shown);
      expect(t).toMatchObject({ manufacturer: "fobkit", model: "FOBKIT-1", algorithm: "SHA1", digits: 8, period: 60 });
    }
    // Valid against the RFC 6030 schema set, and read alike by another implementation (python-pskc).
    const lint = spawnSync("xmllint", ["--nonet", "--noout", "--schema", join(ROOT, "test/fixtures/pskc/schema/pskc-schema.xsd"), out], { encoding: "utf8" });
    expect(lint.status, lint.stderr).toBe(0);
    const py = spawnSync("/usr/bin/python3", ["-c", [
      "import json, sys, binascii",
      "from pskc import PSKC",
      "a = json.load(sys.stdin)",
      "p = PSKC(a['file'])",
      "p.encryption.key = binascii.unhexlify(a['key'])",
      "print(json.dumps({k.serial: [binascii.hexlify(k.secret).decode(), k.algorithm, k.response_length, k.time_interval, k.manufacturer] for k in p.keys}))",
    ].join("\n")], { input: JSON.stringify({ file: out, key: psk.toString("hex") }), encoding: "utf8" });
    expect(py.status, py.stderr).toBe(0);
    const theirs = JSON.parse(py.stdout);
    for (const t of tokens) expect(theirs[t.serial]).toEqual([t.secret.toString("hex"), "urn:ietf:params:xml:ns:keyprov:pskc:totp", 8, 60, "fobkit"]);
    // Wrong key: MAC refused.
    const wrong = Buffer.from(psk);
    wrong[0] ^= 1;
    expect(() => readPskc(xml, { kind: "psk", key: wrong })).toThrow(PskcError);
    try {
      readPskc(xml, { kind: "psk", key: wrong });
    } catch (e) {
      expect((e as PskcError).code).toBe("mac_mismatch");
    }
    // One changed byte inside a CipherValue: MAC refused.
    const m = /<xenc:CipherValue>([^<]+)<\/xenc:CipherValue>/g;
    const all = [...xml.matchAll(m)];
    const victim = all[all.length - 1];
    const bytes = Buffer.from(victim[1], "base64");
    bytes[bytes.length - 1] ^= 0x01;
    const tampered = xml.slice(0, victim.index!) + `<xenc:CipherValue>${bytes.toString("base64")}</xenc:CipherValue>` + xml.slice(victim.index! + victim[0].length);
    expect(() => readPskc(tampered, { kind: "psk", key: psk })).toThrow(/mac/i);
    // No overwrite without --force.
    const again = await fobkit(["export", "--factory", factory, "--batch", "1", "--out", out, "--psk-file", join(dir, "bank.psk")]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists; use --force/);
    const forced = await fobkit(["export", "--factory", factory, "--batch", "1", "--out", out, "--password-file", join(dir, "bank.psk"), "--force"]);
    expect(forced.code).toBe(0);
    expect(readPskc(readFileSync(out), { kind: "password", password: psk.toString("hex") })).toHaveLength(TOKENS);
  });

  it("no seed appears in clear in the factory record, the key file, stdout/stderr, or any other file written", () => {
    const rec = FactoryRecord.open(factory);
    const seeds = rec.tokens({ state: "good" }).map((t) => rec.openSeed(t.serial));
    rec.close();
    expect(seeds).toHaveLength(TOKENS);
    const files = readdirSync(dir).filter((f) => !f.endsWith(".pskcxml") && statSync(join(dir, f)).isFile());
    expect(files).toEqual(expect.arrayContaining(["line.sqlite", "line.sqlite.key"]));
    const blobs = files.map((f) => ({ name: f, data: readFileSync(join(dir, f)) }));
    blobs.push({ name: "stdout/stderr", data: Buffer.from(allOutput.join("\n")) });
    for (const seed of seeds) {
      const forms = [seed, Buffer.from(seed.toString("hex")), Buffer.from(seed.toString("hex").toUpperCase()), Buffer.from(base32(seed)), Buffer.from(seed.toString("base64").replace(/=+$/, ""))];
      for (const b of blobs) for (const f of forms) expect(b.data.includes(f), `a seed form in ${b.name}`).toBe(false);
    }
  });
});
