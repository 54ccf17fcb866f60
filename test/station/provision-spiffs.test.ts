/**
 * What SPIFFS work one provisioning costs the keyfob once it answers: the
 * station's time per keyfob is the wire plus this (tools/bench-station.ts).
 * The one durable, checked commit LOCK needs (flash-store.ts: write the
 * temporary copy, close, read it back, check, rename it into place) and
 * the provisioning module's one load (fobkit-prov.lc, kept out of the boot
 * so a blank boot stays within the memory goal), and no name looked up that
 * the keyfob's boot already found absent.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SPIFFS_DATA_PAGE_BYTES, SPIFFS_READ_US } from "../../hil/flash.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DeviceSession } from "../../host/device/session.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { provisionKeyfob } from "../../host/station/provision.js";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import { commitFloor } from "../../tools/bench-station.js";
import { attachKeyfob, type EmulatedKeyfob } from "./emulated-keyfob.js";

let dir: string;
let fob: EmulatedKeyfob | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-prov-spiffs-"));
});

afterEach(async () => {
  await fob?.unplug();
  fob = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe("SPIFFS work of one provisioning on a booted blank keyfob", () => {
  it("is the provisioning module's load and LOCK's checked commit: open for writing, one write, the read-back's open and reads, one rename", async () => {
    fob = await attachKeyfob(join(dir, "tty0"), { stateDir: join(dir, "flash") });
    const session = await DeviceSession.open(new SerialTransport({ path: fob.path }));
    const record = FactoryRecord.open(join(dir, "line.sqlite"), { create: true, line: 1 });
    try {
      // Ready: the keyfob answers (its boot's SPIFFS work is over).
      expect((await session.info()).state).toBe("blank");
      const before = new Map([...fob.emu.flash.calls].map(([k, v]) => [k, v.count]));
      const msBefore = new Map([...fob.emu.flash.calls].map(([k, v]) => [k, v.ms]));
      const r = await provisionKeyfob(session, record, { batch: 1 });
      expect(r.status).toBe("good");
      const during: Record<string, number> = {};
      for (const [k, v] of fob.emu.flash.calls) {
        const n = v.count - (before.get(k) ?? 0);
        if (n > 0) during[k] = n;
      }
      const { read, ...rest } = during;
      expect(rest).toEqual({ load: 1, "open-write": 1, write: 1, "open-read": 1, rename: 1 });
      expect(read).toBeGreaterThanOrEqual(1);
      // Exactly the station bench's lower bound for that commit (tools/bench-station.ts commitFloor), plus the
      // module's load: its name lookup and one read per data page.
      const spentMs = [...fob.emu.flash.calls].reduce((a, [k, v]) => a + v.ms - (msBefore.get(k) ?? 0), 0);
      const floor = Object.values(commitFloor(fob.emu.flash.size("token.rec"), fob.emu.flash.geometry.lookupMs)).reduce((a, b) => a + b, 0);
      const loadMs = fob.emu.flash.geometry.lookupMs + (Math.ceil(fob.emu.flash.size("fobkit-prov.lc") / SPIFFS_DATA_PAGE_BYTES) * SPIFFS_READ_US) / 1000;
      expect(spentMs).toBeCloseTo(floor + loadMs, 6);
    } finally {
      record.close();
      await session.close();
    }
  });
});
