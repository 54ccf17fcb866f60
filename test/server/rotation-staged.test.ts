/**
 * Key rotation with each server on its own copy of the key file: the next key
 * is staged first (`bank rotate-key --stage`: it opens, never seals), the file
 * is copied to every server, and only then does `bank rotate-key` make it the
 * newest. A server whose copy still has it staged opens every re-sealed row,
 * and seals under it once the database refuses its old key as retired. Without
 * staging, a server whose copy had not arrived could open none of the
 * re-sealed rows (README, "Beyond one machine").
 */
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing, parseKeyFile } from "../../host/registry/key-ring.js";
import { Registry } from "../../host/registry/registry.js";
import { ENGINES, freshDb, oathtool } from "../registry/support.js";
import { runCliCaptured } from "./support.js";

const ACTOR = { name: "staff:test", source: "cli" };
const CHANNEL = { name: "channel:test", source: "10.0.0.1" };
const T = 1_800_000_000_000;
const token = (serial: string, secret: Buffer) => ({ serial, manufacturer: "fobkit", algorithm: "SHA1" as const, digits: 8, period: 60, t0: 0, secret });
const kekOf = async (db: Database, serial: string) => (await db.get<{ kek_id: string }>("SELECT kek_id FROM tokens WHERE serial = ?", [serial]))!.kek_id;

describe.each(ENGINES)("a staged key distributed before the rotation, on $name", (engine) => {
  let db: Database;
  let url: string;
  let drop: () => Promise<void>;
  let dir: string;
  let fileA: string;
  let fileB: string;
  let env: NodeJS.ProcessEnv;
  let now = T;

  beforeEach(async () => {
    ({ db, url, drop } = await freshDb(engine));
    dir = mkdtempSync(join(tmpdir(), "fobkit-stage-"));
    fileA = join(dir, "a.kek");
    fileB = join(dir, "b.kek");
    KeyRing.create(fileA);
    env = { FOBKIT_BANK_DB: url, FOBKIT_BANK_KEK_FILE: fileA, USER: "alice", PATH: process.env.PATH };
    now = T;
  });
  afterEach(async () => {
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("server B, whose copy holds the key only staged, opens every re-sealed row and seals new ones under it", async () => {
    const a = new Registry(db, { keys: KeyRing.fromFile(fileA, { recheckMs: 0 }), now: () => now });
    const seed = randomBytes(20);
    await a.register([token("ST1", seed)], ACTOR, "test");
    await a.issue("ST1", "cust-st1", ACTOR);
    await a.activate({ serial: "ST1" }, oathtool(seed, now / 1000), ACTOR);
    const oldKey = a.keys.currentId;

    const staged = await runCliCaptured(["bank", "rotate-key", "--stage", "--json"], env);
    expect(staged.code, staged.stderr).toBe(0);
    const stagedId = JSON.parse(staged.stdout).staged as string;
    expect(stagedId).toMatch(/^k\d{8}-[0-9a-f]{6}$/);
    // Staged: in the file, marked, and not sealing; nothing changed in the database.
    expect(parseKeyFile(readFileSync(fileA, "utf8"), fileA).map((k) => [k.id, !!k.staged])).toEqual([[stagedId, true], [oldKey, false]]);
    expect(a.keys.currentId).toBe(oldKey);
    expect(await db.get("SELECT kek_id FROM kek_states WHERE kek_id = ?", [stagedId])).toBeUndefined();

    // The operator copies the file to server B; B keeps that copy through the rotation.
    copyFileSync(fileA, fileB);
    const b = new Registry(db, { keys: KeyRing.fromFile(fileB, { recheckMs: 0 }), now: () => now });
    await b.register([token("ST2", randomBytes(20))], ACTOR, "test");
    expect(await kekOf(db, "ST2")).toBe(oldKey);

    const rot = await runCliCaptured(["bank", "rotate-key", "--json"], env);
    expect(rot.code, rot.stderr).toBe(0);
    expect(JSON.parse(rot.stdout)).toMatchObject({ kekId: stagedId, wasStaged: true, retired: [oldKey] });
    expect(parseKeyFile(readFileSync(fileA, "utf8"), fileA).map((k) => [k.id, !!k.staged])).toEqual([[stagedId, false], [oldKey, false]]);
    expect(await kekOf(db, "ST1")).toBe(stagedId);

    // B's copy still says "staged": it opens the re-sealed row (a verification) ...
    now += 60_000;
    await expect(b.verify("cust-st1", oathtool(seed, now / 1000), CHANNEL)).resolves.toMatchObject({ serial: "ST1", state: "active", step: Math.floor(now / 60_000) });
    // ... and its next seal, refused under the retired key, goes under the staged one.
    await b.register([token("ST3", randomBytes(20))], ACTOR, "test");
    expect(await kekOf(db, "ST3")).toBe(stagedId);
    expect(b.keys.currentId).toBe(stagedId);
  });

  it("never seals under a staged key that the rotation did not make current (a rotation from a copy without it)", async () => {
    const fileC = join(dir, "c.kek");
    copyFileSync(fileA, fileC); // a copy made before the stage: it will never hold the staged key
    const stagedId = JSON.parse((await runCliCaptured(["bank", "rotate-key", "--stage", "--json"], env)).stdout).staged as string;
    copyFileSync(fileA, fileB);
    const b = new Registry(db, { keys: KeyRing.fromFile(fileB, { recheckMs: 0 }), now: () => now });
    // B has registered before (it holds the registry's seed-index key in memory from then on).
    await b.register([token("ST8", randomBytes(20))], ACTOR, "test");
    // Someone rotates from the old copy: a new key that neither A nor B holds; the staged key stays unknown to the database.
    const rot = await runCliCaptured(["bank", "rotate-key", "--json"], { ...env, FOBKIT_BANK_KEK_FILE: fileC });
    expect(rot.code, rot.stderr).toBe(0);
    expect(JSON.parse(rot.stdout).kekId).not.toBe(stagedId);
    // B must not seal under its staged key, which the rotating copy cannot open: its old key is refused as retired, the
    // database's active key is not the staged one, so B is told to get the rotated file.
    await expect(b.register([token("ST9", randomBytes(20))], ACTOR, "test")).rejects.toMatchObject({ code: "key_retired" });
    expect(await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM tokens WHERE kek_id = ?", [stagedId])).toMatchObject({ n: 0 });
    expect(await db.get("SELECT serial FROM tokens WHERE serial = 'ST9'")).toBeUndefined();
  });

  it("keeps a staged key out of retirement and pruning, and refuses a second stage or --stage with --prune", async () => {
    const stagedId = JSON.parse((await runCliCaptured(["bank", "rotate-key", "--stage", "--json"], env)).stdout).staged as string;
    const again = await runCliCaptured(["bank", "rotate-key", "--stage"], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`key ${stagedId} is staged already`);
    const mixed = await runCliCaptured(["bank", "rotate-key", "--stage", "--prune"], env);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toContain("--stage only adds a key");
    // Finishing a rotation under the current key with pruning leaves the staged key usable ...
    const fin = await runCliCaptured(["bank", "rotate-key", "--no-new-key", "--prune", "--json"], env);
    expect(fin.code, fin.stderr).toBe(0);
    expect(JSON.parse(fin.stdout).retired).not.toContain(stagedId);
    expect(parseKeyFile(readFileSync(fileA, "utf8"), fileA).find((k) => k.id === stagedId)?.staged).toBe(true);
    // ... so the next rotation still makes it current.
    const rot = await runCliCaptured(["bank", "rotate-key", "--json"], env);
    expect(rot.code, rot.stderr).toBe(0);
    expect(JSON.parse(rot.stdout)).toMatchObject({ kekId: stagedId, wasStaged: true });
  });

  it("refuses a key file with a word other than staged, two staged keys, or only a staged key, without quoting key material", () => {
    const hex = (b: number) => Buffer.alloc(32, b).toString("hex");
    const bad = [
      [`k1 ${hex(1)} later\n`, 'only the word "staged" may follow'],
      [`k1 ${hex(1)} staged\nk2 ${hex(2)} staged\nk3 ${hex(3)}\n`, "a second staged key"],
      [`k1 ${hex(1)} staged\n`, "only a staged key"],
    ] as const;
    for (const [text, message] of bad) {
      writeFileSync(fileB, text);
      expect(() => KeyRing.fromFile(fileB)).toThrow(message);
      try {
        KeyRing.fromFile(fileB);
      } catch (e) {
        expect((e as Error).message).not.toMatch(/[0-9a-f]{16}/);
      }
    }
  });
});
