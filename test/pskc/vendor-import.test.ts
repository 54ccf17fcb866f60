/**
 * `fobkit bank import` of files as vendors and python-pskc's csv2pskc write
 * them (issue 11, items 8 and 9), in process through runCli against SQLite
 * and PostgreSQL: a Feitian c100/c200-style plaintext file mixing HOTP and
 * TOTP keyfobs with Policy StartDate/ExpiryDate (our own fixture), and
 * csv2pskc files without a manufacturer or without a serial.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { randomBytes } from "node:crypto";
import { basename, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openMigrated } from "../../host/registry/open-database.js";
import { STAGE_ABOVE } from "../../host/registry/registry.js";
import { ENGINES, oathtool } from "../registry/support.js";
import { runCliCaptured } from "../server/support.js";
import { FIXTURES } from "./helpers.js";

const FEITIAN = join(FIXTURES, "vendor/feitian-c100-c200-style.pskcxml");
const FEITIAN_XML = readFileSync(FEITIAN, "utf8");
/** The fixture's seeds, by serial (the fixture is plaintext: that is the point). */
const SEEDS = new Map(
  [...FEITIAN_XML.matchAll(/<pskc:SerialNo>(\d+)<\/pskc:SerialNo>[\s\S]*?<pskc:PlainValue>([^<]+)<\/pskc:PlainValue>/g)].map((m) => [m[1], Buffer.from(m[2], "base64")]),
);
const START = Date.parse("2025-06-01T00:00:00Z");
const EXPIRY = Date.parse("2030-05-31T23:59:59Z");

interface Out {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

describe.each(ENGINES)("bank import of vendor files on $name", (engine) => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let drop: () => Promise<void>;

  /** Runs `fobkit bank ...` with the bank's clock at `atMs` (FOBKIT_CLOCK_OFFSET), or now. */
  async function bank(args: string[], atMs?: number): Promise<Out> {
    const runEnv = atMs === undefined ? env : { ...env, FOBKIT_CLOCK_OFFSET: String(Math.round((atMs - Date.now()) / 1000)) };
    const { code, stdout: o, stderr: e } = await runCliCaptured(["bank", ...args], runEnv);
    let json: unknown;
    if (args.includes("--json")) json = JSON.parse(o.trim().split("\n").at(-1)!);
    return { code, stdout: o, stderr: e, json };
  }
  const importOutcomes = async () => (await bank(["audit", "--json"])).json.records.filter((r: any) => r.action === "import");

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "fobkit-vendor-"));
    const f = await engine.fresh();
    drop = f.drop;
    env = { FOBKIT_BANK_DB: f.url, FOBKIT_BANK_KEK_FILE: join(dir, "bank.kek"), USER: "alice", PATH: process.env.PATH };
    expect((await bank(["init-kek"])).code).toBe(0);
  });
  afterEach(async () => {
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a FIFO or a device in place of the file, at once, naming it, and imports nothing", async () => {
    // A size check by stat passes both (size 0), and reading them has no end: a FIFO without a
    // writer blocked the import (and the event loop) for ever, /dev/zero read until memory ran out.
    const fifo = join(dir, "vendor.pskcxml");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    const zero = join(dir, "zero.pskcxml");
    symlinkSync("/dev/zero", zero);
    for (const [path, kind] of [[fifo, "FIFO"], [zero, "device"]]) {
      const r = await bank(["import", path, "--allow-plaintext", "--json"]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.json.error.message).toContain(path);
      expect(r.json.error.message).toContain(`not a regular file (a ${kind})`);
    }
    expect((await bank(["tokens", "--counts", "--json"])).json.counts.in_stock).toBe(0);
  });

  it("a Feitian-style plaintext file mixing HOTP and TOTP: refused until plaintext and skipping are asked for, then its TOTP keyfobs only", async () => {
    const plain = await bank(["import", FEITIAN]);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toMatch(/--allow-plaintext/);
    const mixed = await bank(["import", FEITIAN, "--allow-plaintext", "--json"]);
    expect(mixed).toMatchObject({ code: 2, json: { ok: false, error: { code: "pskc_unsupported_algorithm" } } });
    expect(mixed.stderr).toMatch(/pskc:hotp.*--skip-unsupported imports the file's other keys.*\(at KeyPackage\[1\] \(serial "2600418001"\)\)/);
    expect((await bank(["tokens", "--counts", "--json"])).json.counts.in_stock).toBe(0);

    const ok = await bank(["import", FEITIAN, "--allow-plaintext", "--skip-unsupported", "--json"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json).toMatchObject({ ok: true, imported: 3, serials: ["2600418002", "2600418004", "2600418005"], plaintext: true });
    expect(ok.json.skipped.map((s: any) => [s.package, s.serial, s.keyId, s.algorithm, s.code])).toEqual([
      [1, "2600418001", "2600418001", "urn:ietf:params:xml:ns:keyprov:pskc:hotp", "unsupported_algorithm"],
      [3, "2600418003", "2600418003", "urn:ietf:params:xml:ns:keyprov:pskc:hotp", "unsupported_algorithm"],
    ]);
    expect(ok.stderr).toMatch(/warning: feitian-c100-c200-style.pskcxml carried seeds in plain text/);
    for (const seed of SEEDS.values()) expect(ok.stdout + ok.stderr).not.toContain(seed.toString("base64"));
    const records = await importOutcomes();
    expect(records.map((r: any) => r.outcome)).toEqual(["pskc_unsupported_algorithm", "skipped", "skipped", "plaintext"]);
    expect(records[1].detail).toMatchObject({ file: "feitian-c100-c200-style.pskcxml", package: 1, serial: "2600418001", reason: "unsupported_algorithm" });
    expect(records[3].detail).toMatchObject({ tokens: 3 });

    // The text output names each package left out.
    const again = await bank(["import", FEITIAN, "--allow-plaintext", "--skip-unsupported"]);
    expect(again.code).toBe(1); // now duplicates
    await drop();
    const f = await engine.fresh();
    drop = f.drop;
    env = { ...env, FOBKIT_BANK_DB: f.url };
    const text = await bank(["import", FEITIAN, "--allow-plaintext", "--skip-unsupported"]);
    expect(text.stdout).toBe(
      "imported 3 token(s) into stock from feitian-c100-c200-style.pskcxml\n" +
        "skipped 2 KeyPackage(s) not usable here (--skip-unsupported):\n" +
        '  KeyPackage[1] (serial "2600418001", Key@Id "2600418001"): Key@Algorithm "urn:ietf:params:xml:ns:keyprov:pskc:hotp"; only urn:ietf:params:xml:ns:keyprov:pskc:totp is imported\n' +
        '  KeyPackage[3] (serial "2600418003", Key@Id "2600418003"): Key@Algorithm "urn:ietf:params:xml:ns:keyprov:pskc:hotp"; only urn:ietf:params:xml:ns:keyprov:pskc:totp is imported\n',
    );
  });

  it("the skipped and plaintext notes commit with the tokens they describe: stopped at the last note, nothing was imported (small and staged imports)", async () => {
    // The process stops where it writes the plaintext note (the import's last statement before its commit): a
    // trigger refuses that INSERT, and the transaction it is in rolls back as a crash would roll it back.
    const db = await openMigrated(env.FOBKIT_BANK_DB!);
    const stopAtNote = () =>
      db.script(
        db.dialect === "sqlite"
          ? "CREATE TRIGGER stop_at_note BEFORE INSERT ON audit WHEN NEW.action = 'import' AND NEW.outcome = 'plaintext' BEGIN SELECT RAISE(ABORT, 'stopped at the plaintext note'); END;"
          : "CREATE OR REPLACE FUNCTION stop_at_note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'stopped at the plaintext note'; END $$; " +
              "CREATE TRIGGER stop_at_note BEFORE INSERT ON audit FOR EACH ROW WHEN (NEW.action = 'import' AND NEW.outcome = 'plaintext') EXECUTE FUNCTION stop_at_note();",
      );
    const notesOf = async (file: string) =>
      (await db.all<{ outcome: string; detail: string }>("SELECT outcome, detail FROM audit WHERE action = 'import' AND outcome IN ('skipped', 'plaintext') ORDER BY id"))
        .map((r) => ({ outcome: r.outcome, detail: JSON.parse(r.detail) }))
        .filter((r) => r.detail.file === basename(file));
    try {
      // More than STAGE_ABOVE tokens: the staged import, whose notes belong in its short final transaction.
      const big = join(dir, "big.pskcxml");
      const packageAt = (from: number) => FEITIAN_XML.slice(from, FEITIAN_XML.indexOf("</pskc:KeyPackage>", from) + "</pskc:KeyPackage>".length);
      const first = FEITIAN_XML.indexOf("<pskc:KeyPackage>");
      const totp = packageAt(FEITIAN_XML.indexOf("<pskc:KeyPackage>", first + 1));
      const many = Array.from({ length: STAGE_ABOVE + 1 }, (_, i) =>
        totp.replaceAll("2600418002", String(2700000000 + i)).replace(/(<pskc:Secret>\s*<pskc:PlainValue>)[^<]+/, `$1${randomBytes(20).toString("base64")}`),
      );
      writeFileSync(big, FEITIAN_XML.slice(0, first) + packageAt(first) + many.join("\n") + "</pskc:KeyContainer>\n");
      for (const [file, tokens] of [[FEITIAN, 3], [big, STAGE_ABOVE + 1]] as const) {
        await stopAtNote();
        const stopped = await bank(["import", file, "--allow-plaintext", "--skip-unsupported", "--json"]);
        expect(stopped.code, stopped.stderr).not.toBe(0);
        const held = await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM tokens");
        expect(Number(held!.n), `${basename(file)}: tokens left without their notes`).toBe(0);
        expect(await notesOf(file)).toEqual([]);
        await db.script("DROP TRIGGER stop_at_note" + (db.dialect === "sqlite" ? "" : " ON audit"));
        const ok = await bank(["import", file, "--allow-plaintext", "--skip-unsupported", "--json"]);
        expect(ok, ok.stderr).toMatchObject({ code: 0, json: { imported: tokens, plaintext: true } });
        const notes = await notesOf(file);
        expect(notes.map((r: any) => r.outcome)).toEqual([...ok.json.skipped.map(() => "skipped"), "plaintext"]);
        expect(notes.at(-1).detail.tokens).toBe(tokens);
        await db.script("DELETE FROM tokens");
      }
    } finally {
      await db.close();
    }
  });

  it("honours the file's StartDate and ExpiryDate: activation before and verification after are refused, saying why", async () => {
    expect((await bank(["import", FEITIAN, "--allow-plaintext", "--skip-unsupported"])).code).toBe(0);
    expect((await bank(["issue", "--serial", "2600418002", "--customer", "c1"])).code).toBe(0);
    const seed = SEEDS.get("2600418002")!;
    const codeAt = (ms: number) => oathtool(seed, ms / 1000, { digits: 6, period: 60 });

    const early = START - 86_400_000;
    const before = await bank(["activate", "--serial", "2600418002", "--code", codeAt(early), "--json"], early);
    expect(before).toMatchObject({ code: 1, json: { ok: false, error: { code: "not_yet_valid" } } });
    expect(before.json.error.message).toBe("token 2600418002 may not be used before 2025-06-01T00:00:00.000Z (the StartDate its PSKC file gave)");

    const inside = START + 365 * 86_400_000 + 10_000;
    const act = await bank(["activate", "--serial", "2600418002", "--code", codeAt(inside), "--json"], inside);
    expect(act.code, act.stderr).toBe(0);

    const late = EXPIRY + 86_400_000;
    const after = await bank(["verify", "--customer", "c1", "--code", codeAt(late), "--json"], late);
    expect(after).toMatchObject({ code: 1, json: { ok: false, error: { code: "expired" } } });
    expect(after.json.error.message).toBe("token 2600418002 expired at 2030-05-31T23:59:59.000Z (the ExpiryDate its PSKC file gave); issue the customer another keyfob");
    expect(after.stderr).toMatch(/refused: expired/);
  });

  it("a csv2pskc file without manufacturer or serial: imported, the serial from Key@Id only when asked", async () => {
    const csv = join(dir, "keys.csv");
    writeFileSync(csv, "id,secret,algorithm,response_length,time_interval\nKF-9001,3132333435363738393031323334353637383930,urn:ietf:params:xml:ns:keyprov:pskc:totp,8,60\n");
    writeFileSync(join(dir, "psk"), "000102030405060708090a0b0c0d0e0f\n");
    const out = join(dir, "csv2pskc.pskcxml");
    const r = spawnSync("csv2pskc", ["-s", "000102030405060708090a0b0c0d0e0f", "-o", out, csv], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const xml = readFileSync(out, "utf8");
    expect(xml).not.toContain("Manufacturer");
    expect(xml).not.toContain("DeviceInfo");

    const noSerial = await bank(["import", out, "--psk-file", join(dir, "psk"), "--json"]);
    expect(noSerial).toMatchObject({ code: 2, json: { error: { code: "pskc_missing_serial" } } });
    expect(noSerial.stderr).toMatch(/Key@Id \("KF-9001" here\).*--serial-from key-id/);
    const ok = await bank(["import", out, "--psk-file", join(dir, "psk"), "--serial-from", "key-id", "--json"]);
    expect(ok).toMatchObject({ code: 0, json: { imported: 1, serials: ["KF-9001"], skipped: [], plaintext: false } });
    expect((await bank(["status", "--serial", "KF-9001", "--json"])).json.token).toMatchObject({ manufacturer: "", digits: 8, period: 60 });
    expect((await bank(["import", out, "--psk-file", join(dir, "psk"), "--serial-from", "label"])).code).toBe(2);
  });
});

describe("bank import --help", () => {
  it("teaches the vendor-file options", async () => {
    const { code, stdout: o } = await runCliCaptured(["bank", "import", "--help"], {});
    expect(code).toBe(0);
    for (const opt of ["--skip-unsupported", "--allow-plaintext", "--serial-from SRC", "StartDate and ExpiryDate"]) expect(o).toContain(opt);
  });
});
