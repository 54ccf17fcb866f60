/**
 * SPIFFS as files in a state directory, with power-cut injection.
 *
 * SPIFFS is flat: a name is one object. NodeMCU registers it with
 * base_path "" (components/base_nodemcu/user_main.c:138-139), so ESP-IDF's
 * VFS hands SPIFFS the path exactly as Lua gave it (esp-idf 5.1.3
 * components/vfs/vfs.c:308-316 translate_path strips the empty prefix; only
 * "" itself becomes "/"), and SPIFFS compares whole names (pellepl/spiffs
 * spiffs_nucleus.c, strcmp of the object name). So "/x" and "x" are two
 * different files, and "a/b" is one flat name with a "/" in it. A name is at
 * most 31 bytes (CONFIG_SPIFFS_OBJ_NAME_LEN 32 with the NUL; a longer one
 * fails with SPIFFS_ERR_NAME_TOO_LONG, ENAMETOOLONG in esp_spiffs.c:495-496).
 * In the state directory each name is one file: "%", "/" and a leading "."
 * are written %25, %2F and %2E (list() and the tests see SPIFFS's names).
 *
 * Every mutating operation is one numbered "flash write": open for writing
 * (create/truncate), each write call, remove, rename. A power cut can be armed
 * at write number N (counting from 1 after arming). What the cut leaves
 * behind follows SPIFFS:
 * - write: a prefix of the data (half, rounded down) reached flash;
 * - open for writing: the file exists, truncated/created, empty;
 * - remove: SPIFFS frees pages from the end, so the file is left short
 *   (half its length) under its name;
 * - rename: SPIFFS rewrites only the index header page, so the rename either
 *   happened or not; the cut falls before it.
 * Rename fails, like SPIFFS_rename, when the new name exists.
 *
 * Capacity. The SPIFFS partition is the build's (hil/nodemcu-build.ts reads
 * its partition table: the keyfob's nodemcu-build/partitions-fobkit.csv,
 * 0x50000 bytes; NodeMCU's default, components/platform/partitions.csv:7 at
 * 7c5bb151, 0x70000). ESP-IDF's SPIFFS uses 4 KB blocks and 256-byte pages,
 * so a partition of B blocks has 16 pages a block, one of them the block's
 * object lookup page. SPIFFS_info (pellepl/spiffs spiffs_hydrogen.c:1164-1178
 * at 0dbb3f71, the formula at :1175) counts (B - 2) * (16 - 1) + 1 data pages
 * (two blocks spare for garbage collection, one emergency page; 1651 for
 * NodeMCU's 112 blocks, 1171 for the keyfob's 80), each carrying 256 - 5 (page
 * header, spiffs_nucleus.h:483-490) = 251 bytes (spiffsGeometry).
 * A file takes one object index header page plus one data page per 251
 * bytes, and one more index page per further 124 data pages once the
 * header's 103 entries are used (spiffs_nucleus.h:246-251 SPIFFS_OBJ_HDR_IX_LEN,
 * SPIFFS_OBJ_IX_LEN, at 0dbb3f71; the header struct :493-512 with ESP-IDF's
 * 32-byte names and 4-byte meta). A write that would need more pages than are free fails
 * with ENOSPC and writes nothing. The "flash-full" fault leaves no free page.
 *
 * Time. SPIFFS on the ESP32 is slow and blocks the Lua task while it works:
 * creating, writing and closing a small file took 156 ms on an ESP32
 * (espressif/arduino-esp32 issue 1597), NodeMCU's open/write/close of a
 * small file 15 ms (pellepl/spiffs issue 185, pjsg), and sustained writes
 * about 6 ms per KB (arduino-esp32 issue 1360: 262,144 bytes in 1,546 ms).
 * Every operation adds its cost to busyMs (the low end of those figures,
 * so the emulator is never faster than a board); the emulator holds the
 * firmware's next UART output back by that long. Sources per figure:
 * - open for writing 15 ms + 6 ms per KB written (at least 1): pjsg's 15 ms
 *   for a whole open/write/close of a small file, with the per-KB rate of
 *   the 262,144-byte run; measured figures.
 * - rename 15 ms, remove 15 ms: ESTIMATES. No measurement of SPIFFS_rename
 *   or SPIFFS_remove on an ESP32 was found. Each does at least what makes
 *   the small-file open cost: it looks the name up by scanning every
 *   block's object lookup page and reading the index headers it finds
 *   (spiffs_object_find_object_index_header_by_name in pellepl/spiffs
 *   spiffs_nucleus.c; the lookup dominates file creation, pellepl/spiffs
 *   issue 267), then programs at least one page (rename: a new index header
 *   page and the old one marked deleted; remove: every page marked deleted).
 *   So each is modelled at the small-file open's 15 ms. A board may well be
 *   faster; that would shorten the station's figure, not lengthen it.
 * - open for reading: the name lookup, one flash read per block at 110 us
 *   (112 blocks: 12.3 ms; the keyfob's 80: 8.8 ms), then 110 us per data page
 *   read; a refused rename pays the lookup (SPIFFS_READ_US below, measured).
 *   The 15 ms figures above were measured on NodeMCU's default partition and
 *   are kept as they are on a smaller one: no source shows how they scale.
 *
 * Garbage collection is modelled (hil/spiffs-gc.ts, SPIFFS's page map in
 * the state directory): every create, append, truncate, remove and rename
 * goes through the page map, and spiffs_gc_check collects where SPIFFS's
 * source does (spiffs_gc.c:118-131 at 0dbb3f71: at most 3 blocks wholly
 * free, or one write not shorter than the free pages), each collected block
 * costing a sector erase (SPIFFS_ERASE_MS) and its live pages' moves
 * (SPIFFS_MOVE_MS), charged as "gc". The capacity check above stays as
 * well: a write fails when either says SPIFFS is full. A freshly installed
 * keyfob's provisioning must not collect (installFits holds an install to
 * that, with a bound on the pages each written file consumes:
 * spiffsWritePages); a board written before without a format does
 * (fobkit emu --spiffs-worn).
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { OBJ_HDR_IX_LEN, OBJ_IX_LEN, SPIFFS_PAGE_MAP_FILE, SpiffsFull, SpiffsPageMap, type GcWork } from "./spiffs-gc.js";

export const SPIFFS_NAME_MAX = 31;

export type FlashOp = "open" | "write" | "remove" | "rename";

/** What paid for SPIFFS time (FlashStore.calls). */
export type FlashCallKind =
  | "exists"
  | "list"
  | "open-read"
  | "load"
  | "read"
  | "open-write"
  | "write"
  | "remove"
  | "remove-missing"
  | "rename"
  | "rename-refused"
  | "gc";

/** Result of a mutating operation: done, failed (like the device would), no space (ENOSPC), or cut (power gone). */
export type FlashResult = "ok" | "fail" | "full" | "cut";

/** NodeMCU's default partition table (components/platform/partitions.csv:7 at 7c5bb151): storage, data, spiffs, 0x70000. */
export const NODEMCU_SPIFFS_PARTITION_BYTES = 0x70000;
export const SPIFFS_PAGE_BYTES = 256;
export const SPIFFS_BLOCK_BYTES = 4096;
/** 256 - sizeof(spiffs_page_header) (obj_id u16, span_ix u16, flags u8). */
export const SPIFFS_DATA_PAGE_BYTES = SPIFFS_PAGE_BYTES - 5;
/** Pages of a block that hold data: all but its object lookup page. */
export const SPIFFS_DATA_PAGES_PER_BLOCK = SPIFFS_BLOCK_BYTES / SPIFFS_PAGE_BYTES - 1;

/** What the partition's size decides (see the header). */
export interface SpiffsGeometry {
  partitionBytes: number;
  blocks: number;
  /** SPIFFS_info: (blocks - 2) * (pages per block - lookup pages) + 1. */
  totalPages: number;
  /** A name lookup: one flash read of every block's lookup page (SPIFFS_READ_US each). */
  lookupMs: number;
  /**
   * SPIFFS_mount's scan (spiffs_obj_lu_scan, pellepl/spiffs spiffs_nucleus.c
   * at 0dbb3f71): per block, its magic (:366, SPIFFS_USE_MAGIC: on in ESP-IDF's
   * default config) and its erase count (:383), each read straight from flash
   * (SPIFFS_OP_T_OBJ_LU2 bypasses the cache, spiffs_cache.c:144-146), then the
   * lookup pass over every block's lookup page (:426): three reads a block.
   */
  mountMs: number;
}

/** SPIFFS_mount's flash reads per block (SpiffsGeometry.mountMs): magic, erase count, lookup page. */
export const SPIFFS_MOUNT_READS_PER_BLOCK = 3;

export function spiffsGeometry(partitionBytes: number): SpiffsGeometry {
  if (!Number.isInteger(partitionBytes) || partitionBytes % SPIFFS_BLOCK_BYTES !== 0 || partitionBytes / SPIFFS_BLOCK_BYTES < 3) {
    throw new RangeError(`SPIFFS partition of ${partitionBytes} bytes: must be a whole number of ${SPIFFS_BLOCK_BYTES}-byte blocks, at least 3`);
  }
  const blocks = partitionBytes / SPIFFS_BLOCK_BYTES;
  return { partitionBytes, blocks, totalPages: (blocks - 2) * SPIFFS_DATA_PAGES_PER_BLOCK + 1, lookupMs: (blocks * SPIFFS_READ_US) / 1000, mountMs: (SPIFFS_MOUNT_READS_PER_BLOCK * blocks * SPIFFS_READ_US) / 1000 };
}
/** Data-page references in the object index header page, and in each further index page (spiffs_nucleus.h:246-250; hil/spiffs-gc.ts). */
const HDR_IX_ENTRIES = OBJ_HDR_IX_LEN;
const IX_ENTRIES = OBJ_IX_LEN;

/** Pages a file of `size` bytes occupies. */
export function spiffsPages(size: number): number {
  const data = Math.ceil(size / SPIFFS_DATA_PAGE_BYTES);
  return 1 + data + Math.ceil(Math.max(0, data - HDR_IX_ENTRIES) / IX_ENTRIES);
}

/** Cost of SPIFFS work in ms (see the header: open and per-KB measured, remove and rename estimated). */
export const SPIFFS_OPEN_MS = 15;
export const SPIFFS_MS_PER_KB = 6;
export const SPIFFS_REMOVE_MS = 15;
export const SPIFFS_RENAME_MS = 15;
/**
 * One flash page read by SPIFFS: 110 us, measured (espressif/esp-idf issue
 * #3277, igrr: stat() at best, 736 flash reads in 80,948 us). Finding a name
 * reads every block's object lookup page (spiffs_object_find_object_index_header_by_name,
 * pellepl/spiffs spiffs_nucleus.c): one read a block (SpiffsGeometry.lookupMs; 112 reads, 12.3 ms, on NodeMCU's default partition) before a file opened
 * for reading gives a byte; each data page read after that is one more.
 */
export const SPIFFS_READ_US = 110;
/**
 * One 4 KB sector erase, as garbage collection does one per block it
 * collects (spiffs_gc.c:168 -> spiffs_erase_block -> esp_partition_erase_range):
 * 500 ms, the slow side. ESP-IDF's generic flash driver waits
 * SPI_FLASH_GENERIC_SECTOR_ERASE_TIMEOUT_MS = 600 for it, "according to
 * GD25Q127(125°) + 100ms" (esp-idf e7771c75
 * components/spi_flash/spi_flash_chip_generic.c:62): the slowest sector erase
 * the driver is built to wait for is 500 ms. Typical chips erase a sector in
 * tens of ms; a board is never slower than this figure without the driver
 * reporting ESP_ERR_TIMEOUT.
 */
export const SPIFFS_ERASE_MS = 500;
/**
 * One live page moved by garbage collection (spiffs_page_move,
 * spiffs_nucleus.c:812-871: read the page, program it elsewhere, mark two
 * lookup entries): a page read (SPIFFS_READ_US) and 256 bytes programmed at
 * the measured sustained write rate (SPIFFS_MS_PER_KB).
 */
export const SPIFFS_MOVE_MS = SPIFFS_READ_US / 1000 + (SPIFFS_PAGE_BYTES * SPIFFS_MS_PER_KB) / 1024;

/**
 * How SPIFFS time splits into stretches with the flash cache off, each one
 * esp_flash call (ESP-IDF e7771c75, the one NodeMCU 7c5bb151 builds;
 * hil/README.md "Flash operations stop the console's RX ISR" has the chain):
 * spi1_start disables the cache and every interrupt not in IRAM
 * (spi_flash_os_func_app.c:104-126, cache_utils.c:152-202
 * esp_intr_noniram_disable) and spi1_end enables them again (:128-144).
 * - A read: one stretch per read call (esp_flash_api.c:885-905, chunks of
 *   up to 16 KB; SPIFFS reads at most a page a call): SPIFFS_READ_US each,
 *   the whole of its measured cost (strict: the board spends part of it
 *   with the cache on).
 * - A page program: esp_flash_write keeps the cache off for its whole
 *   chunk (:1060-1099, CONFIG_SPI_FLASH_WRITE_CHUNK_SIZE 8192 by default),
 *   every 64-byte program inside waiting for the chip busy-polling
 *   (spi_flash_chip_generic.c:258-275, :431-475 with delay_us =
 *   esp_rom_delay_us, spi_flash_os_func_app.c:175-179). SPIFFS writes a
 *   page or less per call: a "write" charge is one stretch per page's
 *   share of it (a write of up to a page, at least 1 ms, is one).
 * - open for writing, remove, rename: their name lookup as reads, the rest
 *   of their figure as ONE stretch (strict: the board programs an index
 *   page or two, and marks lookup entries, in several shorter calls).
 * - A sector erase: one stretch for the whole erase (esp_flash_api.c:656-698
 *   holds the cache off from the erase command through wait_idle's polling,
 *   spi_flash_chip_generic.c:173-197; CONFIG_SPI_FLASH_YIELD_DURING_ERASE
 *   only yields BETWEEN sectors, :648-653, and auto-suspend exists for the
 *   ESP32-C3 only, Kconfig:150-153).
 */
/** One page's share of the sustained write rate (SPIFFS_MS_PER_KB): 1.5 ms. */
const SPIFFS_PAGE_PROGRAM_MS = (SPIFFS_PAGE_BYTES * SPIFFS_MS_PER_KB) / 1024;

export function cacheOffStretches(kind: FlashCallKind, ms: number, g: SpiffsGeometry): number[] {
  const readMs = SPIFFS_READ_US / 1000;
  const reads = (total: number): number[] => {
    const n = Math.max(1, Math.round(total / readMs));
    return Array.from({ length: n }, () => total / n);
  };
  switch (kind) {
    case "open-write":
    case "remove":
    case "rename": {
      const lookup = Math.min(ms, g.lookupMs);
      return ms - lookup > 0 ? [...reads(lookup), ms - lookup] : reads(ms);
    }
    case "write": {
      // SPIFFS hands esp_flash at most a page a call (its data pages, spiffs_object_append), so a
      // long write (node.compile's .lc in one go here) is one stretch per page, not one for all.
      const n = Math.max(1, Math.floor(ms / SPIFFS_PAGE_PROGRAM_MS));
      return Array.from({ length: n }, () => ms / n);
    }
    case "gc":
      return [ms];
    default:
      return reads(ms);
  }
}

/** A GC's stretches (cacheOffStretches): its reads, each page move (a read, then a program), each sector erase. */
export function gcStretches(w: GcWork): number[] {
  const out: number[] = [];
  for (let i = 0; i < w.reads; i++) out.push(SPIFFS_READ_US / 1000);
  for (let i = 0; i < w.moves; i++) out.push(SPIFFS_READ_US / 1000, SPIFFS_MOVE_MS - SPIFFS_READ_US / 1000);
  for (let i = 0; i < w.erases; i++) out.push(SPIFFS_ERASE_MS);
  return out;
}

/** What a GC's work costs in ms: erases, page moves and the reads of lookup pages, erase counts and page headers. */
export function gcMs(w: GcWork): number {
  return w.erases * SPIFFS_ERASE_MS + w.moves * SPIFFS_MOVE_MS + (w.reads * SPIFFS_READ_US) / 1000;
}

/**
 * Pages SPIFFS consumes writing a file of `size` bytes through newlib
 * (hil/nodemcu/file.ts NEWLIB_BUFSIZ): an upper bound. Its index header, its
 * data pages, and a new copy of the header for each append that finds the
 * file non-empty (spiffs_object_append, spiffs_nucleus.c:1451-1456 at
 * 0dbb3f71: "modifying object index header page, update size and make new
 * copy"); newlib hands SPIFFS at least a full 128-byte buffer per write but
 * the last, so at most ceil(size / 128) appends. Files here stay within the
 * header's index entries (about 26 KB), so no further index pages.
 */
export function spiffsWritePages(size: number, bufsiz = 128): number {
  return 1 + Math.ceil(size / SPIFFS_DATA_PAGE_BYTES) + Math.ceil(size / bufsiz);
}

/**
 * The largest record LOCK commits: firmware/app/record.ts's layout with its
 * 255-byte serial and key fields (11 + 1 + 255 + 1 + 255) plus flash-store's
 * 4-byte envelope. Its commit writes NAME.new (spiffsWritePages) and renames
 * it (a new index header page).
 */
export const RECORD_MAX_BYTES = 527;
export const LOCK_COMMIT_PAGES = spiffsWritePages(RECORD_MAX_BYTES) + 1;
/**
 * The install's one rename, init.lua.part to init.lua (host/flash/flasher.ts
 * _fk.fin): a new copy of its index header page (SPIFFS_rename,
 * spiffs_hydrogen.c:949 at 0dbb3f71).
 */
export const INSTALL_RENAME_PAGES = 1;

/**
 * Whether files of these sizes, installed on a freshly formatted partition
 * (the sources and their bytecode all written, sources then removed), leave
 * room for LOCK's commit without garbage collection: undefined if so, else
 * why not. Live pages at the install's peak (every file at once) must fit
 * SPIFFS_info's capacity, every page the install and the commit consume
 * must leave more than 3 blocks wholly free, and no single write of them
 * (at most largestWrite bytes) may reach the free pages' bytes: either is
 * what makes spiffs_gc_check collect (spiffs_gc.c:118-121).
 */
export function installFits(sizes: number[], g: SpiffsGeometry, largestWrite = SPIFFS_CACHED_WRITE_BYTES): string | undefined {
  const live = sizes.reduce((n, s) => n + spiffsPages(s), 0) + 3 * spiffsPages(RECORD_MAX_BYTES);
  if (live > g.totalPages) return `the install needs ${live} pages at once, the ${g.partitionBytes}-byte SPIFFS partition holds ${g.totalPages}`;
  const consumed = sizes.reduce((n, s) => n + spiffsWritePages(s), 0) + INSTALL_RENAME_PAGES + LOCK_COMMIT_PAGES;
  const blocksUsed = Math.ceil(consumed / SPIFFS_DATA_PAGES_PER_BLOCK);
  if (blocksUsed > g.blocks - 4) {
    return `the install and LOCK's commit may consume ${consumed} pages (${blocksUsed} blocks): on ${g.blocks} blocks fewer than 4 stay wholly free, so SPIFFS would garbage-collect (spiffs_gc.c:118-121) before LOCK's commit`;
  }
  // spiffs_gc.c:118-119's other condition: GC also runs when one write is not shorter than the free
  // pages' bytes (free pages: 15 x (blocks - 2) - allocated - deleted, :113-115), the write counted
  // with one page more "for meta" (spiffs_object_append, spiffs_nucleus.c:1236). Free pages only
  // shrink until GC, so the last write (LOCK's) sees the fewest: every write is held against those.
  const freePages = SPIFFS_DATA_PAGES_PER_BLOCK * (g.blocks - 2) - consumed;
  const len = largestWrite + SPIFFS_DATA_PAGE_BYTES;
  if (len >= freePages * SPIFFS_DATA_PAGE_BYTES) {
    return `a single write of ${largestWrite} bytes (${len} with its meta page, spiffs_nucleus.c:1236) is not shorter than the ${freePages} free pages (${freePages * SPIFFS_DATA_PAGE_BYTES} bytes) left before LOCK's commit, so SPIFFS would garbage-collect for it (spiffs_gc.c:118-119)`;
  }
  return undefined;
}

/**
 * The longest single write SPIFFS sees from the firmware or the install:
 * newlib hands it at most BUFSIZ (128) bytes a call (hil/nodemcu/file.ts),
 * and SPIFFS's write cache (SPIFFS_CACHE_WR, spiffs_hydrogen.c:505-569 at
 * 0dbb3f71) collects writes shorter than a page into runs of at most one
 * page, which it appends in one go.
 */
export const SPIFFS_CACHED_WRITE_BYTES = SPIFFS_PAGE_BYTES;

/**
 * The page map of a state directory (SPIFFS_PAGE_MAP_FILE), or a freshly
 * formatted one, given to fn and saved after it: how an install or a wear
 * outside a running emulator writes SPIFFS's pages.
 */
export function withPageMap<T>(dir: string, g: SpiffsGeometry, fn: (pages: SpiffsPageMap) => T): T {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, SPIFFS_PAGE_MAP_FILE);
  const pages = (existsSync(file) ? SpiffsPageMap.fromJSON(readFileSync(file, "utf8"), g.blocks) : undefined) ?? SpiffsPageMap.format(g.blocks);
  const out = fn(pages);
  writeFileSync(file, pages.toJSON());
  return out;
}

/** A SPIFFS name as a file name in the state directory (see the header). */
export function toHostName(name: string): string {
  return name.replace(/%/g, "%25").replace(/\//g, "%2F").replace(/^\./, "%2E");
}

export function fromHostName(file: string): string {
  return file.replace(/%(25|2F|2E)/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

export class FlashStore {
  readonly dir: string;
  /** Mutating operations so far (all time). */
  writes = 0;
  private cutAt: number | undefined;
  /** Operation numbers armed to fail (failAtWrite). */
  private readonly failAt = new Set<number>();
  /** Milliseconds of SPIFFS work not yet paid for (see the header); the emulator takes it. */
  busyMs = 0;
  /**
   * The same busyMs as the flash calls it is made of, in order, each one
   * stretch with the flash cache off (cacheOffStretches explains the split;
   * the emulator takes them with busyMs, takeCacheOff): no interrupt outside
   * IRAM runs during one, the console's RX ISR among them (console-rx.ts).
   */
  private cacheOff: number[] = [];
  /**
   * The same SPIFFS time split by the call that paid it (count and ms per
   * kind, all time), so a benchmark can say where a keyfob's flash time
   * goes; the costs themselves are the ones above, unchanged.
   */
  readonly calls = new Map<FlashCallKind, { count: number; ms: number }>();
  private readonly faults: ReadonlySet<string>;
  /** Called after a cut operation left its partial effect. */
  onCut: (op: FlashOp, name: string) => void = () => {};

  /** The partition's size and what it decides (default NodeMCU's 0x70000). */
  readonly geometry: SpiffsGeometry;

  /**
   * SPIFFS's page map (hil/spiffs-gc.ts): which page of which block each
   * file's pages are on, which are deleted, and each block's erase count,
   * kept in the state directory (SPIFFS_PAGE_MAP_FILE) so a restart of the
   * emulator finds the partition as worn as it left it. Every create, append,
   * truncate, remove and rename goes through it, and so through SPIFFS's
   * garbage collection, whose flash work is charged as "gc" (gcMs).
   */
  readonly pages: SpiffsPageMap;
  /** GC work already charged. */
  private gcCharged: GcWork = { runs: 0, erases: 0, moves: 0, reads: 0 };
  /**
   * SPIFFS's write cache per open file (SPIFFS_CACHE_WR, ESP-IDF Kconfig
   * default y; spiffs_hydrogen.c:486-584 at 0dbb3f71): a write shorter than
   * a page is held while it continues the cached run within one page; the
   * run goes to the page map as one append when a write breaks it, and at
   * close. The bytes themselves are in the state directory at once
   * (Deviation: a power cut does not lose a cached run).
   */
  private readonly caches = new Map<string, { offset: number; size: number }>();

  /** faults: the emulator's live set ("flash-full" is read here). */
  constructor(dir: string, faults: ReadonlySet<string> = new Set(), geometry: SpiffsGeometry = spiffsGeometry(NODEMCU_SPIFFS_PARTITION_BYTES)) {
    this.dir = dir;
    this.faults = faults;
    this.geometry = geometry;
    mkdirSync(dir, { recursive: true });
    const mapFile = join(dir, SPIFFS_PAGE_MAP_FILE);
    this.pages = (existsSync(mapFile) ? SpiffsPageMap.fromJSON(readFileSync(mapFile, "utf8"), geometry.blocks) : undefined) ?? SpiffsPageMap.format(geometry.blocks);
    this.reconcile();
  }

  /**
   * SPIFFS_mount at a boot: SPIFFS's RAM state rebuilt from the page map
   * (free-block count, allocation cursor at block 0, largest erase count),
   * open files and their write caches gone. Files put into the state
   * directory by hand since are taken into the map (SpiffsPageMap.adopt).
   */
  mount(): void {
    this.caches.clear();
    this.pages.mount();
    this.reconcile();
  }

  /** The page map made to hold what the directory holds: unknown files adopted, vanished ones forgotten, resized ones re-adopted. */
  private reconcile(): void {
    const onDisk = this.list();
    for (const name of this.pages.names()) {
      const size = onDisk.get(name);
      if (size === undefined || size !== this.pages.size(name)) this.pages.forget(name);
    }
    for (const [name, size] of onDisk) {
      if (!this.pages.has(name)) this.pages.adopt(name, size);
    }
    // Not saved here: a mount writes nothing to flash. The next operation that does saves it.
  }

  /** Write the page map to the state directory (after every change: it is flash). */
  savePages(): void {
    writeFileSync(join(this.dir, SPIFFS_PAGE_MAP_FILE), this.pages.toJSON());
  }

  /** Run a page-map operation: false if SPIFFS is full (SPIFFS_ERR_FULL); GC's work is charged either way. */
  private spiffs(op: () => void): boolean {
    let ok = true;
    try {
      op();
    } catch (e) {
      if (!(e instanceof SpiffsFull)) throw e;
      ok = false;
    }
    const w = this.pages.work;
    const d: GcWork = { runs: w.runs - this.gcCharged.runs, erases: w.erases - this.gcCharged.erases, moves: w.moves - this.gcCharged.moves, reads: w.reads - this.gcCharged.reads };
    if (d.runs + d.erases + d.moves + d.reads > 0) this.charge("gc", gcMs(d), gcStretches(d));
    this.gcCharged = { ...w };
    this.savePages();
    return ok;
  }

  /** A file in the directory the page map does not know yet (a test's filler): taken in first. */
  private known(name: string): void {
    if (!this.pages.has(name) && this.exists(name)) this.pages.adopt(name, this.size(name));
  }

  /** The cached run of `name` to the page map (an append, or a rewrite of bytes it has). */
  private flushCache(name: string): boolean {
    const c = this.caches.get(name);
    this.caches.delete(name);
    if (c === undefined || c.size === 0) return true;
    return this.spiffsWrite(name, c.offset, c.size);
  }

  /** spiffs_hydro_write (spiffs_hydrogen.c:435-455): bytes within the file rewritten, the rest appended. */
  private spiffsWrite(name: string, offset: number, len: number): boolean {
    this.known(name);
    return this.spiffs(() => {
      const have = this.pages.size(name) ?? 0;
      if (offset < have) {
        const n = Math.min(have - offset, len);
        this.pages.modify(name, offset, n);
        len -= n;
      }
      if (len > 0) this.pages.append(name, len);
    });
  }

  /** A SPIFFS_write of len bytes at offset (spiffs_hydrogen.c:458-595): into the write cache, or through it. */
  private cacheWrite(name: string, offset: number, len: number): boolean {
    const c = this.caches.get(name);
    if (len < SPIFFS_PAGE_BYTES) {
      if (c !== undefined && offset >= c.offset && offset <= c.offset + c.size && offset + len <= c.offset + SPIFFS_PAGE_BYTES) {
        c.size = Math.max(c.size, offset - c.offset + len);
        return true;
      }
      if (!this.flushCache(name)) return false;
      this.caches.set(name, { offset, size: len });
      return true;
    }
    if (!this.flushCache(name)) return false;
    return this.spiffsWrite(name, offset, len);
  }

  /** What SPIFFS holds of a file after a failed write: the directory's copy cut back to it. */
  private cutBackTo(name: string): void {
    const have = this.pages.size(name);
    if (have !== undefined && this.exists(name) && this.size(name) > have) truncateSync(this.file(name), have);
  }

  /**
   * Wear the partition (SpiffsPageMap.wear): its files written again and
   * again without a format until every create or append must
   * garbage-collect first. Their contents stay; the work is history, not
   * charged. Returns the rounds it took.
   */
  wear(): number {
    const rounds = this.pages.wear();
    this.gcCharged = { ...this.pages.work };
    this.savePages();
    return rounds;
  }

  /** A close whose flush failed: SPIFFS's cached run never reaches flash. */
  abandon(name: string): void {
    if (!this.caches.delete(name)) return;
    this.cutBackTo(name);
  }

  /**
   * SPIFFS_close of a file open for writing: its cached run goes to flash
   * (an append, which may garbage-collect or find SPIFFS full). "full"
   * leaves the file as far as it reached flash.
   */
  close(name: string): FlashResult {
    if (!this.caches.has(name)) return "ok";
    if (this.flushCache(name)) return "ok";
    this.cutBackTo(name);
    return "full";
  }

  /** Pages in use by every file. */
  usedPages(): number {
    let n = 0;
    for (const size of this.list().values()) n += spiffsPages(size);
    return n;
  }

  /** Pages free now (none under the "flash-full" fault). */
  freePages(): number {
    if (this.faults.has("flash-full")) return 0;
    return Math.max(0, this.geometry.totalPages - this.usedPages());
  }

  /** Whether `name` can grow (or be created) to `size` bytes. */
  private fits(name: string, size: number): boolean {
    const now = this.exists(name) ? spiffsPages(this.size(name)) : 0;
    return spiffsPages(size) - now <= this.freePages();
  }

  /** The SPIFFS name for a path (the path itself; "" is "/"), or undefined if it is too long (see the header). */
  normalize(path: string): string | undefined {
    const name = path === "" ? "/" : path;
    if (name.length > SPIFFS_NAME_MAX || name.includes("\0")) return undefined;
    return name;
  }

  private file(name: string): string {
    return join(this.dir, toHostName(name));
  }

  /** Arm a power cut at the n-th mutating operation from now (n >= 1). */
  cutAtWrite(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`powerCutAtWrite: n must be an integer >= 1, got ${n}`);
    this.cutAt = this.writes + n;
  }

  /**
   * Make the n-th mutating operation from now fail as a flash error would
   * (n >= 1): open and write fail with EIO, rename returns false, remove
   * leaves the file (file.remove ignores unlink's error). Several may be
   * armed at once (a flash failing twice in a row).
   */
  failAtWrite(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`failAtWrite: n must be an integer >= 1, got ${n}`);
    this.failAt.add(this.writes + n);
  }

  disarm(): void {
    this.cutAt = undefined;
    this.failAt.clear();
  }

  get armed(): boolean {
    return this.cutAt !== undefined;
  }

  /** Count one operation; true if the power dies during it. */
  private tick(): boolean {
    this.writes++;
    if (this.cutAt !== undefined && this.writes === this.cutAt) {
      this.cutAt = undefined;
      return true;
    }
    return false;
  }

  /** Whether the operation about to be counted is the one armed to fail (failAtWrite); counts it if so. */
  private failing(): boolean {
    if (!this.failAt.delete(this.writes + 1)) return false;
    this.writes++;
    return true;
  }

  exists(name: string): boolean {
    return existsSync(this.file(name)) && statSync(this.file(name)).isFile();
  }

  size(name: string): number {
    return statSync(this.file(name)).size;
  }

  /** The cache-off stretches of the busyMs taken so far (sum: busyMs), and none left. */
  takeCacheOff(): number[] {
    const out = this.cacheOff;
    this.cacheOff = [];
    return out;
  }

  /** Add ms of SPIFFS work, attributed to kind; stretches: its cache-off split (default cacheOffStretches). */
  private charge(kind: FlashCallKind, ms: number, stretches: number[] = cacheOffStretches(kind, ms, this.geometry)): void {
    this.busyMs += ms;
    for (const t of stretches) this.cacheOff.push(t);
    const c = this.calls.get(kind);
    if (c === undefined) this.calls.set(kind, { count: 1, ms });
    else {
      c.count++;
      c.ms += ms;
    }
  }

  /** Opening a file to read (io.open "r", dofile, loadfile, require, node.compile), stat or a list entry: the name lookup. */
  chargeLookup(kind: FlashCallKind = "open-read"): void {
    this.charge(kind, this.geometry.lookupMs);
  }

  /** Reading n bytes of a file: one flash read per data page. */
  chargeRead(bytes: number): void {
    this.charge("read", (Math.ceil(bytes / SPIFFS_DATA_PAGE_BYTES) * SPIFFS_READ_US) / 1000);
  }

  read(name: string): Uint8Array | undefined {
    if (!this.exists(name)) return undefined;
    return new Uint8Array(readFileSync(this.file(name)));
  }

  list(): Map<string, number> {
    const out = new Map<string, number>();
    for (const n of readdirSync(this.dir).sort()) {
      // A SPIFFS name never starts a host name with "." (toHostName): those are the emulator's (the page map).
      if (n.startsWith(".")) continue;
      const p = join(this.dir, n);
      if (statSync(p).isFile()) out.set(fromHostName(n), statSync(p).size);
    }
    return out;
  }

  /** Create or truncate (truncate = "w" modes) a file for writing. */
  openWrite(name: string, truncate: boolean): FlashResult {
    this.charge("open-write", SPIFFS_OPEN_MS);
    // Creating needs the object index header page.
    if (!this.exists(name) && !this.fits(name, 0)) return "full";
    if (this.failing()) return "fail";
    // SPIFFS_open: create (spiffs_object_create) or, "w" of a file with data, truncate (spiffs_object_truncate).
    this.caches.delete(name);
    this.known(name);
    if (!this.spiffs(() => (this.pages.has(name) ? truncate && this.pages.truncate(name) : this.pages.create(name)))) return "full";
    const cut = this.tick();
    const fd = openSync(this.file(name), truncate ? "w" : "a");
    closeSync(fd);
    if (cut) this.onCut("open", name);
    return cut ? "cut" : "ok";
  }

  /** Write data at offset (append when offset is the file size). */
  write(name: string, offset: number, data: Uint8Array): FlashResult {
    this.charge("write", Math.max(1, Math.ceil((data.length * SPIFFS_MS_PER_KB) / 1024)));
    if (!this.fits(name, Math.max(this.exists(name) ? this.size(name) : 0, offset + data.length))) return "full";
    if (this.failing()) return "fail";
    if (!this.cacheWrite(name, offset, data.length)) {
      this.cutBackTo(name);
      return "full";
    }
    const cut = this.tick();
    const part = cut ? data.subarray(0, Math.floor(data.length / 2)) : data;
    const fd = openSync(this.file(name), "r+");
    try {
      writeSync(fd, part, 0, part.length, offset);
    } finally {
      closeSync(fd);
    }
    if (cut) this.onCut("write", name);
    return cut ? "cut" : "ok";
  }

  remove(name: string): FlashResult {
    if (!this.exists(name)) {
      // unlink's error is ignored, as file.remove does (file.c:92-98), but SPIFFS_remove
      // looked the name up to find it missing (spiffs_object_find_object_index_header_by_name).
      this.charge("remove-missing", this.geometry.lookupMs);
      return "ok";
    }
    this.charge("remove", SPIFFS_REMOVE_MS);
    if (this.failing()) return "fail";
    const cut = this.tick();
    if (cut) {
      truncateSync(this.file(name), Math.floor(this.size(name) / 2));
      this.onCut("remove", name);
      return "cut";
    }
    unlinkSync(this.file(name));
    this.caches.delete(name);
    this.spiffs(() => this.pages.remove(name));
    return "ok";
  }

  rename(from: string, to: string): FlashResult {
    // SPIFFS_rename (pellepl/spiffs spiffs_hydrogen.c:929-938 at 0dbb3f71) looks the old name up, and refuses
    // there if it is missing (one lookup); then the new name, refusing if it exists (SPIFFS_ERR_CONFLICTING_NAME:
    // two lookups).
    if (!this.exists(from)) {
      this.charge("rename-refused", this.geometry.lookupMs);
      return "fail";
    }
    if (this.exists(to)) {
      this.charge("rename-refused", this.geometry.lookupMs);
      this.charge("rename-refused", this.geometry.lookupMs);
      return "fail";
    }
    this.charge("rename", SPIFFS_RENAME_MS);
    if (this.failing()) return "fail";
    const cut = this.tick();
    if (cut) {
      this.onCut("rename", from);
      return "cut";
    }
    // SPIFFS_rename copies the index header page: an allocation, which fails on a partition with fewer
    // than 2 free blocks that gc_quick cannot help (spiffs_nucleus.c:456-464).
    this.known(from);
    if (!this.spiffs(() => this.pages.rename(from, to))) return "fail";
    const cached = this.caches.get(from);
    this.caches.delete(from);
    if (cached) this.caches.set(to, cached);
    renameSync(this.file(from), this.file(to));
    return "ok";
  }
}
