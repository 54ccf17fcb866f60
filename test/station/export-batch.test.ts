/**
 * A batch is one PSKC file. Exporting it closes it: a keyfob provisioned
 * after the export goes into the next batch, never into the file's batch,
 * where a second export would carry the first file's seeds again (the
 * bank's import, all or nothing, then refuses that whole second file as
 * duplicates, and the new keyfobs never reach the bank). A batch with a
 * keyfob still being provisioned is not exported (that keyfob would be left
 * out of its batch's file). Exporting a closed batch again writes the same
 * tokens: a replacement for a lost file. Emulated keyfobs on real PTYs, the
 * bank's own import on a SQLite registry.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readPskc } from "../../host/pskc/index.js";
import { formatSerial } from "../../host/serial/serial-number.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { ENGINES } from "../registry/support.js";
import { attachKeyfob, type EmulatedKeyfob } from "./emulated-keyfob.js";
import { CliRun, fobkit } from "./cli-io.js";

let dir: string;
let factory: string;
let psk: string;
const fobs: EmulatedKeyfob[] = [];

async function provision(extra: string[] = []) {
  const fob = await attachKeyfob(join(dir, `tty${fobs.length}`));
  fobs.push(fob);
  const r = await fobkit(["provision", "--port", fob.path, "--factory", factory, "--line", "7", "--json", ...extra]);
  return { ...r, fob };
}

function exportBatch(batch: number, out: string, extra: string[] = []) {
  return fobkit(["export", "--factory", factory, "--batch", String(batch), "--out", join(dir, out), "--psk-file", psk, "--json", ...extra]);
}

function serialsIn(file: string): string[] {
  return readPskc(readFileSync(join(dir, file)), { kind: "psk", key: Buffer.from(readFileSync(psk, "utf8").trim(), "hex") }).map((t) => t.serial).sort();
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-expbatch-"));
  factory = join(dir, "line7.sqlite");
  psk = join(dir, "bank.psk");
  writeFileSync(psk, randomBytes(16).toString("hex") + "\n");
});

afterAll(async () => {
  while (fobs.length) await fobs.pop()!.unplug();
  rmSync(dir, { recursive: true, force: true });
});

describe("export closes its batch", () => {
  it("a keyfob provisioned after the export goes into the next batch; the two files share no token and the bank imports both", async () => {
    for (let i = 0; i < 2; i++) expect((await provision()).code).toBe(0);
    const first = await exportBatch(1, "b1.pskcxml");
    expect(first.code, first.stderr).toBe(0);
    expect(serialsIn("b1.pskcxml")).toEqual([formatSerial(7, 1, 1), formatSerial(7, 1, 2)]);

    // Into the exported batch by name: refused before the keyfob is touched.
    const named = await provision(["--batch", "1"]);
    expect(named.code).toBe(1);
    expect(JSON.parse(named.stdout)).toMatchObject({ status: "failed", serial: null, refused: true,
      reason: expect.stringMatching(/^batch 1 was exported to PSKC at \S+; a batch is one file, so provision into a new batch: --batch 2$/) });
    expect(JSON.parse((await fobkit(["info", "--port", named.fob.path, "--json"])).stdout)).toMatchObject({ state: "blank", serial: "" });

    // Without --batch: the next batch, with the exported batch's parameters.
    const next = await provision(["--digits", "8"]);
    expect(next.code, next.stderr).toBe(0);
    expect(JSON.parse(next.stdout)).toMatchObject({ status: "good", batch: 2, serial: formatSerial(7, 2, 1) });
    const rec = FactoryRecord.open(factory);
    expect(rec.batch(2)).toMatchObject({ algorithm: "SHA1", digits: 8, period: 60, exportedAt: null });
    expect(rec.batch(1)!.exportedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    rec.close();

    // Batch 1 again: the same two tokens (a replacement file); batch 2: its own.
    expect((await exportBatch(1, "b1-again.pskcxml")).code).toBe(0);
    expect(serialsIn("b1-again.pskcxml")).toEqual(serialsIn("b1.pskcxml"));
    expect((await exportBatch(2, "b2.pskcxml")).code).toBe(0);
    expect(serialsIn("b2.pskcxml")).toEqual([formatSerial(7, 2, 1)]);

    // The bank takes both files, each whole.
    const bank = await ENGINES.find((e) => e.name === "sqlite")!.fresh();
    try {
      expect((await fobkit(["bank", "init-kek", "--kek-file", join(dir, "kek")])).code).toBe(0);
      for (const f of ["b1.pskcxml", "b2.pskcxml"]) {
        const imp = await fobkit(["bank", "import", join(dir, f), "--db", bank.url, "--kek-file", join(dir, "kek"), "--psk-file", psk, "--json"]);
        expect(imp.code, imp.stderr).toBe(0);
      }
    } finally {
      await bank.drop();
    }
  }, 120_000);

  it("a batch with a keyfob still being provisioned is not exported, and stays open", async () => {
    const rec = FactoryRecord.open(factory);
    rec.resolveBatch(3, {});
    // A station process (this one, alive) holds a keyfob of batch 3 between allocation and lock.
    const held = rec.allocate({ batch: 3, seed: randomBytes(20) }).serial;
    const done = rec.allocate({ batch: 3, seed: randomBytes(20) }).serial;
    rec.setStage(done, "lock_sent");
    rec.markGood(done);
    rec.close();
    const r = await exportBatch(3, "b3.pskcxml");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/batch 3 has 1 keyfob still being provisioned \(pending\); export it once the station is done with it/);
    const after = FactoryRecord.open(factory);
    expect(after.batch(3)!.exportedAt).toBeNull();
    after.markFailed(held, "test: the keyfob in hand failed");
    after.close();
    expect((await exportBatch(3, "b3.pskcxml")).code).toBe(0);
    expect(serialsIn("b3.pskcxml")).toEqual([done]);
  });

  it("a record made before batches closed on export: read as it is (all open), and closed by its first export", async () => {
    const file = join(dir, "older.sqlite");
    const rec = FactoryRecord.open(file, { create: true, line: 8 });
    rec.resolveBatch(1, {});
    const serial = rec.allocate({ batch: 1, seed: randomBytes(20) }).serial;
    rec.setStage(serial, "lock_sent");
    rec.markGood(serial);
    rec.close();
    // What the previous fobkit made: no exported_at column.
    const raw = new Database(file);
    raw.exec("ALTER TABLE batches DROP COLUMN exported_at");
    raw.close();
    const shown = await fobkit(["record", "--factory", file, "--json"]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout).batches).toEqual([expect.objectContaining({ id: 1, exportedAt: null, counts: { good: 1, failed: 0, pending: 0 } })]);
    const r = await fobkit(["export", "--factory", file, "--batch", "1", "--out", join(dir, "older.pskcxml"), "--psk-file", psk, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const text = await fobkit(["record", "--factory", file]);
    expect(text.stdout.split("\n")[1]).toMatch(/^batch 1\t.*\tsince \S+\texported \S+$/);
    const after = FactoryRecord.open(file);
    expect(() => after.allocate({ batch: 1, seed: randomBytes(20) })).toThrow(/batch 1 was exported to PSKC/);
    after.close();
  });
  it("a station whose batch is exported mid-shift stops at its next keyfob, which it leaves untouched", async () => {
    const file = join(dir, "shift.sqlite");
    const first = await attachKeyfob(join(dir, "tty-shift-1"));
    fobs.push(first);
    const run = new CliRun();
    let second: EmulatedKeyfob | undefined;
    const swapped: Promise<void>[] = [];
    run.onLine((line) => {
      if (second) return;
      expect(JSON.parse(line)).toMatchObject({ status: "good", batch: 1 });
      // The office exports batch 1 while the station still runs on it; the operator puts in the next keyfob.
      swapped.push((async () => {
        const exp = await fobkit(["export", "--factory", file, "--batch", "1", "--out", join(dir, "shift1.pskcxml"), "--psk-file", psk]);
        expect(exp.code, exp.stderr).toBe(0);
        await first.unplug();
        second = await attachKeyfob(join(dir, "tty-shift-1"));
        fobs.push(second);
      })());
    });
    const code = await run.run(["station", "--factory", file, "--line", "7", "--ports", join(dir, "tty-shift-1"), "--count", "5", "--poll-ms", "20", "--json"]);
    await Promise.all(swapped);
    expect(code, run.out.stderr).toBe(1);
    const results = run.out.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(results).toHaveLength(2);
    expect(results[1]).toMatchObject({ status: "failed", serial: null, refused: true, reason: expect.stringMatching(/^batch 1 was exported to PSKC at \S+; a batch is one file, so provision into a new batch: --batch 2$/) });
    expect(run.out.stderr).toMatch(/fobkit: batch 1 was exported to PSKC/);
    expect(JSON.parse((await fobkit(["info", "--port", second!.path, "--json"])).stdout)).toMatchObject({ state: "blank", serial: "" });
  }, 120_000);
});
