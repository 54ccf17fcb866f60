/**
 * Serials unique across factory records (issue 11, item 5): every record
 * belongs to one production line, fixed when it is made, and every serial
 * it issues carries that line. Two records both starting at batch 1 no
 * longer issue the same serial; a record without a line, or opened as
 * another line, is refused before a serial is handed out; and a record made
 * before line numbers is still read, exported and imported by the bank.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { readKeyFile, SeedCipher } from "../../host/station/seed-cipher.js";
import { formatLegacySerial, formatSerial, parseSerial } from "../../host/serial/serial-number.js";
import { fobkit } from "./cli-io.js";

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-lines-"));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A good token in the record, as the station leaves one. */
function good(rec: FactoryRecord, batch: number, seed = randomBytes(20)): string {
  const { serial } = rec.allocate({ batch, seed });
  rec.setStage(serial, "lock_sent");
  rec.markGood(serial);
  return serial;
}

/**
 * A record as fobkit wrote it before line numbers (schema 1): the same
 * tables, legacy serials (FK + batch + sequence + check), seeds sealed under
 * those serials, and no line in meta.
 */
function legacyRecord(file: string, goodCount: number): { serials: string[]; seeds: Buffer[] } {
  const rec = FactoryRecord.open(file, { create: true, line: 1 });
  rec.resolveBatch(1, {});
  const seeds = Array.from({ length: goodCount }, () => randomBytes(20));
  for (const s of seeds) good(rec, 1, s);
  rec.close();
  const cipher = new SeedCipher(readKeyFile(file + ".key"));
  const db = new Database(file);
  const rows = db.prepare("SELECT serial, batch, sequence FROM tokens ORDER BY sequence").all() as { serial: string; batch: number; sequence: number }[];
  const serials = rows.map((r, i) => {
    const legacy = formatLegacySerial(r.batch, r.sequence);
    db.prepare("UPDATE tokens SET serial = ?, sealed_seed = ? WHERE serial = ?").run(legacy, cipher.seal(seeds[i], legacy), r.serial);
    return legacy;
  });
  db.exec("DELETE FROM meta WHERE name = 'line'; UPDATE meta SET value = '1' WHERE name = 'schema_version'");
  db.close();
  cipher.wipe();
  return { serials, seeds };
}

describe("serials unique across factory records", () => {
  it("two records on two lines, both from batch 1, never issue the same serial", () => {
    const a = FactoryRecord.open(join(dir, "a.sqlite"), { create: true, line: 3 });
    const b = FactoryRecord.open(join(dir, "b.sqlite"), { create: true, line: 4 });
    a.resolveBatch(1, {});
    b.resolveBatch(1, {});
    const fromA = Array.from({ length: 20 }, () => a.allocate({ batch: 1, seed: randomBytes(20) }).serial);
    const fromB = Array.from({ length: 20 }, () => b.allocate({ batch: 1, seed: randomBytes(20) }).serial);
    expect(fromA[0]).toBe(formatSerial(3, 1, 1));
    expect(fromB[0]).toBe(formatSerial(4, 1, 1));
    expect(new Set([...fromA, ...fromB]).size).toBe(40);
    expect(fromA.every((s) => parseSerial(s).line === 3) && fromB.every((s) => parseSerial(s).line === 4)).toBe(true);
    a.close();
    b.close();
  });

  it("a new record without its line is refused, and nothing is created", async () => {
    const file = join(dir, "new.sqlite");
    expect(() => FactoryRecord.open(file, { create: true })).toThrow(/a new factory record needs its production line: --line N \(1..99\)/);
    const r = await fobkit(["provision", "--port", join(dir, "none"), "--factory", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs its production line: --line N/);
    expect(existsSync(file)).toBe(false);
    expect(existsSync(file + ".key")).toBe(false);
    for (const bad of ["0", "100", "x"]) {
      const out = await fobkit(["station", "--factory", file, "--line", bad, "--ports", join(dir, "none")]);
      expect(out.code).toBe(2);
      expect(out.stderr).toMatch(/--line must be a whole number 1..99/);
    }
    expect(existsSync(file)).toBe(false);
  });

  it("a record belongs to one line for life: opened as another line it is refused, unchanged", async () => {
    const file = join(dir, "line7.sqlite");
    const rec = FactoryRecord.open(file, { create: true, line: 7 });
    rec.resolveBatch(1, {});
    const first = good(rec, 1);
    rec.close();
    expect(() => FactoryRecord.open(file, { line: 8 })).toThrow(/is the record of line 07; --line 8 names another line/);
    const r = await fobkit(["provision", "--port", join(dir, "none"), "--factory", file, "--line", "8", "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/record of line 07; --line 8 names another line \(a record belongs to one line for life: give line 8 its own record\)/);
    // Without --line, or with its own, it opens and goes on from where it was.
    const again = FactoryRecord.open(file, { line: 7 });
    expect(again.line).toBe(7);
    expect(again.allocate({ batch: 1, seed: randomBytes(20) }).serial).toBe(formatSerial(7, 1, 2));
    expect(again.token(first)).toMatchObject({ state: "good" });
    again.close();
    const summary = JSON.parse((await fobkit(["record", "--factory", file, "--json"])).stdout);
    expect(summary.line).toBe(7);
  });

  it("a record made before line numbers: read, exported and imported by the bank as it is; it provisions only once given its line", async () => {
    const file = join(dir, "old.sqlite");
    const { serials } = legacyRecord(file, 2);
    expect(serials.every((s) => /^FK0001\d{8}$/.test(s))).toBe(true);

    // Read as it is (no key file needed), line null.
    const listed = JSON.parse((await fobkit(["record", "--factory", file, "--list", "--json"])).stdout);
    expect(listed.tokens.map((t: { serial: string }) => t.serial)).toEqual(serials);
    expect(JSON.parse((await fobkit(["record", "--factory", file, "--json"])).stdout)).toMatchObject({ line: null, batches: [expect.objectContaining({ id: 1 })] });

    // Exported, and the bank imports its old-format serials.
    writeFileSync(join(dir, "bank.psk"), randomBytes(16).toString("hex") + "\n");
    const out = join(dir, "old.pskcxml");
    const exp = await fobkit(["export", "--factory", file, "--batch", "1", "--out", out, "--psk-file", join(dir, "bank.psk"), "--json"]);
    expect(exp.code).toBe(0);
    expect(JSON.parse(exp.stdout).serials).toEqual(serials);
    expect(readFileSync(out, "utf8")).toContain(`Id="fobkit-batch-1"`);
    const env = { FOBKIT_BANK_DB: "sqlite:" + join(dir, "bank.sqlite"), FOBKIT_BANK_KEK_FILE: join(dir, "bank.kek") };
    expect((await fobkit(["bank", "init-kek"], env)).code).toBe(0);
    const imp = await fobkit(["bank", "import", out, "--psk-file", join(dir, "bank.psk"), "--json"], env);
    expect(imp.code).toBe(0);
    expect(JSON.parse(imp.stdout)).toMatchObject({ imported: 2, serials });
    // The bank still tells a mistyped old serial from an unknown one.
    const typo = serials[0].slice(0, 13) + String((Number(serials[0][13]) + 1) % 10);
    const st = await fobkit(["bank", "status", "--serial", typo, "--json"], env);
    expect(st.stderr).toMatch(/check digits do not match.*mistyped/);

    // Provisioning on it is refused until it is given its line, before any keyfob is touched.
    const refused = await fobkit(["provision", "--port", join(dir, "none"), "--factory", file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/was made before line numbers.*Give it its line once with --line N/);
    // Given its line: old serials stay, new serials carry the line (in batch 2: batch 1 was exported, which closed it).
    const rec = FactoryRecord.open(file, { line: 5 });
    expect(rec.line).toBe(5);
    expect(() => rec.allocate({ batch: 1, seed: randomBytes(20) })).toThrow(/batch 1 was exported to PSKC/);
    expect(rec.resolveBatch(undefined, {}).id).toBe(2);
    expect(rec.allocate({ batch: 2, seed: randomBytes(20) }).serial).toBe(formatSerial(5, 2, 1));
    expect(rec.tokens({ state: "good" }).map((t) => t.serial)).toEqual(serials);
    expect(rec.openSeed(serials[0])).toHaveLength(20);
    rec.close();
    expect(() => FactoryRecord.open(file, { line: 6 })).toThrow(/record of line 05/);
  });
});
