/**
 * A failed flash write never costs the keyfob its record. SPIFFS fails
 * writes when it is full (ENOSPC), and newlib's 128-byte FILE buffer makes
 * the failure show at f:close() (hil/nodemcu/file.ts); the store
 * (firmware/board/flash-store.ts) must check write and close and read the
 * new file back before it may replace the old one.
 *
 * LOCK is the one command that writes the record while the keyfob is unlocked
 * (SET_SERIAL, WRITE_SEED and SET_CLOCK are staged in RAM: device.ts). For
 * each way a write fails, on the real image in the emulator: LOCK is refused
 * with FLASH_ERROR, nothing is left on flash to be rolled forward, the keyfob
 * stays healthy and provisioned, and a power cycle gives what the flash held.
 */
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ascii, P, TestKeyfob } from "../support/keyfob.js";
import { nodeBuild } from "../support/paths.js";

const flashMod = await nodeBuild<typeof import("../../hil/flash.js")>("hil/flash.js");
const RECORD = "token.rec";
const SEED = ascii("12345678901234567890");
const keyfobs: TestKeyfob[] = [];
afterEach(() => {
  while (keyfobs.length) keyfobs.pop()!.close();
});

/** Seed, serial and clock staged (not locked): nothing on flash yet (firmware/app/device.ts, stage()). */
function provisioned(): TestKeyfob {
  const k = new TestKeyfob().boot();
  keyfobs.push(k);
  expect(k.provision(SEED, "FK00000100", 1_764_000_000 + 3600, false)).toEqual([0, 0, 0]);
  return k;
}

const recordFiles = (k: TestKeyfob) => readdirSync(k.stateDir).filter((f) => f.startsWith(RECORD)).sort();
const lock = (k: TestKeyfob) => k.request({ cmd: P.CMD_LOCK, serial: ascii("FK00000100") }).status;

type Failure = "flash-full" | "close-error" | "almost-full";

/** Break the flash: a fault, or SPIFFS filled up to its last free page (one index header fits, no data page). */
function breakFlash(k: TestKeyfob, how: Failure): void {
  if (how !== "almost-full") {
    k.emu.setFault(how, true);
    return;
  }
  const free = k.emu.flash.freePages();
  let size = 0;
  while (flashMod.spiffsPages(size + flashMod.SPIFFS_DATA_PAGE_BYTES) <= free - 1) size += flashMod.SPIFFS_DATA_PAGE_BYTES;
  writeFileSync(join(k.stateDir, "filler.bin"), Buffer.alloc(size));
  // A data page past the header's index entries costs an index page too, so the big file can
  // leave two free; an empty file takes exactly its header page.
  for (let i = 0; k.emu.flash.freePages() > 1; i++) writeFileSync(join(k.stateDir, `filler${i}.bin`), Buffer.alloc(0));
  expect(k.emu.flash.freePages()).toBe(1);
}

function heal(k: TestKeyfob, how: Failure): void {
  if (how === "almost-full") return; // the filler stays: the next writes would fail too
  k.emu.setFault(how, false);
}

describe("a failed LOCK write leaves the flash as it was and the keyfob healthy", () => {
  for (const how of ["flash-full", "close-error", "almost-full"] as Failure[]) {
    it(`LOCK with ${how}: FLASH_ERROR, the keyfob still provisioned (not in error), and LOCK works once the flash does`, () => {
      const k = provisioned();
      const before = k.info();
      breakFlash(k, how);
      expect(lock(k)).toBe(P.STATUS_FLASH_ERROR);
      // Nothing was written and nothing is left to be rolled forward.
      expect(recordFiles(k)).toEqual([]);
      // A write that changed nothing is a refusal, not a fault (device.ts, commit()).
      const after = k.info();
      expect(after).toEqual({ ...before, timeHi: after.timeHi, timeLo: after.timeLo });
      expect(after.state).toBe(P.STATE_PROVISIONED);
      if (how === "almost-full") rmSync(join(k.stateDir, "filler.bin"));
      else heal(k, how);
      expect(lock(k)).toBe(P.STATUS_OK);
      expect(k.info().state).toBe(P.STATE_LOCKED);
      k.emu.powerCut();
      k.boot();
      expect(k.info().state).toBe(P.STATE_LOCKED);
    });
  }

  it("a power cycle after a failed LOCK leaves a blank keyfob (what its flash holds)", () => {
    const k = provisioned();
    breakFlash(k, "flash-full");
    expect(lock(k)).toBe(P.STATUS_FLASH_ERROR);
    heal(k, "flash-full");
    k.emu.powerCut();
    k.boot();
    expect(k.info()).toMatchObject({ state: P.STATE_BLANK, serial: [], flags: 0 });
  });

  it("a failure at each single flash operation of LOCK's write: healthy and unlocked, or locked; after a power cycle the same", () => {
    const ref = provisioned();
    const ops0 = ref.emu.flash.writes;
    expect(lock(ref)).toBe(P.STATUS_OK);
    const ops = ref.emu.flash.writes - ops0;
    expect(ops).toBeGreaterThanOrEqual(3); // open, the flush at close, rename
    const outcomes = new Set<number>();
    for (let n = 1; n <= ops; n++) {
      const k = provisioned();
      k.emu.flash.failAtWrite(n);
      const st = lock(k);
      k.emu.flash.disarm();
      outcomes.add(st);
      const state = k.info().state;
      // FLASH_ERROR: nothing changed, still provisioned; OK: the read-back found the new record (a failed
      // rename is rolled forward by flash-store.ts's read), so it is locked.
      expect(state, `failure at op ${n}/${ops}`).toBe(st === P.STATUS_OK ? P.STATE_LOCKED : P.STATE_PROVISIONED);
      if (st !== P.STATUS_OK) expect(recordFiles(k)).toEqual([]);
      k.emu.powerCut();
      k.boot();
      expect(k.info().state).toBe(st === P.STATUS_OK ? P.STATE_LOCKED : P.STATE_BLANK);
    }
    expect([...outcomes].sort()).toEqual([P.STATUS_OK, P.STATUS_FLASH_ERROR].sort());
  });

  it("a write whose record can no longer be read (both renames fail) puts the keyfob in error, FLASH_WRITE; a retried LOCK clears it, and so does the next boot", () => {
    const k = provisioned();
    // The blank keyfob's write: open (1), the flush at close (2), rename NAME.new -> NAME (3);
    // then the read-back tries the roll-forward rename (4).
    k.emu.flash.failAtWrite(3);
    k.emu.flash.failAtWrite(4);
    expect(lock(k)).toBe(P.STATUS_FLASH_ERROR);
    k.emu.flash.disarm();
    expect(k.info()).toMatchObject({ state: P.STATE_ERROR, reason: P.REASON_FLASH_WRITE });
    expect(k.press()).toBe("Err  05");
    expect(recordFiles(k)).toEqual([RECORD + ".new"]);
    k.emu.powerCut();
    k.boot();
    expect(k.info().state).toBe(P.STATE_LOCKED);
    expect(recordFiles(k)).toEqual([RECORD]);

    const j = provisioned();
    j.emu.flash.failAtWrite(3);
    j.emu.flash.failAtWrite(4);
    expect(lock(j)).toBe(P.STATUS_FLASH_ERROR);
    j.emu.flash.disarm();
    expect(j.info().state).toBe(P.STATE_ERROR);
    expect(lock(j)).toBe(P.STATUS_OK);
    expect(j.info()).toMatchObject({ state: P.STATE_LOCKED, reason: 0 });
    expect(recordFiles(j)).toEqual([RECORD]);
  });
});
