/**
 * Two real `fobkit bank serve` processes on one database, hit at once:
 * the same code is accepted exactly once, and N wrong codes spread across
 * both lock the token at exactly N. Runs on PostgreSQL (the scale set-up)
 * and on one SQLite file shared by two processes.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../host/registry/api-keys.js";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { Registry } from "../../host/registry/registry.js";
import { ENGINES, freshDb, nextStep, oathtool } from "../registry/support.js";
import { startServeProcess } from "./spawn.js";
import { call } from "./support.js";

const ACTOR = { name: "staff:test", source: "cli" };
/**
 * The servers run on the wall clock, and the test waits for the next code. The step is 15 s:
 * the 200 requests must all be decided while their code is in the ±1-step window, and with a
 * 5 s step a loaded machine (load 16-24, several suites at once) took longer than the window,
 * so the first copy was accepted at drift -1 and the rest were refused wrong_code, then locked.
 */
const PERIOD = 15;
const fobCode = (seed: Buffer) => oathtool(seed, Date.now() / 1000, { period: PERIOD });

describe.each(ENGINES)("two server processes on $name", (engine) => {
  let db: Database;
  let url: string;
  let drop: () => Promise<void>;
  let dir: string;
  let registry: Registry;
  let servers: Awaited<ReturnType<typeof startServeProcess>>[] = [];
  let channel: string;
  const seeds = new Map<string, Buffer>();
  let activatedAt = 0;

  beforeAll(async () => {
    ({ db, url, drop } = await freshDb(engine));
    dir = mkdtempSync(join(tmpdir(), "fobkit-conc-"));
    const kek = join(dir, "bank.kek");
    registry = new Registry(db, { keys: KeyRing.create(kek) });
    for (let i = 0; i < 8; i++) {
      const serial = `CC${i}`;
      const seed = randomBytes(20);
      seeds.set(serial, seed);
      await registry.register([{ serial, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: PERIOD, t0: 0, secret: seed }], ACTOR, "test");
      await registry.issue(serial, `cust-${i}`, ACTOR);
      await registry.activate({ serial }, fobCode(seed), ACTOR);
    }
    activatedAt = Date.now();
    channel = (await createApiKey(db, "channel")).key;
    servers = await Promise.all([0, 1].map(() => startServeProcess(["--db", url, "--kek-file", kek, "--lock-after", "5"])));
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("accepts one code exactly once when 50 copies hit both servers at once (4 tokens at a time)", async () => {
    await nextStep(activatedAt, PERIOD);
    const replies = await Promise.all(
      [0, 1, 2, 3].flatMap((i) => {
        const code = fobCode(seeds.get(`CC${i}`)!);
        return Array.from({ length: 50 }, (_, k) => call(servers[k % 2].url, "POST", `/v1/customers/cust-${i}/verify`, { key: channel, body: { code } }).then((r) => ({ i, r })));
      }),
    );
    for (let i = 0; i < 4; i++) {
      const mine = replies.filter((x) => x.i === i).map((x) => x.r);
      expect(mine.filter((r) => r.status === 200), JSON.stringify(mine.filter((r) => r.status !== 409 || r.body.error.code !== "replayed"))).toHaveLength(1);
      expect(mine.filter((r) => r.status === 409 && r.body.error.code === "replayed")).toHaveLength(49);
      const trail = await registry.auditTrail({ customer: `cust-${i}` });
      expect(trail.filter((r) => r.action === "verify" && r.outcome === "ok")).toHaveLength(1);
    }
  });

  it("locks at exactly 5 when 20 wrong codes hit both servers at once", async () => {
    for (const i of [4, 5]) {
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, k) => call(servers[k % 2].url, "POST", `/v1/customers/cust-${i}/verify`, { key: channel, body: { code: String(10_000_000 + k) } })),
      );
      const wrong = replies.filter((r) => r.status === 409 && r.body.error.code === "wrong_code");
      expect(wrong).toHaveLength(5);
      expect(wrong.map((r) => r.body.error.detail.failures).sort()).toEqual([1, 2, 3, 4, 5]);
      expect(wrong.filter((r) => r.body.error.detail.locked)).toHaveLength(1);
      expect(replies.filter((r) => r.status === 409 && r.body.error.code === "locked")).toHaveLength(15);
      const s = await registry.status(`CC${i}`);
      expect(s).toMatchObject({ state: "locked", failCount: 5 });
      const trail = await registry.auditTrail({ customer: `cust-${i}` });
      expect(trail.filter((r) => r.action === "lock")).toHaveLength(1);
    }
  });
});
