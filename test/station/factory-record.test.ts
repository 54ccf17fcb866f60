/**
 * The factory record on its own: serial allocation, the key file rules,
 * sealed seeds, and a station process killed (SIGKILL) at arbitrary points
 * while allocating: every serial it was told about survives, none is handed
 * out twice, and its leftovers become failed on the next start.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FactoryError, FactoryRecord } from "../../host/station/factory-record.js";
import { FactoryKeyError } from "../../host/station/seed-cipher.js";
import { parseSerial } from "../../host/serial/serial-number.js";
import { NODE_BUILD } from "../support/paths.js";

let dir: string;
let file: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-rec-"));
  file = join(dir, "f.sqlite");
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("FactoryRecord", () => {
  it("creates the record and an owner-only key file beside it; allocates serials in order", () => {
    const rec = FactoryRecord.open(file, { create: true, line: 1 });
    expect(rec.keyFile).toBe(file + ".key");
    expect(statSync(rec.keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(rec.keyFile, "utf8")).toMatch(/^[0-9a-f]{64}\n$/);
    const b = rec.resolveBatch(undefined, {});
    expect(b).toMatchObject({ id: 1, algorithm: "SHA1", digits: 8, period: 60 });
    const a = rec.allocate({ batch: 1, seed: randomBytes(20), port: "/dev/x" });
    const c = rec.allocate({ batch: 1, seed: randomBytes(20) });
    expect([parseSerial(a.serial).sequence, parseSerial(c.serial).sequence]).toEqual([1, 2]);
    expect(rec.token(a.serial)).toMatchObject({ state: "pending", stage: "allocated", port: "/dev/x", batch: 1 });
    rec.close();
  });

  it("refuses another batch's parameters, and a batch number out of range", () => {
    const rec = FactoryRecord.open(file, { create: true, line: 1 });
    rec.resolveBatch(3, { algorithm: "SHA256", digits: 6 });
    expect(() => rec.resolveBatch(3, { algorithm: "SHA1" })).toThrow(/batch 3 is SHA256\/6 digits\/60 s; algorithm SHA1 needs a new batch \(--batch 4\)/);
    expect(rec.resolveBatch(undefined, {}).id).toBe(3);
    expect(() => rec.resolveBatch(10000, {})).toThrow(FactoryError);
    rec.close();
  });

  it("refuses a wrong key file, a missing one, and a missing record where it must exist", () => {
    FactoryRecord.open(file, { create: true, line: 1 }).close();
    const other = join(dir, "other.key");
    writeFileSync(other, randomBytes(32).toString("hex") + "\n");
    expect(() => FactoryRecord.open(file, { keyFile: other })).toThrow(/is not the key of/);
    expect(() => FactoryRecord.open(file, { keyFile: join(dir, "nope.key") })).toThrow(/is missing/);
    writeFileSync(other, "not hex\n");
    expect(() => FactoryRecord.open(file, { keyFile: other })).toThrow(FactoryKeyError);
    expect(() => FactoryRecord.open(join(dir, "none.sqlite"))).toThrow(/no factory record/);
  });

  it("seals seeds: readable with the key, bound to their serial, erased when a token fails before LOCK", () => {
    const rec = FactoryRecord.open(file, { create: true, line: 1 });
    rec.resolveBatch(1, {});
    const s1 = randomBytes(20), s2 = randomBytes(20);
    const a = rec.allocate({ batch: 1, seed: s1 }).serial;
    const b = rec.allocate({ batch: 1, seed: s2 }).serial;
    expect(rec.openSeed(a)).toEqual(s1);
    rec.close();
    // Swap the sealed seeds between the two rows: AES-GCM's AAD (the serial) refuses both.
    const db = new Database(file);
    const rows = db.prepare("SELECT serial, sealed_seed AS s FROM tokens").all() as { serial: string; s: Buffer }[];
    db.prepare("UPDATE tokens SET sealed_seed = ? WHERE serial = ?").run(rows[1].s, rows[0].serial);
    db.close();
    const again = FactoryRecord.open(file);
    expect(() => again.openSeed(a)).toThrow(/does not verify/);
    expect(again.openSeed(b)).toEqual(s2);
    again.markFailed(b, "test: failed before lock");
    expect(() => again.openSeed(b)).toThrow(/no seed on record/);
    const c = again.allocate({ batch: 1, seed: s1 }).serial;
    again.setStage(c, "lock_sent");
    again.markFailed(c, "test: failed after lock was sent");
    expect(again.openSeed(c)).toEqual(s1);
    again.close();
  });

  it("a station killed at any point: committed serials survive, none is reused, leftovers become failed", async () => {
    FactoryRecord.open(file, { create: true, line: 1 }).close();
    const script = `
      const { FactoryRecord } = await import(${JSON.stringify(join(NODE_BUILD, "host/station/factory-record.js"))});
      const rec = FactoryRecord.open(${JSON.stringify(file)});
      rec.resolveBatch(1, {});
      const seed = new Uint8Array(20);
      for (;;) {
        const { serial } = rec.allocate({ batch: 1, seed });
        process.stdout.write(serial + "\\n");
      }`;
    const told = new Set<string>();
    for (let round = 0; round < 4; round++) {
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
      let buf = "";
      child.stdout.on("data", (d) => (buf += d));
      // Started (its first serial is out), then killed at a point that varies per round.
      const t0 = Date.now();
      while (!buf.includes("\n") && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 20 + ((round * 53) % 120)));
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
      // A line is printed only after its allocate() committed.
      for (const l of buf.split("\n").slice(0, -1)) told.add(l);
    }
    expect(told.size).toBeGreaterThanOrEqual(4);
    const rec = FactoryRecord.open(file);
    expect(rec.recoverInterrupted()).toBe(rec.counts().failed);
    const rows = rec.tokens();
    const serials = rows.map((r) => r.serial);
    for (const s of told) expect(serials).toContain(s);
    expect(rows.every((r) => r.state === "failed" && /^interrupted/.test(r.reason!))).toBe(true);
    const seqs = rows.map((r) => r.sequence);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    const next = rec.allocate({ batch: 1, seed: new Uint8Array(20) });
    expect(parseSerial(next.serial).sequence).toBe(seqs.length + 1);
    expect(rec.recoverInterrupted()).toBe(0); // our own pending row is in hand, not interrupted
    rec.close();
  });
});
