/**
 * A 60,000-token import from another process does not freeze a server on
 * the same SQLite file (issue 11, item 4). Before, the import was one
 * transaction holding the write lock 15-17 s, and the server's busy handler
 * slept on its event loop: verifications and /healthz stalled 5-7 s. Now
 * the import runs in short transactions and the server waits for the lock
 * on timers. The bound here is generous (a loaded 2-core machine runs this
 * suite); tools/bench-bank.ts measures the p99 itself.
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
import { hotp, stepAt } from "../../host/registry/totp.js";
import { registerInChild } from "../../tools/import-child.js";
import { NODE_BUILD } from "../support/paths.js";
import { ENGINES, freshDb, oathtool } from "../registry/support.js";
import { startServeProcess } from "./spawn.js";
import { call } from "./support.js";

const ACTOR = { name: "staff:test", source: "cli" };
const IMPORTED = 60_000;
/** Far above the issue's 100 ms target, far below the 5-7 s stalls it saw. */
const GENEROUS_P99_MS = 2000;

const sqlite = ENGINES.filter((e) => e.name === "sqlite");

describe.each(sqlite)("a 60,000-token import beside a serving process on $name", (engine) => {
  let db: Database;
  let url: string;
  let drop: () => Promise<void>;
  let dir: string;
  let kek: string;
  let server: Awaited<ReturnType<typeof startServeProcess>>;
  let channel: string;
  let staff: string;
  const codes: string[] = [];
  const seeds: Buffer[] = [];

  beforeAll(async () => {
    ({ db, url, drop } = await freshDb(engine));
    dir = mkdtempSync(join(tmpdir(), "fobkit-import-"));
    kek = join(dir, "bank.kek");
    const registry = new Registry(db, { keys: KeyRing.create(kek) });
    for (let i = 0; i < 4; i++) {
      const seed = randomBytes(20);
      await registry.register([{ serial: `L${i}`, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: seed }], ACTOR, "t");
      await registry.issue(`L${i}`, `lc-${i}`, ACTOR);
      const code = oathtool(seed, Date.now() / 1000);
      await registry.activate({ serial: `L${i}` }, code, ACTOR);
      // Each verification sends the current code: accepted once per step, then a replay; either is a full
      // write transaction (row lock, seed, HMACs, update, audit), and a replay never counts toward the lock.
      codes.push(code);
      seeds.push(seed);
    }
    channel = (await createApiKey(db, "channel")).key;
    staff = (await createApiKey(db, "staff")).key;
    server = await startServeProcess(["--db", url, "--kek-file", kek]);
  });
  afterAll(async () => {
    await server?.stop();
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps verifications fast and the import invisible until it is whole", { timeout: 300_000 }, async () => {
    const unexpected: unknown[] = [];
    // Open loop: a verification every 20 ms whether or not the last one answered, so a stall
    // shows in the latencies of every request sent during it (a closed loop would count it once).
    const openLoop = async (running: () => boolean, latencies: number[]) => {
      const sent: Promise<void>[] = [];
      for (let n = 0; running(); n++) {
        const i = n % codes.length;
        const t0 = performance.now();
        sent.push(
          call(server.url, "POST", `/v1/customers/lc-${i}/verify`, { key: channel, body: { code: hotp("SHA1", seeds[i], stepAt(Date.now(), 0, 60), 8) } }).then((r) => {
            latencies.push(performance.now() - t0);
            // The current code: accepted once per step, a replay after that.
            if (r.status !== 200 && (r.status !== 409 || r.body?.error?.code !== "replayed")) unexpected.push(r);
          }),
        );
        await new Promise((res) => setTimeout(res, 20));
      }
      await Promise.all(sent);
    };
    // The machine as it is now, without an import: the bound below scales with it.
    const baseline: number[] = [];
    const baseEnd = performance.now() + 3000;
    await openLoop(() => performance.now() < baseEnd, baseline);
    baseline.sort((a, b) => a - b);
    const baseP99 = baseline[Math.floor(baseline.length * 0.99)];

    let importing = true;
    const importStart = performance.now();
    let importMs = 0;
    const imported = registerInChild(NODE_BUILD, url, kek, IMPORTED, "pskc:big.xml").finally(() => ((importing = false), (importMs = performance.now() - importStart)));
    const latencies: number[] = [];
    const counts = new Set<number>();
    await Promise.all([
      openLoop(() => importing, latencies),
      (async () => {
        while (importing) {
          const r = await call(server.url, "GET", "/v1/token-counts", { key: staff });
          if (r.status === 200) counts.add(r.body.counts.in_stock);
          else unexpected.push(r);
          await new Promise((res) => setTimeout(res, 250));
        }
      })(),
    ]);
    const done = await imported;
    expect(done.code, done.stderr).toBe(0);
    expect(unexpected).toEqual([]);
    expect(latencies.length).toBeGreaterThan(100);
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.floor(latencies.length * 0.99)];
    const max = latencies.at(-1)!;
    const report = `p99 ${p99.toFixed(1)} ms, p50 ${latencies[Math.floor(latencies.length / 2)].toFixed(1)} ms, max ${max.toFixed(0)} ms over ${latencies.length}; without the import p99 ${baseP99.toFixed(1)} ms; import ${(importMs / 1000).toFixed(1)} s`;
    console.log(`import-latency: ${report}`);
    // Generous, and scaled to how loaded the machine is; the one-transaction import stalled for most of its length.
    expect(p99, report).toBeLessThan(Math.max(GENEROUS_P99_MS, 3 * baseP99));
    expect(max, report).toBeLessThan(importMs / 4);
    // All or nothing for everyone watching: 0 imported, then all of them.
    expect([...counts].filter((n) => n !== 0 && n !== IMPORTED)).toEqual([]);
    const after = await call(server.url, "GET", "/v1/token-counts", { key: staff });
    expect(after.body.counts.in_stock).toBe(IMPORTED);
  });
});
