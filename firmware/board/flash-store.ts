/** @noSelfInFile */
/**
 * Whole-file records on SPIFFS that survive a power cut at any instant: after
 * reboot a record reads as before the write or as after it, never between.
 *
 * What SPIFFS gives and does not give (ESP-IDF esp_spiffs.c over SPIFFS 0.3.7):
 * - rename() only rewrites the file's object index header page, so a name
 *   never points at half a file; but it FAILS when the new name exists
 *   (SPIFFS_rename returns SPIFFS_ERR_CONFLICTING_NAME). "Write tmp, rename
 *   over" is therefore impossible; the old file has to move away first.
 * - writes are not atomic: a cut leaves a short file; remove() frees pages
 *   from the end and can leave a short file under its old name.
 *
 * Hence, for a record NAME (all three names live in the flat SPIFFS root):
 *   write:  remove NAME.new and NAME.old (leftovers), write NAME.new in full,
 *           rename NAME -> NAME.old (if NAME exists), rename NAME.new -> NAME,
 *           remove NAME.old.
 *   remove: remove NAME.new, rename NAME -> NAME.old, remove NAME.old.
 *   read:   NAME present -> it is the record (checked);
 *           NAME absent and NAME.new complete -> the cut fell between the two
 *           renames: finish the write (roll forward) and return it;
 *           otherwise -> no record.
 * NAME only ever appears by renaming a complete NAME.new, and NAME.new only
 * survives a rename of NAME away once it is complete, so those three cases
 * are all there is.
 *
 * A write can fail without a power cut: SPIFFS full (ENOSPC), a flash
 * error. newlib buffers a FILE's writes (128 bytes), so such an error
 * often shows only when f:close() flushes the tail: f:write's and
 * f:close()'s results are both checked, and NAME.new is then read back and
 * compared byte for byte with what was meant before it may replace NAME. Any
 * failure before the renames leaves NAME as it was (NAME.new is removed);
 * the write returns BOARD_ERR_FLASH. Each file carries an envelope so "complete" can be
 * checked: [len hi, len lo, payload..., crc hi, crc lo], CRC-16 over length
 * and payload.
 *
 * This module is the read side, which every boot runs; the writes are in
 * flash-store-write.ts, which only provisioning loads (fobkit-prov).
 */
import { appendStringBytes } from "./lua-bytes.js";
import { crc16 } from "../../protocol/crc16.js";
import {
  BOARD_ERR_ARG,
  BOARD_ERR_CORRUPT,
  BOARD_ERR_FLASH,
  BOARD_ERR_NOT_FOUND,
  BOARD_OK,
} from "./status.js";

/** SPIFFS_OBJ_NAME_LEN is 32 with the terminating NUL; ".new"/".old" need 4. */
export const FLASH_NAME_MAX = 27;
/** Envelope length field is 16 bits. */
export const FLASH_RECORD_MAX = 4096;

export const NEW_SUFFIX = ".new";
export const OLD_SUFFIX = ".old";

export function validName(name: string): boolean {
  const n = name.length;
  if (n < 1 || n > FLASH_NAME_MAX) {
    return false;
  }
  for (let i = 1; i <= n; i++) {
    const c = string.byte(name, i);
    // Printable ASCII except '/', so every name maps to one flat SPIFFS object.
    if (c <= 32 || c >= 127 || c === 47) {
      return false;
    }
  }
  return true;
}

/** newlib's ENOENT (sys/errno.h), what io.open's third result is for a name SPIFFS does not hold. */
const ENOENT = 2;

/** Bytes of an open file, which is closed. */
function drain(f: LuaFile): number[] {
  const data = f.read("a");
  f.close();
  const out: number[] = [];
  if (data !== undefined) {
    appendStringBytes(data, out);
  }
  return out;
}

/** Read a whole file into a fresh byte array; undefined if it cannot be opened. */
export function readRaw(path: string): number[] | undefined {
  const [f] = io.open(path, "rb");
  if (f === undefined) {
    return undefined;
  }
  return drain(f);
}

/**
 * A file's bytes, MISSING if it is not there, undefined if it is there but
 * cannot be read: one name lookup where file.exists + io.open paid two
 * (each looks the name up over every block's lookup page: file.c:79-88
 * stat(), esp_spiffs.c open -> spiffs_object_find_object_index_header_by_name;
 * hil/flash.ts). io.open's failure says why (luaL_fileresult: nil, message,
 * errno; esp_spiffs.c maps SPIFFS_ERR_NOT_FOUND to ENOENT); for any other
 * errno, file.exists decides, so a board that reported a missing name
 * otherwise would only pay that one lookup more, never misread "missing".
 */
const MISSING: number[] = [];
function readOrMissing(path: string): number[] | undefined {
  const [f, , errno] = io.open(path, "rb");
  if (f !== undefined) {
    return drain(f);
  }
  if (errno === ENOENT || !file.exists(path)) {
    return MISSING;
  }
  return undefined;
}

/** Payload of an enveloped file into out; BOARD_ERR_CORRUPT if short, long or CRC wrong. */
function unwrap(raw: number[], out: number[]): number {
  const n = raw.length;
  if (n < 4) {
    return BOARD_ERR_CORRUPT;
  }
  const len = (raw[0] << 8) | raw[1];
  if (len + 4 !== n) {
    return BOARD_ERR_CORRUPT;
  }
  if (crc16(raw, 0, len + 2) !== ((raw[n - 2] << 8) | raw[n - 1])) {
    return BOARD_ERR_CORRUPT;
  }
  for (let i = 0; i < len; i++) {
    out.push(raw[i + 2]);
  }
  return BOARD_OK;
}

/**
 * NAME is known to be absent: finish a write a power cut interrupted between
 * its two renames (NAME.new complete), and put the record into out.
 * BOARD_OK, BOARD_ERR_NOT_FOUND (no NAME.new, or one cut short: the write
 * never happened) or BOARD_ERR_FLASH.
 */
export function rollForward(name: string, out: number[]): number {
  const pending = name + NEW_SUFFIX;
  const raw = readOrMissing(pending);
  if (raw === undefined) {
    return BOARD_ERR_FLASH;
  }
  if (raw === MISSING) {
    return BOARD_ERR_NOT_FOUND;
  }
  const payload: number[] = [];
  if (unwrap(raw, payload) !== BOARD_OK) {
    // A NAME.new cut short while NAME did not exist: the write never happened.
    return BOARD_ERR_NOT_FOUND;
  }
  if (!file.rename(pending, name)) {
    return BOARD_ERR_FLASH;
  }
  // The cut fell after NAME -> NAME.old: that leftover goes. No file.exists
  // first: removing a missing name pays the same one lookup stat() would, and
  // removing a present one costs less than stat + remove (hil/flash.ts remove()).
  file.remove(name + OLD_SUFFIX);
  for (let i = 0; i < payload.length; i++) {
    out.push(payload[i]);
  }
  return BOARD_OK;
}

/**
 * Read the committed record NAME into out (appended; pass an empty array).
 * BOARD_OK, BOARD_ERR_NOT_FOUND, BOARD_ERR_CORRUPT, BOARD_ERR_FLASH or
 * BOARD_ERR_ARG. May finish a write a power cut interrupted (see the header).
 * Opening NAME is the existence check (readOrMissing): one lookup for a
 * present record, two for a blank keyfob (NAME, then NAME.new).
 */
export function flashRead(name: string, out: number[]): number {
  if (!validName(name)) {
    return BOARD_ERR_ARG;
  }
  const raw = readOrMissing(name);
  if (raw === undefined) {
    return BOARD_ERR_FLASH;
  }
  if (raw !== MISSING) {
    return unwrap(raw, out);
  }
  const st = rollForward(name, out);
  if (st === BOARD_ERR_NOT_FOUND) {
    // No record: a NAME.old left here is the tail of a removal a power cut
    // interrupted in its last step (flashRemove), part of a wiped record.
    // It goes now, at the read (a blank keyfob's boot), so the first write,
    // LOCK on the station's clock, need not look for it (takeAbsent).
    file.remove(name + OLD_SUFFIX);
    absentName = name;
  }
  return st;
}

/**
 * The name flashRead last found with no record (neither NAME nor a complete
 * NAME.new) and removed NAME.old for, while nothing has written or removed a record since. It lives
 * in RAM, so a power cut forgets it along with anything it could describe;
 * only this store writes SPIFFS while the firmware runs (nothing else in
 * firmware/ opens, removes or renames a file, and the console is taken from
 * the Lua interpreter: uart-link.ts, run_input 0). A blank keyfob's boot learns it, and
 * LOCK's write then skips the three lookups (NAME, NAME.new, removing NAME.old)
 * that would tell it again: 3 name lookups on the board (SpiffsGeometry.lookupMs, hil/flash.ts).
 */
let absentName: string | undefined = undefined;

/** Whether flashRead last found NAME absent with nothing since; forgets it either way (the caller is about to write). */
export function takeAbsent(name: string): boolean {
  const known = absentName === name;
  absentName = undefined;
  return known;
}

/** True if a committed record NAME exists (a complete pending write counts). */
export function flashExists(name: string): boolean {
  const scratch: number[] = [];
  return flashRead(name, scratch) === BOARD_OK;
}
