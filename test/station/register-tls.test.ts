/**
 * Seeds go to the bank only over TLS that authenticates it. A station PC
 * whose environment turns Node's certificate check off
 * (NODE_TLS_REJECT_UNAUTHORIZED=0, the usual shortcut past a bank's private
 * CA) would hand every seed to whoever answers at the bank's address: fobkit
 * refuses to register then, before reading a seed, and says how to trust a
 * private CA instead (NODE_EXTRA_CA_CERTS), which then works. A real bank
 * (SQLite registry) on HTTPS with a self-signed certificate, and the
 * `fobkit` process itself, since the variable acts on the process's TLS.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../host/registry/api-keys.js";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { startServer } from "../../host/server/serve.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { ENGINES, freshDb } from "../registry/support.js";
import { selfSignedCert } from "../server/support.js";
import { ROOT } from "../support/paths.js";

const FOBKIT = join(ROOT, "bin", "fobkit");
let dir: string;
let tls: ReturnType<typeof selfSignedCert>;
let db: Database;
let drop: () => Promise<void>;
let bank: Awaited<ReturnType<typeof startServer>>;
let factory: string;
let serial: string;
const keys = { factory: "", staff: "" };

function run(argv: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [FOBKIT, ...argv], { env: { PATH: process.env.PATH, ...env }, encoding: "utf8" }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

async function bankState(): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${plainPort}/v1/tokens/${serial}`, { headers: { authorization: `Bearer ${keys.staff}` } });
  return r.status;
}
let plain: Awaited<ReturnType<typeof startServer>>;
let plainPort: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-regtls-"));
  tls = selfSignedCert();
  ({ db, drop } = await freshDb(ENGINES.find((e) => e.name === "sqlite")!));
  keys.factory = (await createApiKey(db, "factory", "test")).key;
  keys.staff = (await createApiKey(db, "staff", "test")).key;
  writeFileSync(join(dir, "factory.apikey"), keys.factory + "\n");
  const kek = KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]);
  bank = await startServer({ db, keys: kek, listen: "127.0.0.1:0", tlsCert: tls.cert, tlsKey: tls.key });
  // The same registry on loopback HTTP, for the test's own look at what the bank holds.
  plain = await startServer({ db, keys: kek, listen: "127.0.0.1:0" });
  plainPort = Number(new URL(plain.url).port);
  factory = join(dir, "line.sqlite");
  const rec = FactoryRecord.open(factory, { create: true, line: 6 });
  rec.resolveBatch(1, {});
  serial = rec.allocate({ batch: 1, seed: randomBytes(20) }).serial;
  rec.setStage(serial, "lock_sent");
  rec.markGood(serial);
  rec.close();
});

afterAll(async () => {
  await bank.close();
  await plain.close();
  await drop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(tls.dir, { recursive: true, force: true });
});

describe("registration over HTTPS", () => {
  it("refuses to send seeds while NODE_TLS_REJECT_UNAUTHORIZED=0 turns certificate checks off, before anything is sent", async () => {
    expect(bank.url).toMatch(/^https:/);
    const r = await run(["register", "--factory", factory, "--bank", bank.url, "--bank-key-file", join(dir, "factory.apikey"), "--json"], { NODE_TLS_REJECT_UNAUTHORIZED: "0" });
    expect(r.code, r.stderr + r.stdout).toBe(2);
    expect(r.stderr).toMatch(/NODE_TLS_REJECT_UNAUTHORIZED=0 turns off the check of the bank's certificate.*NODE_EXTRA_CA_CERTS/);
    expect(await bankState()).toBe(404);
    const rec = FactoryRecord.open(factory);
    expect(rec.token(serial)).toMatchObject({ registration: "none" });
    rec.close();
  });

  it("trusts the bank's private CA through NODE_EXTRA_CA_CERTS, and not without it", async () => {
    const untrusted = await run(["register", "--factory", factory, "--bank", bank.url, "--bank-key-file", join(dir, "factory.apikey"), "--json"], {});
    expect(untrusted.code).toBe(3);
    expect(JSON.parse(untrusted.stdout).errors[serial]).toMatch(/^bank unreachable: (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)/);
    expect(await bankState()).toBe(404);
    const trusted = await run(["register", "--factory", factory, "--bank", bank.url, "--bank-key-file", join(dir, "factory.apikey"), "--json"], { NODE_EXTRA_CA_CERTS: tls.cert });
    expect(trusted.code, trusted.stderr).toBe(0);
    expect(JSON.parse(trusted.stdout)).toEqual({ registered: 1, failed: 0, errors: {} });
    expect(await bankState()).toBe(200);
  });
});
