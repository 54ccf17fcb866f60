/**
 * A staged import (more than STAGE_ABOVE tokens) whose process is killed
 * with SIGKILL mid-import, then run again at once: the re-run tells the
 * dead import from a live one by its process (host/process-owner.ts)
 * and clears it, instead of refusing the file's serials as taken until the
 * dead batch's heartbeat is STALE_IMPORT_MS old. A second import of a file
 * that a live process is importing is still refused, and the live import
 * finishes. Real processes (the built CLI), real SQLite and PostgreSQL.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { openMigrated } from "../../host/registry/open-database.js";
import { STAGE_ABOVE } from "../../host/registry/registry.js";
import { PSK, pskc, token, type PskcToken } from "../pskc/helpers.js";
import { ENGINES } from "../registry/support.js";
import { fobkitProcess } from "./spawn.js";
import { runCliCaptured } from "./support.js";

const TOKENS = 6000;

describe.each(ENGINES)("a killed import, run again, on $name", (engine) => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let db: Database;
  let drop: () => Promise<void>;

  /** A PSK-protected PSKC file of `tokens`. */
  function pskcFile(name: string, tokens: PskcToken[]): string {
    const file = join(dir, name);
    writeFileSync(file, pskc.writePskc(tokens, PSK));
    return file;
  }
  const fresh = (n: number) => Array.from({ length: n }, () => token());
  const bank = (args: string[]) => runCliCaptured(["bank", ...args], env);
  const staged = async () => Number((await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM tokens WHERE staged IS NOT NULL"))!.n);

  /** Starts `fobkit bank import FILE` in a child process and resolves once it has staged at least two chunks. */
  async function importing(file: string) {
    const child = fobkitProcess(["bank", "import", file, "--psk-file", join(dir, "psk"), "--json"], env);
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((res) => child.on("exit", (c) => res(c)));
    for (let i = 0; i < 3000 && (await staged()) < 500; i++) {
      if (child.exitCode !== null) throw new Error(`the import exited ${child.exitCode} before staging: ${stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(child.exitCode, "the import finished before it could be caught mid-way: make TOKENS larger").toBeNull();
    return { child, exited, stderr: () => stderr };
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "fobkit-import-crash-"));
    const f = await engine.fresh();
    env = { FOBKIT_BANK_DB: f.url, FOBKIT_BANK_KEK_FILE: join(dir, "bank.kek"), USER: "alice", PATH: process.env.PATH };
    writeFileSync(join(dir, "psk"), PSK.kind === "psk" ? PSK.key.toString("hex") + "\n" : "");
    expect((await bank(["init-kek"])).code).toBe(0);
    db = await openMigrated(f.url);
    drop = async () => {
      await db.close();
      await f.drop();
    };
  });
  afterEach(async () => {
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a re-run right after a kill -9 mid-import imports the file: the dead import's staged rows are cleared, not counted as taken", async () => {
    const file = pskcFile("big.pskcxml", fresh(TOKENS));
    const { child, exited } = await importing(file);
    child.kill("SIGKILL");
    await exited;
    expect(await staged()).toBeGreaterThan(0);
    expect(await db.get("SELECT state FROM import_batches")).toEqual({ state: "staging" });

    const again = await bank(["import", file, "--psk-file", join(dir, "psk"), "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout.trim().split("\n").at(-1)!)).toMatchObject({ imported: TOKENS });
    expect((await bank(["tokens", "--counts", "--json"])).stdout).toContain(`"in_stock":${TOKENS}`);
    expect(await staged()).toBe(0);
    const imports = await db.all<{ outcome: string; detail: string }>("SELECT outcome, detail FROM audit WHERE action = 'import' ORDER BY id");
    expect(imports.map((r) => [r.outcome, JSON.parse(r.detail).reason ?? null])).toEqual([
      ["aborted", "abandoned"],
      ["ok", null],
    ]);
  });

  it("a second import of a file a live process is importing is refused as being imported, and the live import finishes", async () => {
    const tokens = fresh(TOKENS);
    const file = pskcFile("big.pskcxml", tokens);
    // The second import: the file's first STAGE_ABOVE + 1 keys (staged too), quick to read while the first still runs.
    const part = pskcFile("part.pskcxml", tokens.slice(0, STAGE_ABOVE + 1));
    const first = await importing(file);
    const second = await bank(["import", part, "--psk-file", join(dir, "psk"), "--json"]);
    expect(first.child.exitCode, "the first import ended before the second was answered").toBeNull();
    expect(second.code, second.stderr).not.toBe(0);
    const refused = JSON.parse(second.stdout.trim().split("\n").at(-1)!);
    // Not "already registered": those rows are a live import's, not tokens the bank holds yet. Ten named, the rest counted.
    // (How many of the 501 the first has staged by then: at least its first 500, in chunks.)
    expect(refused).toMatchObject({ ok: false, error: { code: "being_imported" } });
    expect(refused.error.detail.count).toBeGreaterThanOrEqual(500);
    expect(refused.error.message).toContain(`and ${refused.error.detail.count - 10} more; nothing was imported`);
    expect(second.stderr).toMatch(/refused: being_imported: being imported by another import now/);
    expect(await first.exited, first.stderr()).toBe(0);
    expect((await bank(["tokens", "--counts", "--json"])).stdout).toContain(`"in_stock":${TOKENS}`);
    expect(await db.all("SELECT outcome FROM audit WHERE action = 'import'")).toEqual([{ outcome: "ok" }]);
  });
});
