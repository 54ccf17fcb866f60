/**
 * A failed flash write never costs the keyfob its record. SPIFFS fails
 * writes when it is full (ENOSPC), and newlib's 128-byte FILE buffer makes
 * the failure show at f:close() (hil/nodemcu/file.ts); the store
 * (firmware/board/flash-store.ts) must check write and close and read the
 * new file back before it may replace the old one.
 *
 * For each command that writes the record and each way a write fails, on the
 * real image in the emulator: the command is refused with FLASH_ERROR, the
 * record file is byte for byte what it was, nothing is left to be rolled
 * forward, the keyfob keeps answering, and after a power cycle it is the
 * keyfob it was.
 */
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
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

function provisioned(): TestKeyfob {
  const k = new TestKeyfob().boot();
  keyfobs.push(k);
  expect(k.provision(SEED, "FK00000100", 1_764_000_000 + 3600, false)).toEqual([0, 0, 0]);
  return k;
}

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

const commands: [string, (k: TestKeyfob) => Record<string, unknown>][] = [
  ["SET_SERIAL", () => ({ cmd: P.CMD_SET_SERIAL, serial: ascii("FK00000999") })],
  ["WRITE_SEED", () => ({ cmd: P.CMD_WRITE_SEED, algorithm: 2, digits: 8, period: 60, seed: ascii("abcdefghijabcdefghijabcdefghij12") })],
  ["LOCK", () => ({ cmd: P.CMD_LOCK, serial: ascii("FK00000100") })],
];

describe("a failed record write leaves the previous record intact and the keyfob answering", () => {
  for (const how of ["flash-full", "close-error", "almost-full"] as Failure[]) {
    for (const [name, req] of commands) {
      it(`${name} with ${how}`, () => {
        const k = provisioned();
        const before = k.info();
        const rec = readFileSync(join(k.stateDir, RECORD));
        breakFlash(k, how);
        expect(k.request(req(k)).status).toBe(P.STATUS_FLASH_ERROR);
        expect(readFileSync(join(k.stateDir, RECORD))).toEqual(rec);
        expect(readdirSync(k.stateDir).filter((f) => f.startsWith(RECORD + "."))).toEqual([]);
        expect(k.info()).toBeDefined(); // still answering
        heal(k, how);
        k.emu.powerCut();
        k.boot();
        const after = k.info();
        expect(after).toEqual({ ...before, timeHi: after.timeHi, timeLo: after.timeLo });
      });
    }
  }

  it("the record survives even a failure at every single flash operation of a write (each one failing in turn)", () => {
    const k = provisioned();
    const rec = readFileSync(join(k.stateDir, RECORD));
    // SPIFFS write operations of one record write: open, flushes, removes, renames.
    let failedSomewhere = 0;
    for (let n = 1; n <= 12; n++) {
      k.emu.flash.failAtWrite(n);
      const st = k.request({ cmd: P.CMD_SET_SERIAL, serial: ascii("FK00000100") }).status;
      k.emu.flash.disarm();
      if (st !== P.STATUS_OK) failedSomewhere++;
      k.emu.powerCut();
      k.boot(); // a failed second rename is rolled forward here (flash-store.ts header)
      expect(k.info()).toMatchObject({ state: P.STATE_PROVISIONED });
      expect(readFileSync(join(k.stateDir, RECORD))).toEqual(rec); // same serial: same bytes either way
    }
    expect(failedSomewhere).toBeGreaterThan(2);
  });
});
