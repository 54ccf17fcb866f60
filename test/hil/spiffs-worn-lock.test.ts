/**
 * LOCK on a worn SPIFFS (`fobkit emu --spiffs-worn`: the partition written
 * before without a format, as a board flashed again is; hil/spiffs-gc.ts)
 * garbage-collects before its commit may write: SPIFFS never reuses a page
 * before garbage collection erases its block. Its flash time then includes
 * at least one block erase that a freshly installed keyfob's LOCK does not
 * pay. Only the emulator's long-standing API is used (counters.flashBusyMs),
 * so the emulator before the model shows the gap it had: the same time.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ascii, P, TestKeyfob } from "../support/keyfob.js";
import { nodeBuild } from "../support/paths.js";

const flashMod = await nodeBuild<typeof import("../../hil/flash.js")>("hil/flash.js");
const SERIAL = "FK00000778";
const keyfobs: TestKeyfob[] = [];
afterEach(() => {
  while (keyfobs.length) keyfobs.pop()!.close();
});

/** Flash time (ms) LOCK costs on a freshly installed keyfob, or on one whose SPIFFS is worn. */
function lockFlashMs(spiffsWorn: boolean): number {
  const k = new TestKeyfob({ spiffsWorn }).boot();
  keyfobs.push(k);
  expect(k.provision(ascii("12345678901234567890"), SERIAL, 1_764_000_000 + 3600, false)).toEqual([0, 0, 0]);
  const before = k.emu.counters.flashBusyMs;
  expect(k.request({ cmd: P.CMD_LOCK, serial: ascii(SERIAL) }).status).toBe(P.STATUS_OK);
  const ms = k.emu.counters.flashBusyMs - before;
  k.emu.powerCut();
  k.boot();
  expect(k.info().state).toBe(P.STATE_LOCKED);
  return ms;
}

describe("LOCK on a worn SPIFFS", () => {
  it("garbage-collects: at least one block erase more flash time than on a freshly installed keyfob", () => {
    const fresh = lockFlashMs(false);
    const worn = lockFlashMs(true);
    expect(worn - fresh).toBeGreaterThan(0);
    expect(worn - fresh).toBeGreaterThanOrEqual(flashMod.SPIFFS_ERASE_MS);
  });
});
