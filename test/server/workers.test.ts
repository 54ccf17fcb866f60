/**
 * `fobkit bank serve --workers N` (issue 14 item 3): N real processes on
 * one port, on both engines. A code sent 40 times at once through the one
 * port is accepted once; a worker killed with SIGKILL is replaced while the
 * port keeps answering; SIGTERM stops the primary and every worker.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
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
import { sleep } from "./verify-load.js";

const ACTOR = { name: "staff:test", source: "cli" };
const PERIOD = 5;
const fobCode = (seed: Buffer) => oathtool(seed, Date.now() / 1000, { period: PERIOD });
/** The parent of a live process, from /proc (Linux). */
const parentOf = (pid: number) => (existsSync(`/proc/${pid}/stat`) ? Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")[1]) : undefined);
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));

describe.each(ENGINES)("bank serve --workers 2 on $name", (engine) => {
  let db: Database;
  let url: string;
  let drop: () => Promise<void>;
  let dir: string;
  let kek: string;
  let channel: string;
  const seeds: Buffer[] = [];
  let activatedAt = 0;

  beforeAll(async () => {
    ({ db, url, drop } = await freshDb(engine));
    dir = mkdtempSync(join(tmpdir(), "fobkit-workers-"));
    kek = join(dir, "bank.kek");
    const registry = new Registry(db, { keys: KeyRing.create(kek) });
    for (let i = 0; i < 2; i++) {
      const seed = randomBytes(20);
      seeds.push(seed);
      await registry.register([{ serial: `WK${i}`, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: PERIOD, t0: 0, secret: seed }], ACTOR, "test");
      await registry.issue(`WK${i}`, `wk-${i}`, ACTOR);
      await registry.activate({ serial: `WK${i}` }, fobCode(seed), ACTOR);
    }
    activatedAt = Date.now();
    channel = (await createApiKey(db, "channel")).key;
  });
  afterAll(async () => {
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves one port from two worker processes; one code accepted once; a killed worker is replaced; SIGTERM stops them all", async () => {
    const server = await startServeProcess(["--db", url, "--kek-file", kek, "--workers", "2"]);
    let stderr = "";
    server.proc.stderr!.on("data", (d) => (stderr += d));
    try {
      const pids = server.info.workers as number[];
      expect(pids).toHaveLength(2);
      for (const pid of pids) expect(parentOf(pid), `worker ${pid}'s parent`).toBe(server.proc.pid);

      await nextStep(activatedAt, PERIOD);
      const code = fobCode(seeds[0]);
      // A fresh connection each (no keep-alive), so the primary spreads them over both workers.
      const replies = await Promise.all(Array.from({ length: 40 }, () => call(server.url, "POST", "/v1/customers/wk-0/verify", { key: channel, body: { code }, headers: { connection: "close" } })));
      expect(replies.filter((r) => r.status === 200), JSON.stringify(replies.filter((r) => r.status !== 409))).toHaveLength(1);
      expect(replies.filter((r) => r.status === 409 && r.body.error.code === "replayed")).toHaveLength(39);

      process.kill(pids[0], "SIGKILL");
      const from = Date.now();
      while (!/2 of 2 serving/.test(stderr) && Date.now() - from < 20_000) await sleep(50);
      expect(stderr).toMatch(new RegExp(`worker ${pids[0]} died \\(SIGKILL\\); starting another`));
      expect(stderr).toMatch(/2 of 2 serving/);
      const children = readFileSync(`/proc/${server.proc.pid}/task/${server.proc.pid}/children`, "utf8").trim().split(/\s+/).map(Number);
      expect(children).toHaveLength(2);
      expect(children).toContain(pids[1]);
      expect(children).not.toContain(pids[0]);
      // The port answers, from the survivor and the replacement: the other token's code, accepted.
      // One code for all ten, taken once: computed per request, a step boundary crossed while they are sent
      // (PERIOD is 5 s, and a loaded machine spreads them) gives two different codes, each rightly accepted once.
      const otherCode = fobCode(seeds[1]);
      const other = await Promise.all(Array.from({ length: 10 }, () => call(server.url, "POST", "/v1/customers/wk-1/verify", { key: channel, body: { code: otherCode }, headers: { connection: "close" } })));
      expect(other.map((r) => r.status).sort()).toEqual([200, ...Array(9).fill(409)]);

      const exited = new Promise<number | null>((res) => server.proc.once("exit", (c) => res(c)));
      server.proc.kill("SIGTERM");
      expect(await exited).toBe(0);
      for (const pid of children) expect(alive(pid), `worker ${pid} outlived the primary`).toBe(false);
    } finally {
      await server.stop();
    }
  });
});

describe("bank serve --workers: bad values", () => {
  it("refuses 0, a non-number and an in-memory SQLite database, saying why", async () => {
    for (const [workers, db, msg] of [
      ["0", "sqlite::memory:", /--workers must be a whole number 1\.\.64, got '0'/],
      ["two", "sqlite::memory:", /--workers must be a whole number 1\.\.64, got 'two'/],
      ["2", "sqlite::memory:", /in-memory SQLite database lives in one process/],
    ] as const) {
      const r = await runFobkit(["bank", "serve", "--db", db, "--kek-file", "/nonexistent.kek", "--workers", workers, "--listen", "127.0.0.1:0"]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
  });

  it("fails (exit 3) naming the cause and the worker's exit status when the workers cannot listen", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fobkit-workers-"));
    const taken = createServer();
    await new Promise<void>((res) => taken.listen(0, "127.0.0.1", () => res()));
    try {
      const port = (taken.address() as { port: number }).port;
      KeyRing.create(join(dir, "bank.kek"));
      const r = await runFobkit(["bank", "serve", "--db", "sqlite:" + join(dir, "bank.sqlite"), "--kek-file", join(dir, "bank.kek"), "--workers", "2", "--listen", `127.0.0.1:${port}`]);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(`cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
      expect(r.stderr).toMatch(/a worker exited before it listened \(exit 3\)/);
    } finally {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
