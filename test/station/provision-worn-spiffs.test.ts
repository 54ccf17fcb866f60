/**
 * The station provisions a keyfob whose SPIFFS is worn (written before
 * without a format: `fobkit emu --spiffs-worn`, hil/spiffs-gc.ts), on the
 * real PTY and in real time: LOCK's commit garbage-collects first, so the
 * keyfob's Lua task is blocked for block erases of up to 500 ms each
 * (hil/flash.ts SPIFFS_ERASE_MS) while the host's bytes keep arriving.
 * The keyfob must still answer every request, lose no console byte (the
 * session's pipelining window of 128 bytes fits the UART's receive FIFO),
 * and end locked with its record whole.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SPIFFS_ERASE_MS } from "../../hil/flash.js";
import { DeviceSession } from "../../host/device/session.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { provisionKeyfob } from "../../host/station/provision.js";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import { attachKeyfob, type EmulatedKeyfob } from "./emulated-keyfob.js";

let dir: string;
let fob: EmulatedKeyfob | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-prov-worn-"));
});

afterEach(async () => {
  await fob?.unplug();
  fob = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe("provisioning on a worn SPIFFS", () => {
  it("LOCK garbage-collects (block erases), the keyfob answers every request with no console byte lost, and ends locked", async () => {
    fob = await attachKeyfob(join(dir, "tty0"), { stateDir: join(dir, "flash"), spiffsWorn: true });
    expect(fob.emu.flash.pages.stats().freeBlocks).toBeLessThanOrEqual(3);
    const session = await DeviceSession.open(new SerialTransport({ path: fob.path }));
    const record = FactoryRecord.open(join(dir, "line.sqlite"), { create: true, line: 1 });
    try {
      expect((await session.info()).state).toBe("blank");
      const erases = fob.emu.flash.pages.work.erases;
      const gcBefore = fob.emu.flash.calls.get("gc")?.ms ?? 0;
      const r = await provisionKeyfob(session, record, { batch: 1 });
      expect(r.status).toBe("good");
      expect(fob.emu.flash.pages.work.erases).toBeGreaterThan(erases);
      expect((fob.emu.flash.calls.get("gc")?.ms ?? 0) - gcBefore).toBeGreaterThanOrEqual(SPIFFS_ERASE_MS);
      // While the keyfob was busy erasing, pipelined INFOs wait in its UART: answered, none lost.
      const infos = await Promise.all([session.info(), session.info(), session.info()]);
      expect(infos.map((i) => i.state)).toEqual(["locked", "locked", "locked"]);
      expect(fob.emu.counters.uartRxLost).toBe(0);
      expect(fob.emu.counters.tasksLost).toBe(0);
      expect(readdirSync(fob.stateDir).filter((f) => f.startsWith("token.rec"))).toEqual(["token.rec"]);
    } finally {
      record.close();
      await session.close();
    }
    // Power cycled: the record reads back, the keyfob is locked.
    fob.emu.powerCut();
    fob.emu.boot();
    const again = await DeviceSession.open(new SerialTransport({ path: fob.path }));
    try {
      expect((await again.info()).state).toBe("locked");
    } finally {
      await again.close();
    }
  }, 60_000);
});
