/**
 * `fobkit bank rotate-key --prune` while server processes register a token
 * every few milliseconds (issue 11, item 1). Before the fix a server that
 * had not yet re-read the key file kept sealing under the old key after the
 * last re-encryption pass, and the prune dropped that key: those rows could
 * never be opened again. Now no row may keep a dropped key id, and every
 * token registered during the rotation activates afterwards.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../host/registry/api-keys.js";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { Registry } from "../../host/registry/registry.js";
import { hotp, stepAt } from "../../host/registry/totp.js";
import { ENGINES, freshDb, oathtool } from "../registry/support.js";
import { startServeProcess } from "./spawn.js";
import { call, runCliCaptured } from "./support.js";

/**
 * `fobkit bank rotate-key` run in this process through runCli (the entry
 * bin/fobkit.js uses), so the rotation starts at once rather than after a
 * process start-up, and ends before the servers' once-a-second look at the
 * key file: the window in which the issue lost seeds.
 */
const rotate = (env: NodeJS.ProcessEnv, ...args: string[]) => runCliCaptured(["bank", "rotate-key", ...args], env);

const ACTOR = { name: "staff:test", source: "cli" };

describe.each(ENGINES)("rotate-key --prune while servers register on $name", (engine) => {
  let db: Database;
  let url: string;
  let drop: () => Promise<void>;
  let dir: string;
  let kek: string;
  let servers: Awaited<ReturnType<typeof startServeProcess>>[] = [];
  let factory: string;

  beforeAll(async () => {
    ({ db, url, drop } = await freshDb(engine));
    // Commits without waiting for the WAL flush: a loaded machine's fsync would otherwise stretch the
    // rotation past the servers' one-second look at the key file and hide the race on PostgreSQL.
    if (engine.name === "postgres") url += "&synchronous_commit=off";
    dir = mkdtempSync(join(tmpdir(), "fobkit-prune-"));
    kek = join(dir, "bank.kek");
    const registry = new Registry(db, { keys: KeyRing.create(kek) });
    // A little stock, so the re-sealing is over well within the servers' one-second look at the key file.
    await registry.register(
      Array.from({ length: 20 }, (_, i) => ({ serial: `P${i}`, manufacturer: "fobkit", algorithm: "SHA1" as const, digits: 8, period: 60, t0: 0, secret: randomBytes(20) })),
      ACTOR,
      "stock",
    );
    factory = (await createApiKey(db, "factory")).key;
    servers = await Promise.all([0, 1].map(() => startServeProcess(["--db", url, "--kek-file", kek])));
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("loses no seed: no row keeps a dropped key, and every token registered meanwhile activates", async () => {
    const oldId = KeyRing.fromFile(kek).currentId;
    const env = { FOBKIT_BANK_DB: url, FOBKIT_BANK_KEK_FILE: kek, USER: "test", PATH: process.env.PATH };
    const seeds = new Map<string, Buffer>();
    const failures: unknown[] = [];
    let stop = false;
    let n = 0;
    // Each server registers a token every ~5 ms, from before the rotation until 1.5 s after it.
    const traffic = servers.map(async (s, k) => {
      while (!stop) {
        const serial = `N${k}-${n++}`;
        const seed = randomBytes(20);
        const r = await call(s.url, "POST", "/v1/tokens", { key: factory, body: { serial, algorithm: "SHA1", digits: 8, period: 60, t0: 0, seed: seed.toString("hex") } });
        if (r.status === 201) seeds.set(serial, seed);
        else failures.push(r);
        await new Promise((res) => setTimeout(res, 5));
      }
    });
    // Three rotations, each a chance to drop a key a server still seals under.
    const rotations: { code: number; stdout: string; stderr: string }[] = [];
    const dropped: string[] = [];
    for (let k = 0; k < 3; k++) {
      await new Promise((res) => setTimeout(res, 300));
      const before = KeyRing.fromFile(kek).currentId;
      const rot = await rotate(env, "--prune", "--json");
      rotations.push(rot);
      if (rot.code === 0) expect(JSON.parse(rot.stdout).dropped).toEqual([before]);
      dropped.push(before);
    }
    await new Promise((res) => setTimeout(res, 1500));
    stop = true;
    await Promise.all(traffic);
    expect(rotations.map((r) => [r.code, r.stderr])).toEqual(Array(3).fill([0, ""]));
    expect(dropped[0]).toBe(oldId);
    for (const id of dropped) expect(readFileSync(kek, "utf8")).not.toContain(id);
    expect(failures).toEqual([]);
    expect(seeds.size).toBeGreaterThan(10);

    // No row under a key the file no longer holds.
    const held = new Set(KeyRing.fromFile(kek).ids);
    const rows = await db.all<{ serial: string; kek_id: string }>("SELECT serial, kek_id FROM tokens");
    expect(rows.filter((r) => !held.has(r.kek_id)).map((r) => r.serial)).toEqual([]);

    // Every keyfob registered during the rotation activates with its code
    // (codes from our HOTP, which the registry suites check against oathtool; one from oathtool here too).
    const registry = new Registry(db, { keys: KeyRing.fromFile(kek) });
    const refused: string[] = [];
    let i = 0;
    for (const [serial, seed] of seeds) {
      await registry.issue(serial, `pc-${i}`, ACTOR);
      const now = Date.now();
      const code = i++ === 0 ? oathtool(seed, now / 1000) : hotp("SHA1", seed, stepAt(now, 0, 60), 8);
      try {
        await registry.activate({ serial }, code, ACTOR);
      } catch (e) {
        refused.push(`${serial}: ${(e as Error).message}`);
      }
    }
    expect(refused).toEqual([]);
  });
});
