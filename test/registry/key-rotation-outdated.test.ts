/**
 * Rotating from an outdated copy of the key file. Servers with their own copies share only the database. Server A
 * rotates (its file gains k2; the database records k2 active, k1 retired) and B's copy is never replaced. Later,
 * with no overlap (so the rotation lease cannot help), B runs `bank rotate-key` on its copy, which still has only
 * k1. Before the fix B added its own k3, recorded it active next to k2, and sealed under it: A's file then opened
 * only A's rows and B's file only B's. Now every `rotate-key` (also --stage, --prune, --no-new-key) first asks the
 * database which keys it records as active and which keys rows are sealed under, and refuses, changing nothing,
 * when the file lacks one of them, naming the key and telling the operator to copy the current key file.
 */
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing, parseKeyFile } from "../../host/registry/key-ring.js";
import { Registry } from "../../host/registry/registry.js";
import { lastJson } from "../server/spawn.js";
import { runCliCaptured } from "../server/support.js";
import { ENGINES, freshDb } from "./support.js";

const ACTOR = { name: "staff:test", source: "cli" };
const token = (serial: string, secret: Buffer) => ({ serial, manufacturer: "fobkit", algorithm: "SHA1" as const, digits: 8, period: 60, t0: 0, secret });
const json = (r: { stdout: string }) => lastJson(r.stdout);

describe.each(ENGINES)("rotating from an outdated copy of the key file, on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  let dir: string;
  let fileA: string;
  let fileB: string;
  let envA: NodeJS.ProcessEnv;
  let envB: NodeJS.ProcessEnv;
  const seeds = new Map<string, Buffer>();

  beforeEach(async () => {
    let url: string;
    ({ db, url, drop } = await freshDb(engine));
    dir = mkdtempSync(join(tmpdir(), "fobkit-outdated-"));
    fileA = join(dir, "a.kek");
    fileB = join(dir, "b.kek");
    KeyRing.create(fileA);
    copyFileSync(fileA, fileB);
    envA = { FOBKIT_BANK_DB: url, FOBKIT_BANK_KEK_FILE: fileA, USER: "alice", PATH: process.env.PATH };
    envB = { ...envA, FOBKIT_BANK_KEK_FILE: fileB };
    seeds.clear();
    await register(fileA, ["OD1", "OD2", "OD3"]);
  });
  afterEach(async () => {
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A serving process on `file`: it reads the seed-index key once (registry README) and keeps it. */
  const server = (file: string) => new Registry(db, { keys: KeyRing.fromFile(file, { recheckMs: 0 }) });

  /** Registers tokens through `reg` (each sealed under the key its process seals with). */
  async function register(reg: Registry | string, serials: string[]): Promise<void> {
    const tokens = serials.map((s) => token(s, randomBytes(20)));
    for (const t of tokens) seeds.set(t.serial, t.secret);
    await (typeof reg === "string" ? server(reg) : reg).register(tokens, ACTOR, "test");
  }

  /** The rows (and registry secrets) the key file at `path` cannot open. */
  async function unopenable(path: string): Promise<string[]> {
    const ring = KeyRing.fromFile(path);
    const out: string[] = [];
    for (const r of await db.all<{ serial: string; kek_id: string; seed: Uint8Array }>("SELECT serial, kek_id, seed FROM tokens ORDER BY serial")) {
      try {
        if (!ring.open(r.serial, { kekId: r.kek_id, blob: Buffer.from(r.seed) }).equals(seeds.get(r.serial)!)) out.push(`${r.serial} under ${r.kek_id}`);
      } catch {
        out.push(`${r.serial} under ${r.kek_id}`);
      }
    }
    for (const s of await db.all<{ name: string; kek_id: string; sealed: Uint8Array }>("SELECT name, kek_id, sealed FROM registry_secrets")) {
      try {
        ring.openSecret(s.name, { kekId: s.kek_id, blob: Buffer.from(s.sealed) });
      } catch {
        out.push(`secret ${s.name} under ${s.kek_id}`);
      }
    }
    return out;
  }

  const states = async () => Object.fromEntries((await db.all<{ kek_id: string; state: string }>("SELECT kek_id, state FROM kek_states ORDER BY kek_id")).map((r) => [r.kek_id, r.state]));

  async function rotateOnA(): Promise<string> {
    const r = await runCliCaptured(["bank", "rotate-key", "--json"], envA);
    expect(r.code, r.stderr).toBe(0);
    return json(r).kekId;
  }

  function refusedAsOutdated(r: { code: number; stdout: string; stderr: string }, missing: string): void {
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`key ${missing}`);
    expect(r.stderr).toContain(fileB);
    expect(r.stderr).toMatch(/copy the current key file/i);
    expect(json(r)).toMatchObject({ ok: false, error: { code: "key_file_outdated" } });
  }

  it("rotate-key from a copy that lacks the key another server made active is refused, and nothing changes", async () => {
    // Server B has been serving all along (it read the seed-index key before A's rotation).
    const serverB = server(fileB);
    await register(serverB, ["PB0"]);
    const k2 = await rotateOnA();
    const fileBefore = readFileSync(fileB, "utf8");
    const statesBefore = await states();

    const b = await runCliCaptured(["bank", "rotate-key", "--json"], envB);
    // Whatever B's run did, both servers go on serving: a new row from each.
    await register(fileA, ["NA1"]);
    await register(serverB, ["NB1"]).catch(() => undefined); // with B's old key retired, refused until its copy arrives

    expect({ A: await unopenable(fileA), B: await unopenable(fileB) }, `rows each server's key file cannot open, after B's run: ${b.stderr}`).toEqual({
      A: [],
      B: ["NA1", "OD1", "OD2", "OD3", "PB0"].map((s) => `${s} under ${k2}`).concat([`secret seed_index under ${k2}`]),
    });
    refusedAsOutdated(b, k2);
    expect(readFileSync(fileB, "utf8"), "B's copy is unchanged").toBe(fileBefore);
    expect(await states(), "the database's key states are unchanged").toEqual(statesBefore);

    // Once the current file is copied, B rotates.
    copyFileSync(fileA, fileB);
    const again = await runCliCaptured(["bank", "rotate-key", "--json"], envB);
    expect(again.code, again.stderr).toBe(0);
    expect(await unopenable(fileB)).toEqual([]);
  });

  it("--stage, --prune and --no-new-key from an outdated copy are refused the same way", async () => {
    const k2 = await rotateOnA();
    const fileBefore = readFileSync(fileB, "utf8");
    const statesBefore = await states();
    for (const args of [["--stage"], ["--prune"], ["--no-new-key"], ["--no-new-key", "--prune"]]) {
      const r = await runCliCaptured(["bank", "rotate-key", ...args, "--json"], envB);
      refusedAsOutdated(r, k2);
      expect(readFileSync(fileB, "utf8"), `${args.join(" ")}: B's copy is unchanged`).toBe(fileBefore);
      expect(await states(), `${args.join(" ")}: the database is unchanged`).toEqual(statesBefore);
    }
    expect(await unopenable(fileA)).toEqual([]);
  });

  it("a copy that holds the active key only staged (the documented flow) still rotates", async () => {
    const staged = await runCliCaptured(["bank", "rotate-key", "--stage", "--json"], envA);
    expect(staged.code, staged.stderr).toBe(0);
    copyFileSync(fileA, fileB);
    const k2 = await rotateOnA();
    expect(k2).toBe(json(staged).staged);
    // B's copy still says staged; B rotates (or prunes) before the rotated file arrives: it makes k2 its newest.
    const b = await runCliCaptured(["bank", "rotate-key", "--prune", "--json"], envB);
    expect(b.code, b.stderr).toBe(0);
    expect(json(b).kekId).toBe(k2);
    expect(parseKeyFile(readFileSync(fileB, "utf8"), fileB).map((k) => k.id)).toEqual([k2]);
    expect(await unopenable(fileA)).toEqual([]);
    expect(await unopenable(fileB)).toEqual([]);
  });

  it("a copy that lacks a retired key rows are still sealed under is refused before anything changes", async () => {
    // Rows under k1, the database never told of k1 (SQLite records a key only when a rotation retires it), and a
    // file that has only some other key: the re-sealing would stop at the first row, after the file and the
    // database had changed.
    const other = join(dir, "other.kek");
    KeyRing.create(other);
    const k1 = KeyRing.fromFile(fileA).currentId;
    const r = await runCliCaptured(["bank", "rotate-key", "--json"], { ...envA, FOBKIT_BANK_KEK_FILE: other });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`key ${k1}`);
    expect(json(r)).toMatchObject({ ok: false, error: { code: "key_file_outdated" } });
    expect(parseKeyFile(readFileSync(other, "utf8"), other)).toHaveLength(1);
    expect(await unopenable(fileA)).toEqual([]);
  });
});
