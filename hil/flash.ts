/**
 * SPIFFS as files in a state directory, with power-cut injection.
 *
 * SPIFFS is flat: a name is one object (ESP-IDF mounts it at "/" with
 * base_path ""), at most 31 bytes (SPIFFS_OBJ_NAME_LEN 32 with the NUL).
 * A leading "/" is accepted and dropped; any other "/" is refused.
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
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, truncateSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";

export const SPIFFS_NAME_MAX = 31;

export type FlashOp = "open" | "write" | "remove" | "rename";

/** Result of a mutating operation: done, failed (like the device would), or cut (power gone). */
export type FlashResult = "ok" | "fail" | "cut";

export class FlashStore {
  readonly dir: string;
  /** Mutating operations so far (all time). */
  writes = 0;
  private cutAt: number | undefined;
  /** Called after a cut operation left its partial effect. */
  onCut: (op: FlashOp, name: string) => void = () => {};

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  /** The SPIFFS name for a path, or undefined if the device could not have it. */
  normalize(path: string): string | undefined {
    const name = path.startsWith("/") ? path.slice(1) : path;
    if (name.length === 0 || name.length > SPIFFS_NAME_MAX || name.includes("/") || name === "." || name === "..") return undefined;
    return name;
  }

  private file(name: string): string {
    return join(this.dir, name);
  }

  /** Arm a power cut at the n-th mutating operation from now (n >= 1). */
  cutAtWrite(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`powerCutAtWrite: n must be an integer >= 1, got ${n}`);
    this.cutAt = this.writes + n;
  }

  disarm(): void {
    this.cutAt = undefined;
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

  exists(name: string): boolean {
    return existsSync(this.file(name)) && statSync(this.file(name)).isFile();
  }

  size(name: string): number {
    return statSync(this.file(name)).size;
  }

  read(name: string): Uint8Array | undefined {
    if (!this.exists(name)) return undefined;
    return new Uint8Array(readFileSync(this.file(name)));
  }

  list(): Map<string, number> {
    const out = new Map<string, number>();
    for (const n of readdirSync(this.dir).sort()) {
      const p = this.file(n);
      if (statSync(p).isFile()) out.set(n, statSync(p).size);
    }
    return out;
  }

  /** Create or truncate (truncate = "w" modes) a file for writing. */
  openWrite(name: string, truncate: boolean): FlashResult {
    const cut = this.tick();
    const fd = openSync(this.file(name), truncate ? "w" : "a");
    closeSync(fd);
    if (cut) this.onCut("open", name);
    return cut ? "cut" : "ok";
  }

  /** Write data at offset (append when offset is the file size). */
  write(name: string, offset: number, data: Uint8Array): FlashResult {
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
    if (!this.exists(name)) return "ok"; // unlink error ignored, as file.remove does
    const cut = this.tick();
    if (cut) {
      truncateSync(this.file(name), Math.floor(this.size(name) / 2));
      this.onCut("remove", name);
      return "cut";
    }
    unlinkSync(this.file(name));
    return "ok";
  }

  rename(from: string, to: string): FlashResult {
    if (!this.exists(from) || this.exists(to)) return "fail";
    const cut = this.tick();
    if (cut) {
      this.onCut("rename", from);
      return "cut";
    }
    renameSync(this.file(from), this.file(to));
    return "ok";
  }
}
