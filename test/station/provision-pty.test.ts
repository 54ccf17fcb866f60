/**
 * `fobkit provision` and `fobkit info` against emulated keyfobs (the real
 * firmware image in the HIL emulator) on real PTYs at 115200 baud, through
 * serialport's real binding: the good path, a keyfob unplugged mid-write, a
 * keyfob whose RTC is wrong, and what a rerun does with each.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DeviceSession } from "../../host/device/session.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { provisionKeyfob } from "../../host/station/provision.js";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import { parseSerial } from "../../host/serial/serial-number.js";
import { attachKeyfob, type EmulatedKeyfob } from "./emulated-keyfob.js";
import { CliRun, fobkit } from "./cli-io.js";

let dir: string;
let factory: string;
const fobs: EmulatedKeyfob[] = [];

async function attach(name: string, opts = {}, powerOn = true): Promise<EmulatedKeyfob> {
  const f = await attachKeyfob(join(dir, name), opts, powerOn);
  fobs.push(f);
  return f;
}

function record(): FactoryRecord {
  return FactoryRecord.open(factory);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-prov-"));
  factory = join(dir, "line.sqlite");
});

afterEach(async () => {
  for (const f of fobs.splice(0)) await f.unplug();
  rmSync(dir, { recursive: true, force: true });
});

describe("fobkit provision over a real PTY", () => {
  it("provisions an emulated keyfob: serial on stdout, good in the record, locked on the keyfob", async () => {
    const fob = await attach("tty0");
    const r = await fobkit(["provision", "--port", fob.path, "--factory", factory, "--line", "1", "--operator", "ana", "--station", "line-1"]);
    expect(r.stderr).toMatch(/provisioned FK\d{14} \(batch 1\)/);
    expect(r.code).toBe(0);
    const serial = r.stdout.trim();
    expect(parseSerial(serial)).toMatchObject({ batch: 1, sequence: 1 });
    const info = await fobkit(["info", "--port", fob.path, "--json"]);
    expect(info.code).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ state: "locked", serial, algorithm: "SHA1", digits: 8, period: 60, clockSet: true });
    const rec = record();
    const row = rec.token(serial)!;
    expect(row).toMatchObject({ state: "good", stage: "locked", operator: "ana", station: "line-1", port: fob.path, reason: null });
    expect(row.hardwareId).toBe(JSON.parse(info.stdout).hardwareId);
    rec.close();
  });

  it("--json prints serial, batch and status; SHA256/6/30 makes a new batch with those parameters", async () => {
    const fob = await attach("tty0");
    const r = await fobkit(["provision", "--port", fob.path, "--factory", factory, "--line", "1", "--batch", "7", "--algorithm", "SHA256", "--digits", "6", "--period", "30", "--json"]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ status: "good", batch: 7, port: fob.path });
    expect(parseSerial(j.serial).batch).toBe(7);
    const info = JSON.parse((await fobkit(["info", "--port", fob.path, "--json"])).stdout);
    expect(info).toMatchObject({ algorithm: "SHA256", digits: 6, period: 30, state: "locked" });
  });

  it("refuses a keyfob that is already locked, and changes nothing", async () => {
    const fob = await attach("tty0");
    expect((await fobkit(["provision", "--port", fob.path, "--factory", factory, "--line", "1"])).code).toBe(0);
    const again = await fobkit(["provision", "--port", fob.path, "--factory", factory, "--line", "1", "--json"]);
    expect(again.code).toBe(3);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: "failed", reason: expect.stringMatching(/already provisioned and recorded good/) });
    const rec = record();
    expect(rec.counts()).toEqual({ pending: 0, good: 1, failed: 0 });
    rec.close();
  });

  it("a keyfob whose PTY disappears mid-write is recorded failed with the reason; it and the next one then succeed", async () => {
    const fob = await attach("tty0");
    const run = new CliRun();
    let pulled: Promise<void> | undefined;
    run.onStderr((t) => {
      // The moment the writes go out (clock, then seed): the cable is pulled.
      if (t.includes("set_clock")) pulled = fob.unplug();
    });
    const code = await run.run(["provision", "--port", fob.path, "--factory", factory, "--line", "1"]);
    expect(code).toBe(3);
    expect(run.out.stderr).toMatch(/provisioning failed: keyfob on .* was unplugged during (SET_CLOCK|WRITE_SEED) \(serial (FK\d{14}) recorded failed\)/);
    const lost = /serial (FK\d{14})/.exec(run.out.stderr)![1];
    let rec = record();
    expect(rec.token(lost)).toMatchObject({ state: "failed", reason: expect.stringMatching(/unplugged during (SET_CLOCK|WRITE_SEED)/) });
    rec.close();

    // The same keyfob plugged in again (its flash kept), then a fresh one: both succeed, no serial reused.
    await pulled;
    const back = await attach("tty0", { stateDir: fob.stateDir });
    const r1 = await fobkit(["provision", "--port", back.path, "--factory", factory, "--line", "1", "--json"]);
    expect(r1.code).toBe(0);
    const next = await attach("tty1");
    const r2 = await fobkit(["provision", "--port", next.path, "--factory", factory, "--line", "1", "--json"]);
    expect(r2.code).toBe(0);
    const serials = [lost, JSON.parse(r1.stdout).serial, JSON.parse(r2.stdout).serial];
    expect(new Set(serials).size).toBe(3);
    expect(serials.map((s) => parseSerial(s).sequence)).toEqual([1, 2, 3]);
    rec = record();
    expect(rec.counts()).toEqual({ pending: 0, good: 2, failed: 1 });
    rec.close();
  });

  it("a keyfob unplugged after its seed was written comes back blank (nothing reached its flash) and the rerun provisions it", async () => {
    const fob = await attach("tty0");
    const run = new CliRun();
    let pulled: Promise<void> | undefined;
    run.onStderr((t) => {
      if (t.includes("set_serial")) pulled = fob.unplug();
    });
    expect(await run.run(["provision", "--port", fob.path, "--factory", factory, "--line", "1"])).toBe(3);
    await pulled;
    const back = await attach("tty0", { stateDir: fob.stateDir });
    const before = JSON.parse((await fobkit(["info", "--port", back.path, "--json"])).stdout);
    expect(before).toMatchObject({ state: "blank", seedSet: false, serial: "" });
    const r = new CliRun();
    expect(await r.run(["provision", "--port", back.path, "--factory", factory])).toBe(0);
    expect(r.out.stderr).not.toMatch(/\bwipe\b/);
  });

  it("a keyfob left provisioned and powered by a station that stopped before LOCK is wiped by the rerun before it is provisioned", async () => {
    const fob = await attach("tty0");
    const session = await DeviceSession.open(new SerialTransport({ path: fob.path }));
    try {
      await session.setClock(Math.floor(Date.now() / 1000));
      await session.writeSeed({ algorithm: "SHA1", digits: 8, period: 60, seed: new Uint8Array(20).fill(7) });
      await session.setSerial("FK-LEFT");
    } finally {
      await session.close();
    }
    const before = JSON.parse((await fobkit(["info", "--port", fob.path, "--json"])).stdout);
    expect(before).toMatchObject({ state: "provisioned", seedSet: true, serial: "FK-LEFT" });
    const r = new CliRun();
    expect(await r.run(["provision", "--port", fob.path, "--factory", factory, "--line", "1"])).toBe(0);
    expect(r.out.stderr).toMatch(/\bwipe\b/);
  });

  it("a keyfob whose RTC is wrong fails its self-test, is recorded failed and wiped; the next keyfob succeeds", async () => {
    // An RTC running 10^4 times too fast (a broken oscillator): the clock the station set is far off by the self-test.
    const bad = await attach("tty0", { driftPpm: 1e10 });
    const r = await fobkit(["provision", "--port", bad.path, "--factory", factory, "--line", "1", "--json"]);
    expect(r.code).toBe(3);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ status: "failed", wiped: true, reason: expect.stringMatching(/^self-test failed: keyfob clock reads \d+, host \d+ \(off by \d+ s\)$/) });
    const rec = record();
    expect(rec.token(j.serial)).toMatchObject({ state: "failed", reason: j.reason });
    rec.close();
    const info = JSON.parse((await fobkit(["info", "--port", bad.path, "--json"])).stdout);
    expect(info).toMatchObject({ state: "blank", seedSet: false, serial: "" });
    const good = await attach("tty1");
    const r2 = await fobkit(["provision", "--port", good.path, "--factory", factory, "--line", "1", "--json"]);
    expect(JSON.parse(r2.stdout)).toMatchObject({ status: "good" });
    expect(parseSerial(JSON.parse(r2.stdout).serial).sequence).toBe(2);
  });

  it("a host listening from power-on reads the boot text, drops it as a damaged frame, and provisions the keyfob", async () => {
    const fob = await attach("ttyBOOT", {}, false);
    const session = await DeviceSession.open(new SerialTransport({ path: fob.path }));
    const rec = FactoryRecord.open(factory, { create: true, line: 1 });
    try {
      fob.emu.boot(); // NodeMCU's banner and first prompt go out now, ahead of any reply
      const r = await provisionKeyfob(session, rec);
      expect(r.status).toBe("good");
      expect(session.stats.badFrames).toBeGreaterThanOrEqual(1);
      expect(rec.token(r.serial!)).toMatchObject({ state: "good" });
    } finally {
      await session.close();
      rec.close();
    }
  });

  it("bad usage is exit 2 with a clear message, before touching anything", async () => {
    const r = await fobkit(["provision", "--port", join(dir, "nope"), "--factory", factory, "--line", "1", "--algorithm", "MD5"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--algorithm must be SHA1 or SHA256, got 'MD5'/);
    const r2 = await fobkit(["provision", "--port", join(dir, "nope"), "--factory", factory, "--line", "1"]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/no such port/);
    const r3 = await fobkit(["info"]);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/--port is required/);
  });
});
