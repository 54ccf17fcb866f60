/**
 * Station to bank: `provision --bank` registers each good token with the
 * bank's API (a real server on loopback, factory-role key), a bank that is
 * down leaves the token good-but-unregistered, and `fobkit register`
 * catches up once it is back. The bank then accepts the code the keyfob's
 * display shows: it holds the keyfob's seed. On SQLite and on PostgreSQL.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../host/registry/api-keys.js";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { ENGINES, freshDb } from "../registry/support.js";
import { startServer } from "../../host/server/serve.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { formatSerial } from "../../host/serial/serial-number.js";
import { attachKeyfob, type EmulatedKeyfob } from "./emulated-keyfob.js";
import { fobkit } from "./cli-io.js";

let dir: string;
const kek = KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]);
const keys = { factory: "", staff: "", channel: "" };
const fobs: EmulatedKeyfob[] = [];

async function call(base: string, method: string, path: string, key: string, body?: unknown) {
  const r = await fetch(base.replace(/\/$/, "") + path, { method, headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
  return { status: r.status, body: (await r.json()) as any };
}

async function setUp(engine: (typeof ENGINES)[number]): Promise<{ db: Database; drop(): Promise<void> }> {
  dir = mkdtempSync(join(tmpdir(), "fobkit-reg-"));
  const fresh = await freshDb(engine);
  const db = fresh.db;
  for (const role of ["factory", "staff", "channel"] as const) keys[role] = (await createApiKey(db, role, "test")).key;
  writeFileSync(join(dir, "factory.apikey"), keys.factory + "\n");
  return fresh;
}

describe.each(ENGINES)("registration with the bank on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    ({ db, drop } = await setUp(engine));
  });
  afterAll(async () => {
    while (fobs.length) await fobs.pop()!.unplug();
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("registers right after lock; the bank verifies the keyfob's displayed code", async () => {
    const server = await startServer({ db, keys: kek, listen: "127.0.0.1:0" });
    try {
      const fob = await attachKeyfob(join(dir, "tty0"));
      fobs.push(fob);
      const r = await fobkit(["provision", "--port", fob.path, "--factory", join(dir, "f.sqlite"), "--line", "1", "--bank", server.url, "--bank-key-file", join(dir, "factory.apikey"), "--json"]);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j).toMatchObject({ status: "good", registration: "registered" });
      const st = await call(server.url, "GET", `/v1/tokens/${j.serial}`, keys.staff);
      expect(st.status).toBe(200);
      expect(st.body).toMatchObject({ serial: j.serial, state: "in_stock" });
      expect((await call(server.url, "POST", `/v1/tokens/${j.serial}/issue`, keys.staff, { customer: "c-1" })).status).toBe(200);
      fob.emu.press();
      await new Promise((res) => setTimeout(res, 200));
      const code = fob.emu.display.trim();
      expect(code).toMatch(/^\d{8}$/);
      const act = await call(server.url, "POST", "/v1/customers/c-1/activate", keys.channel, { code });
      expect(act.status).toBe(200);
      expect(act.body).toMatchObject({ result: "accepted", serial: j.serial });
      const rec = FactoryRecord.open(join(dir, "f.sqlite"));
      expect(rec.token(j.serial)).toMatchObject({ registration: "registered", registrationError: null });
      rec.close();
    } finally {
      await server.close();
    }
  });

  it("a bank that is down leaves the token good but unregistered; `fobkit register` sends it once the bank is back", async () => {
    const down = await startServer({ db, keys: kek, listen: "127.0.0.1:0" });
    const url = down.url;
    await down.close();
    const fob = await attachKeyfob(join(dir, "tty1"));
    fobs.push(fob);
    const factory = join(dir, "f.sqlite");
    const r = await fobkit(["provision", "--port", fob.path, "--factory", factory, "--line", "1", "--bank", url, "--bank-key-file", join(dir, "factory.apikey"), "--json"]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ status: "good", registration: "failed", registrationError: expect.stringMatching(/^bank unreachable: ECONNREFUSED/) });
    let rec = FactoryRecord.open(factory);
    expect(rec.token(j.serial)).toMatchObject({ state: "good", registration: "failed" });
    rec.close();

    const still = await fobkit(["register", "--factory", factory, "--bank", url, "--bank-key-file", join(dir, "factory.apikey"), "--json"]);
    expect(still.code).toBe(3);
    expect(JSON.parse(still.stdout)).toMatchObject({ registered: 0, failed: 1 });

    const up = await startServer({ db, keys: kek, listen: "127.0.0.1:0" });
    try {
      const back = await fobkit(["register", "--factory", factory, "--bank", up.url, "--bank-key-file", join(dir, "factory.apikey"), "--json"]);
      expect(back.code).toBe(0);
      expect(JSON.parse(back.stdout)).toEqual({ registered: 1, failed: 0, errors: {} });
      expect((await call(up.url, "GET", `/v1/tokens/${j.serial}`, keys.staff)).body.state).toBe("in_stock");
      const none = await fobkit(["register", "--factory", factory, "--bank", up.url, "--bank-key-file", join(dir, "factory.apikey"), "--json"]);
      expect(JSON.parse(none.stdout)).toEqual({ registered: 0, failed: 0, errors: {} });
      // An answer lost on the way back: the same token sent again is accepted, not a duplicate.
      rec = FactoryRecord.open(factory);
      rec.setRegistration(j.serial, false, "test: answer lost");
      rec.close();
      const resent = await fobkit(["register", "--factory", factory, "--bank", up.url, "--bank-key-file", join(dir, "factory.apikey"), "--json"]);
      expect(JSON.parse(resent.stdout)).toEqual({ registered: 1, failed: 0, errors: {} });
    } finally {
      await up.close();
    }
  });

  it("station --bank: a serial the bank holds as another token (a second record on the same line) stops the station, and that record issues no more", async () => {
    const server = await startServer({ db, keys: kek, listen: "127.0.0.1:0" });
    const station = (record: string, line: string, port: string) => fobkit(["station", "--factory", join(dir, record), "--line", line, "--ports", port, "--count", "2", "--json",
      "--poll-ms", "20", "--bank", server.url, "--bank-key-file", join(dir, "factory.apikey")]);
    try {
      // A second record given the line of the first test's record (a misconfiguration): its first serial is that record's first.
      const dup = await attachKeyfob(join(dir, "tty2"));
      fobs.push(dup);
      const first = formatSerial(1, 1, 1);
      const d = await station("s.sqlite", "1", dup.path);
      // --count 2, yet it stops after the first keyfob: every later serial of this line would collide too.
      expect(d.code).toBe(1);
      expect(JSON.parse(d.stdout.trim())).toMatchObject({ serial: first, status: "good", registration: "failed",
        registrationError: expect.stringMatching(new RegExp(`^the bank already holds another token as ${first} \\(another factory record issued this serial`)) });
      expect(d.stderr).toMatch(/line 01 collides with another factory record: the bank holds FK01\d{12} as another token/);
      // The bank kept its own token (the first test's, activated since).
      expect((await call(server.url, "GET", `/v1/tokens/${first}`, keys.staff)).body.state).toBe("active");

      // That record refuses the next keyfob before touching it: it stays blank, no serial is used.
      const next = await attachKeyfob(join(dir, "tty3"));
      fobs.push(next);
      const refused = await station("s.sqlite", "1", next.path);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/line 01 collides with another factory record.*give this line's station a new record with a line number no other record has/);
      expect(JSON.parse((await fobkit(["info", "--port", next.path, "--json"])).stdout)).toMatchObject({ state: "blank", serial: "" });
      const rec = FactoryRecord.open(join(dir, "s.sqlite"));
      expect(rec.counts()).toEqual({ pending: 0, good: 1, failed: 0 });
      rec.close();

      // fobkit provision says the same, exit 1 (refused), for a third record given line 01.
      const third = await attachKeyfob(join(dir, "tty4"));
      fobs.push(third);
      const p = await fobkit(["provision", "--port", third.path, "--factory", join(dir, "u.sqlite"), "--line", "1", "--bank", server.url, "--bank-key-file", join(dir, "factory.apikey"), "--json"]);
      expect(p.code).toBe(1);
      expect(JSON.parse(p.stdout)).toMatchObject({ serial: first, status: "good", registration: "failed" });
      expect(p.stderr).toMatch(/line 01 collides with another factory record/);

      // The same keyfob on a record of its own line: batch 1, sequence 1 again, and a serial the bank takes.
      const r = await fobkit(["station", "--factory", join(dir, "t.sqlite"), "--line", "2", "--ports", next.path, "--count", "1", "--json",
        "--poll-ms", "20", "--bank", server.url, "--bank-key-file", join(dir, "factory.apikey")]);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout.trim());
      expect(j).toMatchObject({ serial: formatSerial(2, 1, 1), status: "good", registration: "registered", batch: 1 });
      expect((await call(server.url, "GET", `/v1/tokens/${j.serial}`, keys.staff)).body.state).toBe("in_stock");
    } finally {
      await server.close();
    }
  });

  it("refuses plain HTTP to a non-loopback bank and a bank without a key file, before touching anything", async () => {
    const r = await fobkit(["register", "--factory", join(dir, "f.sqlite"), "--bank", "http://bank.example", "--bank-key-file", join(dir, "factory.apikey")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/seeds travel only over HTTPS/);
    const r2 = await fobkit(["provision", "--port", "/dev/null-none", "--factory", join(dir, "g.sqlite"), "--line", "1", "--bank", "https://bank.example"]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/--bank needs --bank-key-file/);
  });
});
