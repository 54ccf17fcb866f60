/**
 * HidTransport through a double of node-hid's HID object that forwards to
 * the real firmware in the in-process emulator: provisioning end to end in
 * 64-byte reports, the report rules, a lost report, close and unplug.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Emulator } from "../../hil/emulator.js";
import * as P from "../../protocol/index.js";
import { DeviceError } from "../../host/device/device-error.js";
import { DeviceSession } from "../../host/device/session.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { provisionKeyfob } from "../../host/station/provision.js";
import { HidTransport } from "../../host/transport/hid-transport.js";
import { TransportError } from "../../host/transport/transport.js";
import { IMAGE } from "../support/paths.js";
import { HidDouble } from "./hid-double.js";

let dir: string;
let emu: Emulator;
let hid: HidDouble;
let opened: string[];

function transport(): HidTransport {
  return new HidTransport({
    path: "/dev/hidraw7",
    open: (p) => {
      opened.push(p);
      return hid;
    },
  });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-hid-"));
  emu = new Emulator({ stateDir: join(dir, "fob"), imagePath: IMAGE, countInstructions: false });
  emu.boot();
  emu.advance(1);
  hid = new HidDouble(emu);
  opened = [];
});

afterEach(() => {
  emu.close();
  rmSync(dir, { recursive: true, force: true });
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as TransportError | DeviceError).code;
  }
  return "resolved";
}

describe("HidTransport", () => {
  it("provisions the emulated keyfob through 64-byte reports", async () => {
    const t = transport();
    const session = await DeviceSession.open(t);
    expect(opened).toEqual(["/dev/hidraw7"]);
    const rec = FactoryRecord.open(join(dir, "f.sqlite"), { create: true, line: 1 });
    const r = await provisionKeyfob(session, rec, {});
    expect(r).toMatchObject({ status: "good", port: "/dev/hidraw7" });
    expect((await session.info()).state).toBe("locked");
    // WRITE_SEED with a 20-byte seed is one report; INFO replies (~60 wire bytes) fit one or two.
    expect(hid.reportsIn).toBeGreaterThanOrEqual(7);
    expect(t.stats.badReports).toBe(0);
    expect(t.stats.bytesWritten).toBeGreaterThan(0);
    await session.close();
    expect(hid.closed).toBe(true);
    rec.close();
  });

  it("the double refuses what the keyfob's report descriptor does not define, as node-hid reports it", () => {
    const good = [P.HID_REPORT_ID, P.HID_START | P.HID_END, 0, ...new Array(61).fill(0)];
    expect(hid.write(good)).toBe(64);
    expect(() => hid.write(good.slice(0, 63))).toThrow("Cannot write to hid device");
    expect(() => hid.write([2, ...good.slice(1)])).toThrow("Cannot write to hid device");
    hid.close();
    expect(() => hid.write(good)).toThrow("Cannot write to closed device");
  });

  it("write() takes exactly one frame: anything else is bad_frame, and nothing is sent", async () => {
    const t = transport();
    await t.open();
    expect(await code(t.write(Uint8Array.from([1, 2, 3])))).toBe("bad_frame");
    expect(await code(t.write(new Uint8Array(200)))).toBe("bad_frame");
    expect(hid.reportsIn).toBe(0);
    await t.close();
  });

  it("a lost input report drops that reply; INFO is resent and answered", async () => {
    const session = await DeviceSession.open(transport(), { timeoutMs: 300 });
    hid.dropReports = 1;
    const info = await session.info();
    expect(info.state).toBe("blank");
    expect(session.stats.retries).toBe(1);
    await session.close();
  });

  it("close: pending read rejects closed, the device is closed, later calls are not_open", async () => {
    const t = transport();
    await t.open();
    const pending = code(t.read());
    await t.close();
    expect(await pending).toBe("closed");
    expect(hid.closed).toBe(true);
    expect(await code(t.write(Uint8Array.from(P.encodeRequest({ cmd: P.CMD_INFO, rid: 1 }))))).toBe("not_open");
  });

  it("an unplug mid-command fails it with unplugged at once", async () => {
    const session = await DeviceSession.open(transport(), { timeoutMs: 10_000 });
    const events: string[] = [];
    session.transport.onClose((e) => events.push(e.reason));
    await session.info();
    hid.dropReports = 1000;
    const pending = code(session.info());
    hid.unplug();
    const t0 = Date.now();
    expect(await pending).toBe("unplugged");
    expect(Date.now() - t0).toBeLessThan(500);
    expect(events).toEqual(["unplugged"]);
    expect(hid.closed).toBe(true);
    await session.close();
  });
});
