/**
 * Key rotation without downtime: `fobkit bank rotate-key` runs while two
 * server processes verify codes and register tokens; nothing fails, every
 * seed ends under the new key, and after --prune drops the old key from the
 * file the servers still open every seed.
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
import { ENGINES, freshDb, nextStep, oathtool } from "../registry/support.js";
import { runFobkit, startServeProcess } from "./spawn.js";
import { call } from "./support.js";

const ACTOR = { name: "staff:test", source: "cli" };
/** A 5-s step: the servers run on the wall clock, and a test can wait for the next code. */
const PERIOD = 5;
const fobCode = (seed: Buffer) => oathtool(seed, Date.now() / 1000, { period: PERIOD });

describe.each(ENGINES)("key rotation while serving on $name", (engine) => {
  let db: Database;
  let url: string;
  let drop: () => Promise<void>;
  let dir: string;
  let kek: string;
  let registry: Registry;
  let servers: Awaited<ReturnType<typeof startServeProcess>>[] = [];
  let channel: string;
  let factory: string;
  const seeds: Buffer[] = [];
  let activatedAt = 0;

  beforeAll(async () => {
    ({ db, url, drop } = await freshDb(engine));
    dir = mkdtempSync(join(tmpdir(), "fobkit-rot-"));
    kek = join(dir, "bank.kek");
    registry = new Registry(db, { keys: KeyRing.create(kek) });
    for (let i = 0; i < 30; i++) {
      seeds.push(randomBytes(20));
      await registry.register([{ serial: `R${i}`, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: PERIOD, t0: 0, secret: seeds[i] }], ACTOR, "test");
      await registry.issue(`R${i}`, `rc-${i}`, ACTOR);
      await registry.activate({ serial: `R${i}` }, fobCode(seeds[i]), ACTOR);
    }
    activatedAt = Date.now();
    // Bulk stock, so the re-sealing takes long enough to overlap the traffic.
    await registry.register(
      Array.from({ length: 500 }, (_, i) => ({ serial: `S${i}`, manufacturer: "fobkit", algorithm: "SHA1" as const, digits: 8, period: 60, t0: 0, secret: randomBytes(20) })),
      ACTOR,
      "bulk",
    );
    channel = (await createApiKey(db, "channel")).key;
    factory = (await createApiKey(db, "factory")).key;
    servers = await Promise.all([0, 1].map(() => startServeProcess(["--db", url, "--kek-file", kek])));
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps verifying and registering during rotate-key, and after --prune", async () => {
    const oldId = KeyRing.fromFile(kek).currentId;
    const env = { FOBKIT_BANK_DB: url, FOBKIT_BANK_KEK_FILE: kek };
    await nextStep(activatedAt, PERIOD);
    let rotating = true;
    const rotation = runFobkit(["bank", "rotate-key", "--json"], env).finally(() => (rotating = false));
    const traffic = (async () => {
      const out: { status: number; body: any }[] = [];
      let during = 0;
      for (let i = 0; rotating || i < 20; i++) {
        const s = servers[i % 2].url;
        if (i < 20) out.push(await call(s, "POST", `/v1/customers/rc-${i}/verify`, { key: channel, body: { code: fobCode(seeds[i]) } }));
        out.push(await call(s, "POST", "/v1/tokens", { key: factory, body: { serial: `N${i}`, algorithm: "SHA1", digits: 8, period: 60, t0: 0, seed: randomBytes(20).toString("hex") } }));
        if (rotating) during++;
      }
      return { out, during };
    })();
    const [rot, { out: replies, during }] = await Promise.all([rotation, traffic]);
    expect(rot.code, rot.stderr).toBe(0);
    const newId = JSON.parse(rot.stdout).kekId;
    expect(newId).not.toBe(oldId);
    expect(replies.filter((r) => r.status !== 200 && r.status !== 201)).toEqual([]);
    expect(during).toBeGreaterThan(5);
    const rows = 530 + replies.filter((r) => r.status === 201).length;
    // Rows a server sealed under the old key before it saw the new file: a second pass catches them.
    await new Promise((r) => setTimeout(r, 1200));
    const fin = await runFobkit(["bank", "rotate-key", "--no-new-key", "--prune", "--json"], env);
    expect(fin.code, fin.stderr).toBe(0);
    expect(JSON.parse(fin.stdout)).toMatchObject({ kekId: newId, after: { [newId]: rows }, dropped: [oldId] });
    expect(readFileSync(kek, "utf8")).not.toContain(oldId);
    // The servers re-read the file: seeds sealed under the new key open there, the old key is gone.
    await new Promise((r) => setTimeout(r, 1200));
    for (let i = 20; i < 30; i++) {
      const r = await call(servers[i % 2].url, "POST", `/v1/customers/rc-${i}/verify`, { key: channel, body: { code: fobCode(seeds[i]) } });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
    }
  });
});
