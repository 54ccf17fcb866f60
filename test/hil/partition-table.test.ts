/**
 * The SPIFFS partition comes from the build's partition table
 * (nodemcu-build/sdkconfig.fobkit CONFIG_PARTITION_TABLE_CUSTOM_FILENAME ->
 * nodemcu-build/partitions-fobkit.csv; NodeMCU's own table when a fragment
 * names none, its sdkconfig.defaults:5-6 and components/platform/partitions.csv
 * at 7c5bb151): its capacity and the cost of every name lookup follow the
 * partition's blocks (hil/flash.ts), a table the emulator cannot model is
 * refused, and an image the partition cannot take is not installed.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Emulator } from "../../hil/emulator.js";
import { installFits, spiffsGeometry, spiffsWritePages } from "../../hil/flash.js";
import { CMAKE_LFS_BYTES, loadNodemcuBuild, parseNodemcuBuild } from "../../hil/nodemcu-build.js";
import { IMAGE, ROOT } from "../support/paths.js";
import { tempDir } from "./support.js";

const KEYFOB_BUILD = join(ROOT, "nodemcu-build", "sdkconfig.fobkit");
const KEYFOB_TABLE = join(ROOT, "nodemcu-build", "partitions-fobkit.csv");

/** The keyfob's build in a directory of its own, with a partition table edited by `table`. */
function variant(table: (csv: string) => string, build: (text: string) => string = (t) => t): string {
  const dir = tempDir("partition-");
  writeFileSync(join(dir, "sdkconfig.fobkit"), build(readFileSync(KEYFOB_BUILD, "utf8")));
  writeFileSync(join(dir, "partitions-fobkit.csv"), table(readFileSync(KEYFOB_TABLE, "utf8")));
  return join(dir, "sdkconfig.fobkit");
}

const withStorage = (size: string) => (csv: string) => csv.replace(/^(storage,.*,\s*)0x[0-9a-f]+$/m, `$1${size}`);

describe("the SPIFFS partition the build mounts", () => {
  it("NodeMCU's own table when the fragment names none: 0x70000, 112 blocks, 1651 pages, a lookup 112 reads (12.32 ms)", () => {
    const b = parseNodemcuBuild("CONFIG_IDF_TARGET_ESP32=y\n", "/nowhere/sdkconfig.test");
    expect(b.partitionTable).toBe("components/platform/partitions.csv");
    expect(b.spiffs).toEqual({ partitionBytes: 0x70000, blocks: 112, totalPages: 1651, lookupMs: expect.closeTo(12.32, 9), mountMs: expect.closeTo(36.96, 9) });
  });

  it("the keyfob's table: 0x50000, 80 blocks, 1171 pages, a lookup 80 reads (8.8 ms), and the emulator charges that", () => {
    const b = loadNodemcuBuild();
    expect(b.partitionTable).toBe("components/platform/partitions-fobkit.csv");
    expect(b.spiffs).toEqual({ partitionBytes: 0x50000, blocks: 80, totalPages: 1171, lookupMs: expect.closeTo(8.8, 9), mountMs: expect.closeTo(26.4, 9) });
    const emu = new Emulator({ stateDir: tempDir("partition-emu-"), countInstructions: false });
    expect(emu.flash.geometry).toEqual(b.spiffs);
    const before = emu.flash.calls.get("open-read")?.ms ?? 0;
    emu.flash.chargeLookup();
    expect(emu.flash.calls.get("open-read")!.ms - before).toBeCloseTo(8.8, 9);
    emu.close();
  });

  it("the label NODEMCU_DEFAULT_SPIFFS_LABEL names picks its partition; without one, the first data/spiffs partition", () => {
    const two = (csv: string) => csv + "spare,         data, spiffs,         , 0x20000\n";
    expect(loadNodemcuBuild(variant(two)).spiffs.partitionBytes).toBe(0x50000);
    const labelled = variant(two, (t) => t + '\nCONFIG_NODEMCU_DEFAULT_SPIFFS_LABEL="spare"\n');
    expect(loadNodemcuBuild(labelled).spiffs.partitionBytes).toBe(0x20000);
  });

  it("refuses a table it cannot model, naming the file and what is wrong", () => {
    expect(() => loadNodemcuBuild(variant(withStorage("0x50800")))).toThrow(/partitions-fobkit\.csv.*4096-byte blocks/);
    expect(() => loadNodemcuBuild(variant((csv) => csv.replace(/^storage.*$/m, "")))).toThrow(/no data\/spiffs partition/);
    expect(() => loadNodemcuBuild(variant((csv) => csv.replace(/^storage.*$/m, "storage, data, spiffs")))).toThrow(/partitions-fobkit\.csv:\d+: not a partition line/);
    expect(() => loadNodemcuBuild(variant((csv) => csv, (t) => t.replace(/^(CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=.*)partitions-fobkit/m, "$1partitions-other")))).toThrow(/partitions-other\.csv.*cannot be read/);
    expect(() => loadNodemcuBuild(variant((csv) => csv, (t) => t.replace("CONFIG_PARTITION_TABLE_CUSTOM=y", "CONFIG_PARTITION_TABLE_CUSTOM=n")))).toThrow(/CONFIG_PARTITION_TABLE_CUSTOM=n/);
  });
});

describe("the LFS partition the firmware's build records (components/modules/CMakeLists.txt:250-257)", () => {
  it("NodeMCU's CMake reads it from its own partitions.csv, not ours: the keyfob's table must have the same lfs partition, or the emulator refuses the build", () => {
    expect(CMAKE_LFS_BYTES).toBe(0x10000);
    expect(loadNodemcuBuild().lfsBytes).toBe(CMAKE_LFS_BYTES);
    const lfs = (size: string) => (csv: string) => csv.replace(/^(lfs,.*,\s*)0x[0-9a-f]+$/m, `$1${size}`);
    expect(() => loadNodemcuBuild(variant(lfs("0x20000")))).toThrow(/LFS partition 0x20000, but NodeMCU's build takes BUILDINFO_LFS_SIZE from its own components\/platform\/partitions\.csv \(lfs 0x10000; components\/modules\/CMakeLists\.txt:250-257\)/);
    expect(() => loadNodemcuBuild(variant((csv) => csv.replace(/^lfs,.*$/m, "")))).toThrow(/LFS partition none/);
    // The same size written another way is the same partition.
    expect(loadNodemcuBuild(variant(lfs("64K"))).lfsBytes).toBe(0x10000);
  });
});

describe("an install the partition cannot take is refused", () => {
  it("pages a written file consumes: its header, its data pages, a header copy per append of at most 128 bytes", () => {
    expect(spiffsWritePages(0)).toBe(1);
    expect(spiffsWritePages(128)).toBe(3);
    expect(spiffsWritePages(251)).toBe(4);
    expect(spiffsWritePages(1000)).toBe(1 + 4 + 8);
  });

  it("the keyfob's image fits its table; a smaller partition refuses it before writing anything, naming why", () => {
    expect(new Emulator({ stateDir: tempDir("partition-fit-"), imagePath: IMAGE, countInstructions: false }).flash.list().size).toBeGreaterThan(0);
    // Room for every file at once, not for the install's pages with 4 blocks kept free: SPIFFS would collect garbage.
    const gc = tempDir("partition-gc-");
    expect(() => new Emulator({ stateDir: gc, imagePath: IMAGE, countInstructions: false, build: variant(withStorage("0x30000")) })).toThrow(/garbage-collect/);
    expect(() => new Emulator({ stateDir: tempDir("partition-small-"), imagePath: IMAGE, countInstructions: false, build: variant(withStorage("0x10000")) })).toThrow(/needs \d+ pages at once.*holds 211/);
    expect(installFits([1000], spiffsGeometry(0x10000))).toBeUndefined();
  });
});

describe("a restart's SPIFFS mount", () => {
  it("reads three times a block, not once: the block's magic and erase count (uncached, spiffs_nucleus.c:366 and :383 at 0dbb3f71) and its lookup page (the scan's visitor, :426)", async () => {
    const { restartDelayMs } = await import("../../hil/emulator.js");
    const { ESP32_BOOT_MS } = await import("../../host/flash/init-lua.js");
    const { SPIFFS_READ_US } = await import("../../hil/flash.js");
    const g = spiffsGeometry(0x50000);
    // ROM to app_main, NodeMCU's start (docs/power.md:275), then SPIFFS_mount's 240 reads at 110 us.
    expect(restartDelayMs(g)).toBe(ESP32_BOOT_MS + 20 + Math.ceil((3 * g.blocks * SPIFFS_READ_US) / 1000));
    expect(restartDelayMs(g)).toBe(347);
  });
});

describe("installFits holds every write against SPIFFS's other GC trigger: one write not shorter than the free pages (spiffs_gc.c:118-119)", () => {
  it("a write as long as the free pages' bytes (less its meta page) is refused on a partition with blocks to spare; a shorter one fits", () => {
    const g = spiffsGeometry(0x10000);
    // 16 blocks: 210 countable pages; a 1000-byte file and LOCK's commit consume 13 + 10 + 1 = 24 pages,
    // 2 blocks, so 14 stay wholly free: the free-block condition alone would let it through.
    expect(installFits([1000], g)).toBeUndefined();
    const free = 210 - 24;
    expect(installFits([1000], g, free * 251 - 251 - 1)).toBeUndefined();
    expect(installFits([1000], g, free * 251 - 251)).toMatch(/single write of 46435 bytes.*186 free pages.*spiffs_gc\.c:118-119/);
  });

  it("the page map agrees: that write collects garbage though 14 blocks are wholly free", async () => {
    const { SpiffsPageMap } = await import("../../hil/spiffs-gc.js");
    const m = SpiffsPageMap.format(16);
    m.writeWhole("a", 1000);
    m.create("b");
    const s = m.stats();
    expect(s.freeBlocks).toBeGreaterThan(3);
    try {
      m.append("b", s.freePages * 251 - 251);
    } catch (e) {
      // Whether it then fits is the collector's business; that it ran is the point.
      expect((e as Error).message).toMatch(/SPIFFS_ERR_FULL/);
    }
    expect(m.work.runs).toBeGreaterThan(0);
  });
});

describe("installFits counts every page the install consumes", () => {
  it("init.lua's rename from init.lua.part (flasher.ts _fk.fin) writes a new index header page too (spiffs_object_update_index_hdr)", () => {
    // 16 blocks: at most 12 may be consumed, 180 pages. A file that consumes 170, LOCK's commit 10:
    // exactly 180 without the rename, 181 with it.
    expect(spiffsWritePages(14209)).toBe(170);
    expect(installFits([14209], spiffsGeometry(0x10000))).toMatch(/consume 181 pages \(13 blocks\)/);
  });
});
