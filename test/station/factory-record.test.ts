/**
 * The factory record on its own: serial allocation, the key file rules,
 * sealed seeds, and a station process killed (SIGKILL) at arbitrary points
 * while allocating: every serial it was told about survives, none is handed
 * out twice, and its leftovers become failed on the next start.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
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

  it("a new record is owner-only, its WAL and shared-memory files too", () => {
    const rec = FactoryRecord.open(file, { create: true, line: 1 });
    rec.resolveBatch(1, {});
    rec.allocate({ batch: 1, seed: randomBytes(20) });
    const files = readdirSync(dir).filter((f) => f.startsWith("f.sqlite"));
    expect(files.sort()).toEqual(["f.sqlite", "f.sqlite-shm", "f.sqlite-wal", "f.sqlite.key"]);
    for (const f of files) expect({ f, mode: statSync(join(dir, f)).mode & 0o777 }).toEqual({ f, mode: 0o600 });
    rec.close();
  });

  /**
   * A power cut right after a new record's first keyfob: the record's rows
   * are fsynced (synchronous=FULL), so the key that seals their seeds must be
   * on disk first, or the record survives holding seeds of locked keyfobs
   * that nothing can open. Seen with strace: the key file's data and its
   * directory entry are fsynced before the record is even opened.
   */
  it("the key file of a new record reaches the disk before any seed is sealed under it", () => {
    const keyDir = join(dir, "keys");
    mkdirSync(keyDir);
    const keyFile = join(keyDir, "line1.key");
    const trace = join(dir, "strace.log");
    const script = `
      const { FactoryRecord } = await import(${JSON.stringify(join(NODE_BUILD, "host/station/factory-record.js"))});
      const rec = FactoryRecord.open(${JSON.stringify(file)}, { create: true, line: 1, keyFile: ${JSON.stringify(keyFile)} });
      rec.resolveBatch(1, {});
      rec.allocate({ batch: 1, seed: new Uint8Array(20) });
      rec.close();`;
    const r = spawnSync("strace", ["-f", "-qq", "-e", "trace=openat,fsync,fdatasync,close", "-o", trace, process.execPath, "--input-type=module", "-e", script], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const calls = readFileSync(trace, "utf8").split("\n").map((l) => l.replace(/^\d+\s+/, ""));
    const opened = (path: string) => calls.findIndex((l) => l.startsWith("openat(") && l.includes(`"${path}"`) && !/= -1/.test(l));
    const fdOf = (i: number) => Number(/= (\d+)$/.exec(calls[i])![1]);
    /** Index of the first fsync/fdatasync of the fd opened at call i, before that fd is closed; -1 if none. */
    const syncedAt = (i: number) => {
      const fd = fdOf(i);
      for (let k = i + 1; k < calls.length; k++) {
        if (new RegExp(`^f(data)?sync\\(${fd}[ )]`).test(calls[k])) return k;
        if (new RegExp(`^close\\(${fd}[ )]`).test(calls[k])) return -1;
      }
      return -1;
    };
    const keyOpen = opened(keyFile);
    const dbOpen = opened(file);
    expect(keyOpen).toBeGreaterThanOrEqual(0);
    expect(dbOpen).toBeGreaterThan(keyOpen);
    const keySync = syncedAt(keyOpen);
    expect(keySync, "the key file is fsynced").toBeGreaterThan(keyOpen);
    expect(keySync).toBeLessThan(dbOpen);
    // Its directory entry too: the key file lives elsewhere in production (--key-file), so the record's own directory syncs do not cover it.
    const dirOpen = calls.findIndex((l, k) => k > keyOpen && l.startsWith("openat(") && l.includes(`"${dirname(keyFile)}"`) && !/= -1/.test(l));
    expect(dirOpen, "the key file's directory is opened to be fsynced").toBeGreaterThan(keyOpen);
    const dirSync = syncedAt(dirOpen);
    expect(dirSync, "the key file's directory is fsynced").toBeGreaterThan(dirOpen);
    expect(dirSync).toBeLessThan(dbOpen);
  });

  it("after a reboot, a pending row's station is gone even when its pid now belongs to a live process, this one included", () => {
    const rec = FactoryRecord.open(file, { create: true, line: 1 });
    rec.resolveBatch(1, {});
    const [a, b, c] = [0, 1, 2].map(() => rec.allocate({ batch: 1, seed: randomBytes(20) }).serial);
    rec.close();
    // Rows of a station that ran before the station PC lost power: pids restart at boot, and these now name live processes (init, and this one).
    const raw = new Database(file);
    raw.prepare("UPDATE tokens SET owner_pid = 1, owner_boot = 'an-earlier-boot' WHERE serial = ?").run(a);
    raw.prepare("UPDATE tokens SET owner_pid = ?, owner_boot = 'an-earlier-boot' WHERE serial = ?").run(process.pid, b);
    raw.close();
    const again = FactoryRecord.open(file);
    expect(again.recoverInterrupted()).toBe(2);
    for (const s of [a, b]) expect(again.token(s)).toMatchObject({ state: "failed", reason: "interrupted: the station stopped after allocated" });
    expect(() => again.openSeed(a)).toThrow(/no seed on record/);
    // This boot, this process: a keyfob in hand.
    expect(again.token(c)).toMatchObject({ state: "pending" });
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
