/**
 * `fobkit record`: batch totals and filtered keyfob lists from a real
 * factory record file, as the line's supervisor reads them; bad filters are
 * usage errors; no seed ever appears.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { fobkit } from "./cli-io.js";

let dir: string;
let factory: string;
const seeds: Buffer[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-record-"));
  factory = join(dir, "line.sqlite");
  const rec = FactoryRecord.open(factory, { create: true, line: 1 });
  const made = (batch: number, outcome: "good" | "failed" | "pending", registered?: boolean) => {
    rec.resolveBatch(batch, batch === 2 ? { algorithm: "SHA256", digits: 6, period: 30 } : {});
    const seed = randomBytes(20);
    seeds.push(seed);
    const { serial } = rec.allocate({ batch, seed, hardwareId: "240ac4fffe000001", operator: "ana", station: "line-1" });
    if (outcome === "good") {
      for (const s of ["seed_written", "clock_set", "serial_set", "self_tested", "lock_sent"] as const) rec.setStage(serial, s);
      rec.markGood(serial);
      if (registered !== undefined) rec.setRegistration(serial, registered, registered ? undefined : "bank unreachable");
    } else if (outcome === "failed") rec.markFailed(serial, "self-test failed: the keyfob's code differs from the host's computation");
    return serial;
  };
  made(1, "good", true);
  made(1, "good", false);
  made(1, "failed");
  made(1, "good");
  made(2, "good", true);
  made(2, "pending");
  rec.close();
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("fobkit record", () => {
  it("totals per batch: parameters, good, failed, pending, registered, registration failed", async () => {
    const r = await fobkit(["record", "--factory", factory, "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).batches).toEqual([
      expect.objectContaining({ id: 1, algorithm: "SHA1", digits: 8, period: 60, counts: { good: 3, failed: 1, pending: 0 }, registered: 1, registrationFailed: 1 }),
      expect.objectContaining({ id: 2, algorithm: "SHA256", digits: 6, period: 30, counts: { good: 1, failed: 0, pending: 1 }, registered: 1, registrationFailed: 0 }),
    ]);
    const text = await fobkit(["record", "--factory", factory]);
    expect(text.stdout.split("\n")[0]).toBe("line 01");
    expect(text.stdout.split("\n")[1]).toMatch(/^batch 1\tSHA1, 8 digits, 60 s\tgood 3\tfailed 1\tpending 0\tregistered 1\tregistration failed 1\tsince \S+$/);
  });

  it("lists keyfobs, filtered: the failures and why; the good ones the bank refused", async () => {
    const failed = await fobkit(["record", "--factory", factory, "--list", "--state", "failed"]);
    expect(failed.code).toBe(0);
    const lines = failed.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0].split("\t")).toEqual([
      expect.stringMatching(/^FK010001\d{8}$/), "1", "failed", "allocated", "none", "240ac4fffe000001", "ana@line-1", expect.any(String),
      "self-test failed: the keyfob's code differs from the host's computation",
    ]);
    const refused = JSON.parse((await fobkit(["record", "--factory", factory, "--list", "--registration", "failed", "--json"])).stdout);
    expect(refused.tokens).toEqual([expect.objectContaining({ state: "good", registration: "failed", registrationError: "bank unreachable" })]);
    // In text too: the last column says why the bank has not got it.
    const refusedText = (await fobkit(["record", "--factory", factory, "--list", "--registration", "failed"])).stdout.trim().split("\t");
    expect(refusedText.at(-1)).toBe("registration: bank unreachable");
    const batch2 = JSON.parse((await fobkit(["record", "--factory", factory, "--list", "--batch", "2", "--json"])).stdout);
    expect(batch2.tokens.map((t: { state: string }) => t.state)).toEqual(["good", "pending"]);
  });

  it("reads without the key file and changes nothing; a file that is not a factory record is refused untouched", async () => {
    rmSync(factory + ".key");
    // SQLite may add its -shm index beside a WAL database it reads; the record itself must not change.
    const bytes = (f: string) => readFileSync(f).toString("base64");
    const before = bytes(factory);
    expect(await fobkit(["record", "--factory", factory, "--json"])).toMatchObject({ code: 0 });
    expect(await fobkit(["record", "--factory", factory, "--list"])).toMatchObject({ code: 0 });
    expect(bytes(factory)).toBe(before);
    expect(existsSync(factory + ".key")).toBe(false);
    const other = join(dir, "other.sqlite");
    const db = new Database(other);
    db.exec("CREATE TABLE notes (t TEXT)");
    db.close();
    const untouched = bytes(other);
    const r = await fobkit(["record", "--factory", other]);
    expect(r).toMatchObject({ code: 2, stderr: expect.stringMatching(/is not a fobkit factory record/) });
    expect(bytes(other)).toBe(untouched);
    expect(readdirSync(dir).filter((f) => f.startsWith("other"))).toEqual(["other.sqlite"]);
  });

  it("bad filters are usage errors; no seed appears in any output", async () => {
    expect(await fobkit(["record", "--factory", factory, "--list", "--state", "lost"])).toMatchObject({ code: 2, stderr: expect.stringMatching(/--state must be one of pending, good, failed/) });
    expect(await fobkit(["record", "--factory", factory, "--state", "failed"])).toMatchObject({ code: 2, stderr: expect.stringMatching(/add --list/) });
    expect((await fobkit(["record", "--factory", join(dir, "absent.sqlite")])).code).toBe(2);
    const all = (await fobkit(["record", "--factory", factory, "--list", "--json"])).stdout + (await fobkit(["record", "--factory", factory, "--json"])).stdout;
    for (const s of seeds) {
      expect(all).not.toContain(s.toString("hex"));
      expect(all).not.toContain(s.toString("base64"));
    }
  });
});
