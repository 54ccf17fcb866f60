/**
 * SPIFFS's garbage collection, modelled from its source (hil/spiffs-gc.ts:
 * pellepl/spiffs 0dbb3f71 as ESP-IDF e7771c75 vendors it), and what the
 * firmware does on a worn partition.
 *
 * A keyfob whose SPIFFS was written before without a format (an install
 * over an install) garbage-collects inside LOCK: spiffs_gc_check erases a
 * block (up to 500 ms, hil/flash.ts SPIFFS_ERASE_MS) and moves live pages
 * before the write may go on. The page map lives in the state directory, so
 * the wear survives the emulator's restarts as flash does.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ascii, P, TestKeyfob } from "../support/keyfob.js";
import { nodeBuild } from "../support/paths.js";

const gc = await nodeBuild<typeof import("../../hil/spiffs-gc.js")>("hil/spiffs-gc.js");
const flashMod = await nodeBuild<typeof import("../../hil/flash.js")>("hil/flash.js");
const { SpiffsPageMap, SpiffsFull, DATA_PAGE_BYTES } = gc;

const RECORD = "token.rec";
const SEED = ascii("12345678901234567890");
const SERIAL = "FK00000777";
const keyfobs: TestKeyfob[] = [];
afterEach(() => {
  while (keyfobs.length) keyfobs.pop()!.close();
});

/** Files of one page each (an empty create) until SPIFFS's free-block counter reads `blocks`. */
function fillTo(m: InstanceType<typeof SpiffsPageMap>, blocks: number, prefix = "f"): number {
  let i = 0;
  while (m.stats().freeBlocks > blocks) m.create(`${prefix}${i++}`);
  return i;
}

describe("spiffs_gc_check runs exactly where the source says (spiffs_gc.c:118-131)", () => {
  it("no collection while more than 3 blocks are wholly free; the first create with 3 left erases a block", () => {
    const m = SpiffsPageMap.format(16);
    fillTo(m, 4);
    // Any number of creates while 4 blocks stay wholly free: none collects.
    expect(m.work.erases).toBe(0);
    // Take the last entry before a fifth block would be touched, then the block's entry 0: 3 free.
    while (m.stats().freeBlocks === 4) m.create(`g${m.stats().allocated}`);
    expect(m.stats().freeBlocks).toBe(3);
    expect(m.work.erases).toBe(0);
    // The creates so far left no deleted page: the collector can only erase (oldest erase count wins).
    for (let i = 0; i < 40; i++) m.remove(`f${i}`);
    const before = m.work.erases;
    m.create("next");
    expect(m.work.erases).toBeGreaterThan(before);
    expect(m.stats().freeBlocks).toBeGreaterThan(2);
  });

  it("a single write longer than the free pages collects even with more than 3 blocks free (the second condition of :118-119)", () => {
    const m = SpiffsPageMap.format(16);
    // 14 x 15 = 210 countable pages. Write 60 pages' worth (and a header copy per cached append)
    // and delete it: deleted pages, 4 or more blocks still wholly free, no collection yet.
    m.writeWhole("old", 60 * DATA_PAGE_BYTES);
    m.remove("old");
    m.create("big");
    const s = m.stats();
    expect(s.freeBlocks).toBeGreaterThan(3);
    // One append whose length plus the meta page reaches the free pages' bytes.
    const len = s.freePages * DATA_PAGE_BYTES;
    expect(m.work.erases).toBe(0);
    m.append("big", len);
    expect(m.work.erases).toBeGreaterThan(0);
    expect(m.size("big")).toBe(len);
  });

  it("SPIFFS_ERR_FULL when the pages needed exceed free plus deleted, and nothing is erased for it (:128-131)", () => {
    const m = SpiffsPageMap.format(16);
    m.create("a");
    const s = m.stats();
    expect(() => m.append("a", (s.freePages + s.deleted + 1) * DATA_PAGE_BYTES)).toThrow(SpiffsFull);
    expect(m.work.erases).toBe(0);
  });

  it("the collector moves a block's live pages out before it erases it, and picks by score (deleted x 5 - used + age x 50)", () => {
    const m = SpiffsPageMap.format(8);
    // Block 0: a file of 7 data pages (+ header) and a deleted one; then fill to the threshold.
    m.writeWhole("keep", 7 * DATA_PAGE_BYTES);
    m.writeWhole("gone", 6 * DATA_PAGE_BYTES);
    m.remove("gone");
    fillTo(m, 3, "x");
    const keepBefore = m.pagesOf("keep").map((p) => p.block);
    expect(new Set(keepBefore)).toEqual(new Set([0]));
    // Block 0 has erase count 0, the oldest: it wins, and its live pages move.
    m.create("trigger");
    expect(m.work.moves).toBeGreaterThanOrEqual(8);
    expect(m.pagesOf("keep").every((p) => p.block !== 0)).toBe(true);
    expect(m.pagesOf("keep").length).toBe(1 + 7);
    expect(m.size("keep")).toBe(7 * DATA_PAGE_BYTES);
    expect(m.stats().wholeFreeBlocks).toBeGreaterThan(0);

    // The map saved and mounted again: the same pages; the cursor back at block 0 (hydrogen.c:90), so the
    // erased block 0 is where the remounted partition writes next, while the running one goes on past it.
    const again = SpiffsPageMap.fromJSON(m.toJSON(), 8)!;
    expect(again.pagesOf("keep")).toEqual(m.pagesOf("keep"));
    expect(SpiffsPageMap.fromJSON(m.toJSON(), 9)).toBeUndefined();
    again.create("p");
    m.create("p");
    expect(again.pagesOf("p")[0]).toMatchObject({ block: 0, entry: 0 });
    expect(m.pagesOf("p")[0].block).not.toBe(0);
  });
});

describe("the emulated board's SPIFFS wears and collects", () => {
  it("the page map is kept in the state directory across emulator restarts", () => {
    const k = new TestKeyfob().boot();
    keyfobs.push(k);
    expect(k.provision(SEED, SERIAL, 1_764_000_000 + 3600)).toEqual([0, 0, 0, 0]);
    const stats = k.emu.flash.pages.stats();
    expect(existsSync(join(k.stateDir, gc.SPIFFS_PAGE_MAP_FILE))).toBe(true);
    k.close();
    keyfobs.pop();
    const again = new TestKeyfob({ stateDir: k.stateDir });
    keyfobs.push(again);
    expect(again.emu.flash.pages.stats()).toEqual(stats);
    // Not a SPIFFS file: the firmware's file.list does not see it.
    expect([...again.emu.flash.list().keys()]).not.toContain(gc.SPIFFS_PAGE_MAP_FILE);
  });

  it("LOCK on a worn SPIFFS garbage-collects (a block erase, 500 ms on the slow side), commits the record whole, and the keyfob is locked", () => {
    const k = new TestKeyfob({ spiffsWorn: true }).boot();
    keyfobs.push(k);
    expect(k.emu.flash.pages.stats().freeBlocks).toBeLessThanOrEqual(3);
    expect(k.provision(SEED, SERIAL, 1_764_000_000 + 3600, false)).toEqual([0, 0, 0]);
    const before = k.emu.flash.calls.get("gc")?.ms ?? 0;
    const erases = k.emu.flash.pages.work.erases;
    expect(k.request({ cmd: P.CMD_LOCK, serial: ascii(SERIAL) }).status).toBe(P.STATUS_OK);
    expect(k.emu.flash.pages.work.erases).toBeGreaterThan(erases);
    const gcMs = (k.emu.flash.calls.get("gc")?.ms ?? 0) - before;
    expect(gcMs).toBeGreaterThanOrEqual(flashMod.SPIFFS_ERASE_MS);
    expect(readdirSync(k.stateDir).filter((f) => f.startsWith(RECORD))).toEqual([RECORD]);
    k.emu.powerCut();
    k.boot();
    expect(k.info().state).toBe(P.STATE_LOCKED);
    expect(k.press()).toMatch(/^\d{8}$/);
  });

  it("a power cut at every flash write of that LOCK leaves the keyfob blank (staged in RAM) or locked, never broken", () => {
    for (let n = 1; ; n++) {
      const k = new TestKeyfob({ spiffsWorn: true }).boot();
      keyfobs.push(k);
      expect(k.provision(SEED, SERIAL, 1_764_000_000 + 3600, false)).toEqual([0, 0, 0]);
      k.emu.powerCutAtWrite(n);
      k.sendRaw(P.encodeRequest({ rid: 99, cmd: P.CMD_LOCK, serial: ascii(SERIAL) }));
      const cut = !k.emu.powered;
      if (cut) k.boot();
      const state = k.info().state;
      expect([P.STATE_BLANK, P.STATE_LOCKED]).toContain(state);
      if (state === P.STATE_LOCKED) expect(k.press()).toMatch(/^\d{8}$/);
      k.close();
      keyfobs.pop();
      if (!cut) break; // LOCK finished before the n-th write: every write has been cut once
      expect(n).toBeLessThan(20);
    }
  });
});
