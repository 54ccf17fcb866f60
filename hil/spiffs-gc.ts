/**
 * SPIFFS's page map and its garbage collection, as the keyfob's build runs
 * them: pellepl/spiffs at 0dbb3f71 (the commit ESP-IDF e7771c75 = v5.1.3
 * vendors as components/spiffs/spiffs, the submodule NodeMCU dev-esp32
 * 7c5bb151 builds through sdk/esp32-esp-idf), with ESP-IDF's
 * components/spiffs/include/spiffs_config.h and Kconfig defaults. Line
 * numbers below are of those files at those commits ("gc.c" is
 * src/spiffs_gc.c, "nucleus.c" src/spiffs_nucleus.c, "hydrogen.c"
 * src/spiffs_hydrogen.c). Those three files are identical at 0b2e1290
 * (pellepl/spiffs master) except hydrogen.c, which has two more lines there
 * from :479 on.
 *
 * The map is what SPIFFS itself keeps on flash: for every block its object
 * lookup entries (one per data page: free, deleted, or the object id and
 * span of the page), its erase count, and the files' names and sizes. It
 * lives in the state directory (SPIFFS_PAGE_MAP_FILE) so it survives the
 * emulator's restarts as flash does. What SPIFFS keeps in RAM is rebuilt at
 * every mount (mount()): the free-block counter, the allocation cursor
 * (block 0, entry 0: SPIFFS_mount memsets the struct, hydrogen.c:90) and
 * the largest erase count.
 *
 * Geometry (ESP-IDF esp_spiffs.c:149-218): 4096-byte blocks, 256-byte pages,
 * so 16 pages a block of which one is the lookup page: 15 entries a block.
 *
 * Which page every operation takes, from the source:
 * - allocation (spiffs_obj_lu_find_free, nucleus.c:449-480): the first free
 *   lookup entry from the cursor on, wrapping over every block; then the
 *   cursor moves past it, and taking a block's entry 0 counts one free block
 *   less. Before that, unless GC is cleaning, fewer than 2 free blocks run
 *   spiffs_gc_quick (erase a block whose pages are all deleted, gc.c:32-105)
 *   and, still fewer than 2, fail with SPIFFS_ERR_FULL.
 * - create (spiffs_object_create, nucleus.c:922-982): spiffs_gc_check for one
 *   data page (:934), then one index header page.
 * - append (spiffs_object_append, nucleus.c:1224-1465): spiffs_gc_check for
 *   the length plus one page "for meta" (:1236); a new data page at each
 *   251-byte boundary, bytes after it written into the page in place
 *   (:1368-1385); a new object index page per SPIFFS_OBJ_IX_LEN data pages
 *   past the header's SPIFFS_OBJ_HDR_IX_LEN (:1307-1331); the header is
 *   rewritten in place after an append at offset 0 (:1271-1277, :1439-1453),
 *   else copied to a new page and the old one deleted (:1280-1281,
 *   :1455-1457, spiffs_object_update_index_hdr :990-1050 -> spiffs_page_move).
 * - truncate to 0 (SPIFFS_open with O_TRUNC of a file with data,
 *   spiffs_object_truncate nucleus.c:1739-1960): spiffs_gc_check for two pages
 *   (:1753), every data and index page deleted, the header copied.
 * - remove (truncate with remove_full): every page deleted, no GC check.
 * - rename (SPIFFS_rename -> spiffs_object_update_index_hdr): the header copied.
 * - writes shorter than a page are held in the file's write cache
 *   (SPIFFS_CACHE_WR, Kconfig SPIFFS_CACHE_WR default y) and reach the above
 *   as one append per page-sized run (hydrogen.c:505-584): FlashStore does that.
 *
 * Garbage collection (spiffs_gc_check, gc.c:109-196), before a create, an
 * append or a truncate: nothing while more than 3 blocks are wholly free AND
 * the write is shorter than the free pages (:118-121; free pages = 15 x
 * (blocks - 2) - allocated - deleted, :113-115); SPIFFS_ERR_FULL if the pages
 * needed exceed free plus deleted (:128-131); else up to SPIFFS_GC_MAX_RUNS
 * (Kconfig SPIFFS_GC_MAX_RUNS default 10) rounds while at most 2 blocks are
 * free or the write still does not fit (:181-182): pick the block with the
 * best score (spiffs_gc_find_candidate :236-345: deleted x 5 + used x -1 +
 * erase age x 50, spiffs_config.h:146-151; the age term 0 when no page is
 * free, :144; ties go to the lower block), move every live page out of it
 * (spiffs_gc_clean :377-604: each data page, then the index page that lists
 * it, then the remaining index pages), erase it (:168, nucleus.c:226-262:
 * its erase count becomes the largest + 1). A round that frees nothing on a
 * crammed partition stops the loop (:175-179). After the loop, a write that
 * still does not fit is SPIFFS_ERR_FULL (:187-189).
 * Every erase counts one free block more (nucleus.c:241) even when the block
 * was already free (a wholly free block is a candidate too, with its age):
 * the counter is SPIFFS's, kept in RAM and recounted at mount.
 */

/** An entry of a block's object lookup page: free, deleted, or [object id, index page?, span]. */
type Entry = null | 0 | [number, 0 | 1, number];

export const SPIFFS_PAGE_MAP_FILE = ".spiffs-pages.json";
/** Data pages a block holds (16 pages, one of them the lookup page). */
export const ENTRIES_PER_BLOCK = 15;
/** Bytes of data a page holds: 256 - sizeof(spiffs_page_header) (5). */
export const DATA_PAGE_BYTES = 251;
/**
 * SPIFFS_OBJ_HDR_IX_LEN (nucleus.h:246-247): (256 - sizeof(spiffs_page_object_ix_header)) / 2,
 * the header being 5 + 3 alignment + 4 size + 1 type + 32 name (CONFIG_SPIFFS_OBJ_NAME_LEN)
 * + 4 meta (CONFIG_SPIFFS_META_LENGTH) = 49 bytes (nucleus.h:493-512): 103.
 */
export const OBJ_HDR_IX_LEN = 103;
/** SPIFFS_OBJ_IX_LEN (nucleus.h:249-250): (256 - 8) / 2. */
export const OBJ_IX_LEN = 124;
/** CONFIG_SPIFFS_GC_MAX_RUNS (ESP-IDF components/spiffs/Kconfig, default 10). */
export const GC_MAX_RUNS = 10;
const W_DELET = 5;
const W_USED = -1;
const W_ERASE_AGE = 50;
const OBJ_ID_FREE = 0xffff;
const OBJ_ID_IX_FLAG = 0x8000;
/** SPIFFS_UNDEFINED_LEN: a created file's size until its first append. */
const UNDEFINED_LEN = -1;

/** The span of the index page listing data page `span` (SPIFFS_OBJ_IX_ENTRY_SPAN_IX, nucleus.h:255-256). */
export function objixSpan(span: number): number {
  return span < OBJ_HDR_IX_LEN ? 0 : 1 + Math.floor((span - OBJ_HDR_IX_LEN) / OBJ_IX_LEN);
}

/** SPIFFS_ERR_FULL: the write fails (esp_spiffs.c maps it to ENOSPC). */
export class SpiffsFull extends Error {
  constructor(why: string) {
    super(`SPIFFS_ERR_FULL: ${why}`);
  }
}

/** The flash work GC did (counted since construction): what it cost is FlashStore's to charge. */
export interface GcWork {
  /** spiffs_gc_check rounds that erased a block, and spiffs_gc_quick erases. */
  runs: number;
  erases: number;
  /** Live pages copied to a new page (read + program each). */
  moves: number;
  /** Lookup pages, erase counts and page headers read by the collector. */
  reads: number;
}

interface SavedMap {
  version: 1;
  blocks: Entry[][];
  eraseCounts: number[];
  files: [string, number, number][];
}

export class SpiffsPageMap {
  readonly blockCount: number;
  private blocks: Entry[][];
  private eraseCounts: number[];
  /** Name -> object id and size (UNDEFINED_LEN until the first append). */
  private readonly files = new Map<string, { id: number; size: number }>();
  // SPIFFS's RAM state, rebuilt by mount():
  private freeBlocks = 0;
  private maxEraseCount = 0;
  private cursorBlock = 0;
  private cursorEntry = 0;
  private cleaning = false;
  readonly work: GcWork = { runs: 0, erases: 0, moves: 0, reads: 0 };

  private constructor(blockCount: number, blocks: Entry[][], eraseCounts: number[]) {
    this.blockCount = blockCount;
    this.blocks = blocks;
    this.eraseCounts = eraseCounts;
  }

  /** A freshly formatted partition (SPIFFS_format erases every block in order: erase counts 0..B-1), mounted. */
  static format(blockCount: number): SpiffsPageMap {
    if (!Number.isInteger(blockCount) || blockCount < 3) throw new RangeError(`SPIFFS needs at least 3 blocks, got ${blockCount}`);
    const m = new SpiffsPageMap(
      blockCount,
      Array.from({ length: blockCount }, () => new Array<Entry>(ENTRIES_PER_BLOCK).fill(null)),
      Array.from({ length: blockCount }, (_, i) => i),
    );
    m.mount();
    return m;
  }

  /** The map saved by toJSON, mounted; undefined if it is not one for this many blocks. */
  static fromJSON(text: string, blockCount: number): SpiffsPageMap | undefined {
    let saved: SavedMap;
    try {
      saved = JSON.parse(text) as SavedMap;
    } catch {
      return undefined;
    }
    if (saved?.version !== 1 || !Array.isArray(saved.blocks) || saved.blocks.length !== blockCount || saved.eraseCounts?.length !== blockCount) return undefined;
    if (!saved.blocks.every((b) => Array.isArray(b) && b.length === ENTRIES_PER_BLOCK)) return undefined;
    const m = new SpiffsPageMap(blockCount, saved.blocks, saved.eraseCounts);
    for (const [name, id, size] of saved.files) m.files.set(name, { id, size });
    m.mount();
    return m;
  }

  toJSON(): string {
    const saved: SavedMap = { version: 1, blocks: this.blocks, eraseCounts: this.eraseCounts, files: [...this.files].map(([n, f]) => [n, f.id, f.size]) };
    return JSON.stringify(saved);
  }

  /**
   * SPIFFS_mount's scan (spiffs_obj_lu_scan, nucleus.c:348-440): the largest
   * erase count + 1 (:395-405), the wholly free blocks counted afresh
   * (spiffs_obj_lu_scan_v :330-334), the cursor back at block 0 (hydrogen.c:90).
   */
  mount(): void {
    let min = OBJ_ID_FREE;
    let max = 0;
    for (const ec of this.eraseCounts) {
      if (ec === OBJ_ID_FREE) continue;
      min = Math.min(min, ec);
      max = Math.max(max, ec);
    }
    if (min === 0 && max === OBJ_ID_FREE) this.maxEraseCount = 0;
    else if (max - min > OBJ_ID_FREE / 2) this.maxEraseCount = (min + 1) & 0xffff;
    else this.maxEraseCount = (max + 1) & 0xffff;
    this.freeBlocks = this.blocks.filter((b) => b[0] === null).length;
    this.cursorBlock = 0;
    this.cursorEntry = 0;
    this.cleaning = false;
  }

  /** Pages in use, pages deleted (spiffs stats_p_allocated, stats_p_deleted), and SPIFFS's free-block counter. */
  stats(): { allocated: number; deleted: number; freeBlocks: number; freePages: number; wholeFreeBlocks: number } {
    let allocated = 0;
    let deleted = 0;
    for (const b of this.blocks) {
      for (const e of b) {
        if (e === 0) deleted++;
        else if (e !== null) allocated++;
      }
    }
    return { allocated, deleted, freeBlocks: this.freeBlocks, freePages: this.freePages(allocated, deleted), wholeFreeBlocks: this.blocks.filter((b) => b.every((e) => e === null)).length };
  }

  /** gc.c:113-115: data pages of all but two blocks, less those allocated or deleted. */
  private freePages(allocated?: number, deleted?: number): number {
    if (allocated === undefined || deleted === undefined) {
      const s = this.stats();
      return s.freePages;
    }
    return ENTRIES_PER_BLOCK * (this.blockCount - 2) - allocated - deleted;
  }

  has(name: string): boolean {
    return this.files.has(name);
  }

  /** The size SPIFFS holds for a file (0 for a created, never written one), undefined if it has none. */
  size(name: string): number | undefined {
    const f = this.files.get(name);
    return f === undefined ? undefined : Math.max(0, f.size);
  }

  names(): string[] {
    return [...this.files.keys()];
  }

  /** The block each page of a file is on (tests; index pages first). */
  pagesOf(name: string): { block: number; entry: number; index: boolean; span: number }[] {
    const f = this.files.get(name);
    if (!f) return [];
    const out: { block: number; entry: number; index: boolean; span: number }[] = [];
    this.blocks.forEach((b, block) => b.forEach((e, entry) => {
      if (e !== null && e !== 0 && e[0] === f.id) out.push({ block, entry, index: e[1] === 1, span: e[2] });
    }));
    return out.sort((a, b) => Number(b.index) - Number(a.index) || a.span - b.span);
  }

  // --- the nucleus ---------------------------------------------------------

  /** spiffs_obj_lu_find_free (nucleus.c:449-480). */
  private findFree(): [number, number] {
    if (!this.cleaning && this.freeBlocks < 2) {
      this.gcQuick();
      if (this.freeBlocks < 2) throw new SpiffsFull(`${this.freeBlocks} free block(s), 2 needed to allocate a page (spiffs_nucleus.c:456-464)`);
    }
    const total = this.blockCount * ENTRIES_PER_BLOCK;
    let pos = this.cursorBlock * ENTRIES_PER_BLOCK + this.cursorEntry;
    for (let i = 0; i < total; i++, pos++) {
      const p = pos % total;
      const block = Math.floor(p / ENTRIES_PER_BLOCK);
      const entry = p % ENTRIES_PER_BLOCK;
      if (this.blocks[block][entry] !== null) continue;
      this.cursorBlock = block;
      this.cursorEntry = entry + 1;
      if (entry === 0) this.freeBlocks--;
      return [block, entry];
    }
    throw new SpiffsFull("no free page in any block");
  }

  private allocate(e: Entry): [number, number] {
    const [block, entry] = this.findFree();
    this.blocks[block][entry] = e;
    return [block, entry];
  }

  /** spiffs_page_move (nucleus.c:812-871): a new page with the same contents, the old one deleted. */
  private move(block: number, entry: number): void {
    const e = this.blocks[block][entry];
    this.allocate(e);
    this.blocks[block][entry] = 0;
  }

  private find(pred: (e: [number, 0 | 1, number]) => boolean): [number, number] | undefined {
    for (let b = 0; b < this.blockCount; b++) {
      for (let i = 0; i < ENTRIES_PER_BLOCK; i++) {
        const e = this.blocks[b][i];
        if (e !== null && e !== 0 && pred(e)) return [b, i];
      }
    }
    return undefined;
  }

  private header(id: number): [number, number] {
    const at = this.find((e) => e[0] === id && e[1] === 1 && e[2] === 0);
    if (!at) throw new Error(`SPIFFS page map: object ${id} has no index header page`);
    return at;
  }

  /** spiffs_object_update_index_hdr (nucleus.c:990-1050): the header copied to a new page. */
  private copyHeader(id: number): void {
    const [b, i] = this.header(id);
    this.move(b, i);
  }

  private eraseBlock(bix: number): void {
    // nucleus.c:226-262: erase, count it free, record its erase count, bump the largest.
    this.blocks[bix] = new Array<Entry>(ENTRIES_PER_BLOCK).fill(null);
    this.freeBlocks++;
    this.eraseCounts[bix] = this.maxEraseCount;
    this.maxEraseCount = (this.maxEraseCount + 1) & 0xffff;
    if (this.maxEraseCount === OBJ_ID_IX_FLAG) this.maxEraseCount = 0;
    this.work.erases++;
  }

  /** spiffs_gc_quick(fs, 0) (gc.c:32-105): erase the first block whose pages are all deleted. */
  private gcQuick(): void {
    for (let b = 0; b < this.blockCount; b++) {
      this.work.reads++;
      if (this.blocks[b].every((e) => e === 0)) {
        this.work.runs++;
        this.eraseBlock(b);
        return;
      }
    }
  }

  /** spiffs_gc_find_candidate (gc.c:236-345): the best-scored block; two reads a block. */
  private candidate(crammed: boolean): number {
    const maxCandidates = Math.min(this.blockCount, Math.floor((256 - 8) / (2 + 4)));
    const cands: { block: number; score: number }[] = [];
    for (let b = 0; b < this.blockCount; b++) {
      let deleted = 0;
      let used = 0;
      for (const e of this.blocks[b]) {
        if (e === null) break; // gc.c:280-283: the rest of the block is free
        if (e === 0) deleted++;
        else used++;
      }
      this.work.reads += 2;
      const ec = this.eraseCounts[b];
      const age = this.maxEraseCount > ec ? this.maxEraseCount - ec : (OBJ_ID_FREE - (ec - this.maxEraseCount)) & 0xffff;
      const score = deleted * W_DELET + used * W_USED + age * (crammed ? 0 : W_ERASE_AGE);
      // gc.c:318-335: insert before the first strictly lower score, the table holding maxCandidates.
      let ix = cands.findIndex((c) => c.score < score);
      if (ix < 0) ix = cands.length;
      if (ix < maxCandidates) {
        cands.splice(ix, 0, { block: b, score });
        if (cands.length > maxCandidates) cands.pop();
      }
    }
    return cands[0].block;
  }

  /** spiffs_gc_clean (gc.c:377-604): every live page out of block bix. */
  private clean(bix: number): void {
    if (this.cursorBlock === bix) {
      this.cursorBlock = (bix + 1) % this.blockCount;
      this.cursorEntry = 0;
    }
    const row = () => this.blocks[bix];
    let cur = 0;
    for (;;) {
      // FIND_OBJ_DATA: the next data page from cur.
      this.work.reads++;
      let found = -1;
      for (let i = cur; i < ENTRIES_PER_BLOCK; i++) {
        const e = row()[i];
        if (e !== null && e !== 0 && e[1] === 0) {
          found = i;
          break;
        }
      }
      if (found < 0) break;
      const [id, , span] = row()[found] as [number, 0 | 1, number];
      const stored = found + 1;
      const ixSpan = objixSpan(span);
      const ixAt = this.find((e) => e[0] === id && e[1] === 1 && e[2] === ixSpan);
      this.work.reads += (ixAt ? ixAt[0] + 1 : this.blockCount) + 1;
      if (!ixAt) {
        // gc.c:542-553: a data page no index lists is deleted.
        row()[found] = 0;
        cur = stored;
        continue;
      }
      // MOVE_OBJ_DATA: every data page of this object under that index page.
      this.work.reads++;
      for (let i = 0; i < ENTRIES_PER_BLOCK; i++) {
        const e = row()[i];
        if (e !== null && e !== 0 && e[0] === id && e[1] === 0 && objixSpan(e[2]) === ixSpan) {
          this.work.reads++;
          this.move(bix, i);
          this.work.moves++;
        }
      }
      // gc.c:576-588: the index page, updated, to a new page (it may have been in this block).
      const ixNow = this.find((e) => e[0] === id && e[1] === 1 && e[2] === ixSpan)!;
      this.move(ixNow[0], ixNow[1]);
      this.work.moves++;
      cur = stored;
    }
    // MOVE_OBJ_IX: the index pages still in the block.
    this.work.reads++;
    for (let i = 0; i < ENTRIES_PER_BLOCK; i++) {
      const e = row()[i];
      if (e !== null && e !== 0 && e[1] === 1) {
        this.work.reads++;
        this.move(bix, i);
        this.work.moves++;
      }
    }
  }

  /** spiffs_gc_check (gc.c:109-196) for a write of len bytes. */
  gcCheck(len: number): void {
    let s = this.stats();
    let free = s.freePages;
    if (this.freeBlocks > 3 && len < free * DATA_PAGE_BYTES) return;
    const needed = Math.ceil(len / DATA_PAGE_BYTES);
    if (needed > free + s.deleted) throw new SpiffsFull(`${needed} page(s) needed, ${free} free and ${s.deleted} deleted (spiffs_gc.c:128-131)`);
    let tries = 0;
    do {
      const prevFree = free;
      const cand = this.candidate(free <= 0);
      this.work.runs++;
      this.cleaning = true;
      try {
        this.clean(cand);
      } finally {
        this.cleaning = false;
      }
      this.work.reads++; // spiffs_gc_erase_page_stats (gc.c:199-233) reads its lookup page
      this.eraseBlock(cand);
      s = this.stats();
      free = s.freePages;
      if (prevFree <= 0 && prevFree === free) break;
    } while (++tries < GC_MAX_RUNS && (this.freeBlocks <= 2 || len > free * DATA_PAGE_BYTES));
    if (len > free * DATA_PAGE_BYTES) throw new SpiffsFull(`${len} bytes do not fit ${free} free page(s) after ${tries + 1} GC round(s) (spiffs_gc.c:184-189)`);
  }

  // --- objects -------------------------------------------------------------

  private newId(): number {
    const used = new Set([...this.files.values()].map((f) => f.id));
    let id = 1;
    while (used.has(id)) id++;
    return id;
  }

  /** spiffs_object_create (nucleus.c:922-982). */
  create(name: string): void {
    if (this.files.has(name)) throw new Error(`SPIFFS page map: ${name} exists`);
    this.gcCheck(DATA_PAGE_BYTES);
    const id = this.newId();
    this.allocate([id | 0, 1, 0]);
    this.files.set(name, { id, size: UNDEFINED_LEN });
  }

  /** spiffs_object_append (nucleus.c:1224-1465): len bytes at the end of the file. */
  append(name: string, len: number): void {
    const f = this.files.get(name);
    if (!f) throw new Error(`SPIFFS page map: append to ${name}, which it does not hold`);
    if (len <= 0) return;
    const offset = Math.max(0, f.size);
    this.gcCheck(len + DATA_PAGE_BYTES);
    let span = Math.floor(offset / DATA_PAGE_BYTES);
    let pageOffs = offset % DATA_PAGE_BYTES;
    let written = 0;
    let prev = -1;
    let cur = 0;
    let size = f.size;
    while (written < len) {
      cur = objixSpan(span);
      if (cur !== prev) {
        if (written > 0) {
          // :1264-1305: the previous index page stored (in place); the header in place only
          // after an append at 0 into the header's own entries, else a new copy.
          if (!(prev === 0 && offset === 0)) this.copyHeader(f.id);
          size = offset + written;
        }
        if (cur !== 0) {
          const lenSpan = size > 0 ? objixSpan(Math.floor((size - 1) / DATA_PAGE_BYTES)) : -1;
          if (written > 0 || cur > lenSpan) this.allocate([f.id, 1, cur]);
        }
        prev = cur;
      }
      const n = Math.min(len - written, DATA_PAGE_BYTES - pageOffs);
      if (pageOffs === 0) this.allocate([f.id, 0, span]);
      pageOffs = 0;
      span++;
      written += n;
    }
    // :1414-1462: finalize.
    if (cur !== 0 || offset !== 0) this.copyHeader(f.id);
    f.size = offset + len;
  }

  /**
   * spiffs_object_modify (nucleus.c:1469-1640): len bytes rewritten from
   * offset within the file: spiffs_gc_check for len plus a page (:1476),
   * every data page touched written anew and the old one deleted, the index
   * pages listing them (the header among them) copied.
   */
  modify(name: string, offset: number, len: number): void {
    const f = this.files.get(name);
    if (!f) throw new Error(`SPIFFS page map: modify ${name}, which it does not hold`);
    if (len <= 0) return;
    this.gcCheck(len + DATA_PAGE_BYTES);
    const first = Math.floor(offset / DATA_PAGE_BYTES);
    const last = Math.floor((offset + len - 1) / DATA_PAGE_BYTES);
    const ixSpans = new Set<number>();
    for (let span = first; span <= last; span++) {
      const at = this.find((e) => e[0] === f.id && e[1] === 0 && e[2] === span);
      if (at) this.move(at[0], at[1]);
      ixSpans.add(objixSpan(span));
    }
    for (const ix of ixSpans) {
      const at = this.find((e) => e[0] === f.id && e[1] === 1 && e[2] === ix);
      if (at) this.move(at[0], at[1]);
    }
    if (!ixSpans.has(0)) this.copyHeader(f.id);
  }

  /** SPIFFS_open with O_TRUNC of an existing file (spiffs_object_truncate(fd, 0, 0), nucleus.c:1739-1960). */
  truncate(name: string): void {
    const f = this.files.get(name);
    if (!f) throw new Error(`SPIFFS page map: truncate ${name}, which it does not hold`);
    if (f.size <= 0) return; // :1746-1749: nothing to do
    this.gcCheck(2 * DATA_PAGE_BYTES);
    this.deletePages(f.id, false);
    this.copyHeader(f.id);
    f.size = UNDEFINED_LEN;
  }

  /** SPIFFS_remove (spiffs_object_truncate(fd, 0, 1)): every page deleted, no GC check. */
  remove(name: string): void {
    const f = this.files.get(name);
    if (!f) return;
    this.deletePages(f.id, true);
    this.files.delete(name);
  }

  /** SPIFFS_rename: the header copied under its new name. */
  rename(from: string, to: string): void {
    const f = this.files.get(from);
    if (!f) throw new Error(`SPIFFS page map: rename ${from}, which it does not hold`);
    if (this.files.has(to)) throw new Error(`SPIFFS page map: rename onto ${to}, which exists`);
    this.copyHeader(f.id);
    this.files.delete(from);
    this.files.set(to, f);
  }

  private deletePages(id: number, header: boolean): void {
    for (const b of this.blocks) {
      for (let i = 0; i < ENTRIES_PER_BLOCK; i++) {
        const e = b[i];
        if (e !== null && e !== 0 && e[0] === id && (header || !(e[1] === 1 && e[2] === 0))) b[i] = 0;
      }
    }
  }

  /** A file written front to back with io.open "wb" (created, or truncated if it has data), newlib and SPIFFS's write cache (cachedAppends). */
  writeWhole(name: string, size: number): void {
    if (this.files.has(name)) this.truncate(name);
    else this.create(name);
    for (const n of cachedAppends(size)) this.append(name, n);
  }

  /**
   * A partition worn by use without a format: every file it holds written
   * again, round after round (as installing the image again over it, or
   * rewriting each file, does), with SPIFFS's garbage collection running as
   * it would, until a mount finds at most 3 blocks wholly free, the point
   * from which every create or append garbage-collects first (gc.c:118-121).
   * Contents and sizes stay as they were; only their pages move. Returns
   * the rounds it took; throws if the files are too few to get there.
   */
  wear(maxRounds = 1000): number {
    const sizes = [...this.files].map(([n, f]) => [n, Math.max(0, f.size)] as const).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    if (sizes.length === 0) throw new Error("SPIFFS wear: the partition holds no file to write again");
    for (let round = 1; round <= maxRounds; round++) {
      for (const [name, size] of sizes) this.writeWhole(name, size);
      this.mount();
      if (this.freeBlocks <= 3) return round;
    }
    throw new Error(`SPIFFS wear: ${maxRounds} rounds of rewriting every file left more than 3 blocks free`);
  }

  /**
   * A file the map does not know (put into the state directory by hand or
   * by an older emulator) taken in as if written in one go: its header, its
   * data and index pages, at the cursor, with no GC check. Returns false if
   * the partition has no room for it (it then stays unknown).
   */
  adopt(name: string, size: number): boolean {
    const pages = 1 + Math.ceil(size / DATA_PAGE_BYTES) + objixSpan(Math.max(0, Math.ceil(size / DATA_PAGE_BYTES) - 1));
    const free = this.blocks.reduce((n, b) => n + b.filter((e) => e === null).length, 0);
    if (pages > free) return false;
    const id = this.newId();
    const saved = this.cleaning;
    this.cleaning = true; // no GC, no free-block floor: the file is simply there
    try {
      this.allocate([id, 1, 0]);
      const data = Math.ceil(size / DATA_PAGE_BYTES);
      for (let s = 0; s < data; s++) {
        if (s >= OBJ_HDR_IX_LEN && (s - OBJ_HDR_IX_LEN) % OBJ_IX_LEN === 0) this.allocate([id, 1, objixSpan(s)]);
        this.allocate([id, 0, s]);
      }
    } finally {
      this.cleaning = saved;
    }
    this.files.set(name, { id, size: size === 0 ? UNDEFINED_LEN : size });
    return true;
  }

  /** Drop a file the directory no longer has (its pages deleted, as a remove would). */
  forget(name: string): void {
    this.remove(name);
  }
}

/**
 * The SPIFFS appends a file written front to back through newlib and the
 * write cache makes: newlib hands SPIFFS 128-byte writes (hil/nodemcu/file.ts),
 * the cache holds them until a page's worth (256 bytes) is reached
 * (hydrogen.c:505-569), the rest goes at close (SPIFFS_close flushes it).
 */
export function cachedAppends(size: number, cachePage = 256): number[] {
  const out: number[] = [];
  for (let left = size; left > 0; left -= cachePage) out.push(Math.min(cachePage, left));
  return out;
}
