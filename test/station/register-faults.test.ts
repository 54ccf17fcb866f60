/**
 * The registration call when the factory record cannot note the bank's
 * answer: another process holds the record's write lock past its busy
 * timeout (5 s) just as the bank answers. The keyfob is locked and recorded
 * good by then, so provisioning must still end as it does without a bank:
 * the serial for its label printed, the station still running, the
 * registration reported as not noted, and `fobkit register` sending it again
 * later (the bank answers a retry of the same token with 201). A real bank
 * (SQLite registry) behind a loopback relay that takes the record's lock
 * when the registration passes through.
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../host/registry/api-keys.js";
import type { Database as RegistryDb } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { startServer } from "../../host/server/serve.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { ENGINES, freshDb } from "../registry/support.js";
import { attachKeyfob, type EmulatedKeyfob } from "./emulated-keyfob.js";
import { fobkit } from "./cli-io.js";

const HOLD_MS = 6500;
let dir: string;
let db: RegistryDb;
let drop: () => Promise<void>;
let bank: Awaited<ReturnType<typeof startServer>>;
const keys = { factory: "", staff: "" };
const fobs: EmulatedKeyfob[] = [];

/**
 * A relay to the bank that, when the first registration passes, takes the
 * factory record's write lock (as a second station process or a stuck tool would)
 * and keeps it HOLD_MS after the bank's answer went back.
 */
async function lockingRelay(factory: string): Promise<{ url: string; held: () => number; close(): Promise<void> }> {
  let held = 0;
  const holders: Promise<void>[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let lock: Database.Database | undefined;
    // The first registration only: a duplicate answer is sent again (bank-client), and that one must reach the bank.
    if (req.method === "POST" && req.url === "/v1/tokens" && held === 0) {
      lock = new Database(factory);
      lock.exec("BEGIN IMMEDIATE");
      held++;
    }
    const r = await fetch(bank.url + req.url, { method: req.method, headers: { authorization: req.headers.authorization!, "content-type": "application/json" }, body: Buffer.concat(chunks) });
    res.writeHead(r.status, { "content-type": r.headers.get("content-type") ?? "application/json" });
    res.end(Buffer.from(await r.arrayBuffer()));
    if (lock) {
      const l = lock;
      holders.push(new Promise((resolve) => setTimeout(() => {
        l.exec("COMMIT");
        l.close();
        resolve();
      }, HOLD_MS)));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    held: () => held,
    close: async () => {
      await Promise.all(holders);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function status(serial: string): Promise<string> {
  const r = await fetch(`${bank.url}/v1/tokens/${serial}`, { headers: { authorization: `Bearer ${keys.staff}` } });
  return ((await r.json()) as { state: string }).state;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-regfault-"));
  ({ db, drop } = await freshDb(ENGINES.find((e) => e.name === "sqlite")!));
  keys.factory = (await createApiKey(db, "factory", "test")).key;
  keys.staff = (await createApiKey(db, "staff", "test")).key;
  writeFileSync(join(dir, "factory.apikey"), keys.factory + "\n");
  bank = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
});

afterAll(async () => {
  while (fobs.length) await fobs.pop()!.unplug();
  await bank.close();
  await drop();
  rmSync(dir, { recursive: true, force: true });
});

/** `station` or `provision` on a fresh keyfob, registering through a relay that locks the record. */
async function provisionThroughRelay(command: "station" | "provision", factory: string, line: number) {
  const fob = await attachKeyfob(join(dir, `tty-${command}-${line}-${fobs.length}`));
  fobs.push(fob);
  const relay = await lockingRelay(factory);
  try {
    const args = ["--factory", factory, "--line", String(line), "--bank", relay.url, "--bank-key-file", join(dir, "factory.apikey"), "--json"];
    return command === "station"
      ? await fobkit(["station", ...args, "--ports", fob.path, "--count", "1", "--poll-ms", "20"])
      : await fobkit(["provision", ...args, "--port", fob.path]);
  } finally {
    await relay.close();
    expect(relay.held()).toBe(1);
  }
}

describe("registration whose answer the factory record cannot take", () => {
  for (const [command, line] of [["station", 3], ["provision", 4]] as const) {
    it(`${command}: the good keyfob's serial is printed, the registration reported not noted, and fobkit register sends it later`, async () => {
      const factory = join(dir, `${command}.sqlite`);
      // The record exists before the relay locks it.
      FactoryRecord.open(factory, { create: true, line }).close();
      const r = await provisionThroughRelay(command, factory, line);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const j = JSON.parse(r.stdout.trim());
      expect(j).toMatchObject({ status: "good", registration: "failed",
        registrationError: expect.stringMatching(new RegExp(`^the bank registered FK0${line}\\d{12}, but the factory record could not note it \\(database is locked\\)`)) });
      // The bank holds it; the record does not know yet.
      expect(await status(j.serial)).toBe("in_stock");
      let rec = FactoryRecord.open(factory);
      expect(rec.token(j.serial)).toMatchObject({ state: "good", stage: "locked", registration: "none" });
      rec.close();

      const again = await fobkit(["register", "--factory", factory, "--bank", bank.url, "--bank-key-file", join(dir, "factory.apikey"), "--json"]);
      expect(again.code).toBe(0);
      expect(JSON.parse(again.stdout)).toEqual({ registered: 1, failed: 0, errors: {} });
      rec = FactoryRecord.open(factory);
      expect(rec.token(j.serial)).toMatchObject({ registration: "registered" });
      rec.close();
    }, 60_000);
  }

  // A second record given line 03 (the station test's): the bank holds its first serial, and the record cannot note the conflict.
  for (const command of ["station", "provision"] as const) {
    it(`${command}: a collision the record cannot note still stops with exit 1 and says why`, async () => {
      const factory = join(dir, `${command}-dup.sqlite`);
      FactoryRecord.open(factory, { create: true, line: 3 }).close();
      const r = await provisionThroughRelay(command, factory, 3);
      expect(r.code, r.stderr + r.stdout).toBe(1);
      expect(JSON.parse(r.stdout.trim())).toMatchObject({ status: "good", registration: "failed" });
      expect(r.stderr).toMatch(/fobkit: the bank already holds another token as FK03000100000158 .*; the factory record could not note it \(database is locked\)/);
      expect(r.stderr).not.toMatch(/undefined/);
    }, 60_000);
  }
});

describe.each(ENGINES)("two registrations of the same token at once, bank on $name", (engine) => {
  // The station registers a keyfob right after its lock while `fobkit register` (run to catch up after an
  // outage) picks the same token, still registration none: both reach the bank together. The bank keeps one,
  // and may answer the other duplicate_serial (PostgreSQL: both look, find nothing, both insert): that is no
  // other record's token, and must not stop the line.
  it("both end registered, and the record notes no line conflict", async () => {
    const own = await freshDb(engine);
    const server = await startServer({ db: own.db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
    try {
      writeFileSync(join(dir, `race-${engine.name}.apikey`), (await createApiKey(own.db, "factory", "test")).key + "\n");
      const factory = join(dir, `race-${engine.name}.sqlite`);
      const rec = FactoryRecord.open(factory, { create: true, line: 9 });
      rec.resolveBatch(1, {});
      const serials: string[] = [];
      for (let i = 0; i < 8; i++) {
        const { serial } = rec.allocate({ batch: 1, seed: randomBytes(20) });
        rec.setStage(serial, "lock_sent");
        rec.markGood(serial);
        serials.push(serial);
      }
      rec.close();
      const register = () => fobkit(["register", "--factory", factory, "--bank", server.url, "--bank-key-file", join(dir, `race-${engine.name}.apikey`), "--json"]);
      const both = await Promise.all([register(), register()]);
      for (const r of both) expect(r.code, r.stdout + r.stderr).toBe(0);
      const after = FactoryRecord.open(factory);
      expect(after.provisioningRefusal()).toBeUndefined();
      expect(after.tokens().map((t) => t.registration)).toEqual(serials.map(() => "registered"));
      after.close();
      const staff = (await createApiKey(own.db, "staff", "test")).key;
      for (const s of serials) {
        const r = await fetch(`${server.url}/v1/tokens/${s}`, { headers: { authorization: `Bearer ${staff}` } });
        expect(((await r.json()) as { state: string }).state).toBe("in_stock");
      }
    } finally {
      await server.close();
      await own.drop();
    }
  });
});
