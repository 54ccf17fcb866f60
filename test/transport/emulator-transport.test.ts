/** EmulatorTransport: the in-process link to the emulated board, and what a power cut looks like to a session. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Emulator } from "../../hil/emulator.js";
import { DeviceError } from "../../host/device/device-error.js";
import { DeviceSession } from "../../host/device/session.js";
import { EmulatorTransport } from "../../host/transport/emulator-transport.js";
import { TransportError } from "../../host/transport/transport.js";
import { IMAGE } from "../support/paths.js";

let dir: string;
let emu: Emulator;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-emut-"));
  emu = new Emulator({ stateDir: dir, imagePath: IMAGE, countInstructions: false });
  emu.boot();
  emu.advance(1);
});

afterEach(() => {
  emu.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("EmulatorTransport", () => {
  it("talks to the firmware: INFO, and a wire byte count per direction", async () => {
    const t = new EmulatorTransport(emu, "emu:a");
    const s = await DeviceSession.open(t);
    const info = await s.info();
    expect(info).toMatchObject({ state: "blank", model: "FOBKIT-1", firmware: "1.1.0" });
    expect(info.clock).toBeGreaterThan(1_700_000_000);
    // INFO: 0x00, COBS of version+rid+cmd+CRC (5 bytes -> 6), 0x00.
    expect(t.stats.bytesWritten).toBe(8);
    expect(t.stats.bytesRead).toBeGreaterThan(40);
    await s.close();
  });

  it("a power cut is an unplug: the session fails at once and the transport reports it", async () => {
    const t = new EmulatorTransport(emu);
    const s = await DeviceSession.open(t);
    const reasons: string[] = [];
    t.onClose((e) => reasons.push(e.reason));
    emu.powerCut();
    await expect(s.info()).rejects.toSatisfy((e: unknown) => e instanceof DeviceError && e.code === "unplugged");
    expect(reasons).toEqual(["unplugged"]);
    await expect(t.read()).rejects.toSatisfy((e: unknown) => e instanceof TransportError && e.code === "unplugged");
  });
});
