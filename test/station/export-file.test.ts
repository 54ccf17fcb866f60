/**
 * `fobkit export` writes the bank's file crash-safely, seen in its system
 * calls (strace): the destination never exists as an empty or partial file
 * (the PSKC text goes to an owner-only temp file, fsynced, then appears
 * under its name in one step), and the directory is fsynced after that, so
 * an export that reported success is still there after a power cut.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readPskc } from "../../host/pskc/index.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { ROOT } from "../support/paths.js";

const FOBKIT = join(ROOT, "bin", "fobkit");
let dir: string;
let factory: string;
const psk = randomBytes(16);
const seeds = new Map<string, Buffer>();

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-expfile-"));
  factory = join(dir, "line.sqlite");
  writeFileSync(join(dir, "bank.psk"), psk.toString("hex") + "\n");
  const rec = FactoryRecord.open(factory, { create: true, line: 5 });
  rec.resolveBatch(1, {});
  for (let i = 0; i < 3; i++) {
    const seed = randomBytes(20);
    const { serial } = rec.allocate({ batch: 1, seed });
    rec.setStage(serial, "lock_sent");
    rec.markGood(serial);
    seeds.set(serial, seed);
  }
  rec.close();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** `fobkit export` under strace; returns its exit status and the traced calls (pid prefix removed). */
function tracedExport(out: string, extra: string[] = []): { status: number | null; stderr: string; calls: string[] } {
  const trace = join(dir, `strace-${randomBytes(4).toString("hex")}.log`);
  const r = spawnSync("strace", ["-f", "-qq", "-e", "trace=openat,link,linkat,rename,renameat,renameat2,fsync,fdatasync,close", "-o", trace,
    process.execPath, FOBKIT, "export", "--factory", factory, "--batch", "1", "--out", out, "--psk-file", join(dir, "bank.psk"), ...extra], { encoding: "utf8" });
  const calls = readFileSync(trace, "utf8").split("\n").map((l) => l.replace(/^\d+\s+/, ""));
  rmSync(trace);
  return { status: r.status, stderr: r.stderr, calls };
}

/** Index of the first call at or after `from` that fsyncs a descriptor opened on `path` (an open that stays open until then). */
function fsyncOf(calls: string[], path: string, from: number): number {
  for (let i = from; i < calls.length; i++) {
    const m = /^openat\([^"]*"([^"]*)".*= (\d+)$/.exec(calls[i]);
    if (!m || m[1] !== path) continue;
    for (let k = i + 1; k < calls.length; k++) {
      if (new RegExp(`^f(data)?sync\\(${m[2]}[ )]`).test(calls[k])) return k;
      if (new RegExp(`^close\\(${m[2]}[ )]`).test(calls[k])) break;
    }
  }
  return -1;
}

describe("fobkit export: the file", () => {
  for (const force of [false, true]) {
    it(`${force ? "--force over an existing file" : "a new file"}: never seen empty or partial, owner-only, and its directory fsynced once it is there`, () => {
      const out = join(dir, force ? "again.pskcxml" : "batch1.pskcxml");
      if (force) writeFileSync(out, "an older export\n");
      const r = tracedExport(out, force ? ["--force"] : []);
      expect(r.status, r.stderr).toBe(0);
      // The destination is never created by an open (that would show it empty, then partial): only linked or renamed into place.
      expect(r.calls.filter((l) => l.startsWith("openat(") && l.includes(`"${out}"`) && /O_CREAT/.test(l))).toEqual([]);
      const placed = r.calls.findIndex((l) => /^(link|linkat|rename|renameat|renameat2)\(/.test(l) && l.includes(`"${out}"`) && / = 0$/.test(l));
      expect(placed, "the file is linked or renamed into place").toBeGreaterThan(0);
      const tmp = /"([^"]+\.tmp)"/.exec(r.calls[placed])![1];
      const tmpSync = fsyncOf(r.calls, tmp, 0);
      expect(tmpSync, "the temp file is fsynced before it takes the name").toBeGreaterThan(0);
      expect(tmpSync).toBeLessThan(placed);
      expect(fsyncOf(r.calls, dir, placed), "the directory is fsynced after the file took its name").toBeGreaterThan(placed);
      // What arrived is the whole export, owner-only, and no temp file is left.
      expect(statSync(out).mode & 0o777).toBe(0o600);
      const tokens = readPskc(readFileSync(out), { kind: "psk", key: psk });
      expect(new Map(tokens.map((t) => [t.serial, t.secret.toString("hex")]))).toEqual(new Map([...seeds].map(([s, k]) => [s, k.toString("hex")])));
      expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    });
  }

  it("refuses an existing file without --force, leaving it and no temp file", () => {
    const out = join(dir, "kept.pskcxml");
    writeFileSync(out, "kept\n");
    const r = tracedExport(out);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/kept\.pskcxml exists; use --force to overwrite it/);
    expect(readFileSync(out, "utf8")).toBe("kept\n");
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});
